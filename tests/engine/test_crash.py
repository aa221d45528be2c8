"""Crash safety with real processes: `station run` is SIGKILLed mid-batch while `station sim`
keeps the devices alive; a second run recovers, the audit chain still verifies, and every
device that was in flight is provisioned cleanly (new key, new certificate, old one out)."""
from __future__ import annotations

import os
import signal
import sqlite3
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from station.drivers.cip import CipDriver
from tests.cli_runner import run_station
from tests.engine.processes import simulated_devices, station_dir, station_proc


def _spki(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_sigkill_mid_batch_then_restart_recovers(tmp_path):
    station_dir(tmp_path)
    with simulated_devices(tmp_path, 8, keygen_ms=400) as ports:
        slot_args = [f"--port=S{i % 4 + 1}={port}" for i, port in enumerate(ports)]
        run = station_proc("run", "--headless", "--batch", "WO-CRASH", "--model", "SIM-1", *slot_args, cwd=tmp_path)
        first = run.stdout.readline()
        assert first.startswith("PASS"), first + run.stderr.read()
        time.sleep(0.15)  # the next round of devices is between KEYGEN and PROVE
        os.kill(run.pid, signal.SIGKILL)
        run.wait(10)

        db = sqlite3.connect(tmp_path / "audit.db")
        in_flight = {r[0] for r in db.execute("select device_id from devices where state = 'in-flight'")}
        passed = {r[0] for r in db.execute("select device_id from devices where state = 'passed'")}
        assert in_flight, "the kill must leave devices in flight"
        db.close()
        result = run_station("audit", "verify", cwd=tmp_path)
        assert result.returncode == 0, result.stderr  # the chain survives a SIGKILL

        # The operator re-inserts the devices that did not pass: find their ports.
        retry = []
        for port in ports:
            driver = CipDriver.open(port)
            try:
                if driver.identify().device_id not in passed:
                    retry.append(port)
            finally:
                driver.close()
        assert len(retry) == 8 - len(passed)
        again = run_station("run", "--headless", "--batch", "WO-CRASH", "--model", "SIM-1",
                            *[f"--port=S{i % 4 + 1}={p}" for i, p in enumerate(retry)], cwd=tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.count("PASS ") == len(retry)

    db = sqlite3.connect(tmp_path / "audit.db")
    states = dict(db.execute("select device_id, state from devices"))
    assert set(states.values()) == {"passed"} and len(states) == 8
    events = [r[0] for r in db.execute("select kind from events")]
    assert "crash-recovered" in events and "batch-resumed" in events
    for device_id in in_flight:
        statuses = [r[0] for r in db.execute(
            "select status from certificates where device_id = ? order by reserved_at", (device_id,))]
        assert statuses[-1] == "verified"
        assert all(s in ("superseded", "void") for s in statuses[:-1]), statuses
        folder = tmp_path / "devices" / device_id
        cert = x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes())
        key = serialization.load_pem_private_key((folder / "key.pem").read_bytes(), None)
        assert _spki(cert.public_key()) == _spki(key.public_key())
        current = db.execute("select cert_pem from certificates where device_id = ? and status = 'verified'",
                             (device_id,)).fetchone()[0]
        assert x509.load_pem_x509_certificate(current.encode()) == cert
    result = run_station("audit", "verify", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_sigterm_stops_the_line_gently(tmp_path):
    station_dir(tmp_path)
    with simulated_devices(tmp_path, 4, keygen_ms=300) as ports:
        run = station_proc("run", "--headless", "--batch", "WO-STOP", "--model", "SIM-1",
                            *[f"--port=S1={p}" for p in ports], cwd=tmp_path)
        first = run.stdout.readline()
        assert first.startswith("PASS"), first + run.stderr.read()
        run.send_signal(signal.SIGTERM)  # the second device is in flight now
        out, err = run.communicate(timeout=30)
    assert run.returncode == 130, out + err
    assert "STOP SIGTERM" in out and "STOPPED" in out.splitlines()[-1]
    assert "Traceback" not in err
    db = sqlite3.connect(tmp_path / "audit.db")
    states = [r[0] for r in db.execute("select state from devices")]
    assert states and set(states) == {"passed"}, "the device in flight is finished, not abandoned"
    assert len(states) < 4, "no new device is started after the stop"
    assert db.execute("select status from batches where batch_id = 'WO-STOP'").fetchone()[0] == "open"
