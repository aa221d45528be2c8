"""A crash loop: a real `station run` is SIGKILLed at random moments beside a live simulator
(its own process), 20 times, restarting on the same batch each time. After every restart the
audit verifies, every certificate a device holds is on record as delivered or verified, and
no certificate the database calls delivered or verified is missing from its device."""
from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import time

import pytest
from cryptography.hazmat.primitives import serialization

from station.audit import verify

from station.sim.store import DeviceStore
from tests.cli_runner import run_station
from tests.engine.processes import simulated_devices, station_dir, station_proc

KILLS = 20
DEVICES = 6
SEED = int(os.environ.get("CRASH_LOOP_SEED", "7"))  # reproducible; set another to explore


def _held(store, device_id) -> str | None:
    cert = DeviceStore(store / device_id).objects.get("cert")
    return hashlib.sha256(cert).hexdigest() if cert else None


def _check_custody(workdir, store, context: str) -> None:
    # verify() in this process, with the station's audit key: what `station audit verify`
    # runs (tests/engine/test_cli.py runs that command), without a Python start per check.
    key = serialization.load_pem_public_key((workdir / "ca" / "audit-public.pem").read_bytes())
    report = verify(workdir / "audit.db", key)
    assert report.ok and report.signatures_checked, (context, report.summary())
    db = sqlite3.connect(workdir / "audit.db")
    try:
        rows = db.execute("select serial, device_id, status, fingerprint_sha256 from certificates").fetchall()
    finally:
        db.close()
    by_fingerprint = {fp: (serial, status) for serial, _, status, fp in rows if fp}
    devices = sorted(p.name for p in store.iterdir() if p.is_dir())
    for device_id in devices:
        held = _held(store, device_id)
        if held is None:
            continue
        assert held in by_fingerprint, f"{context}: {device_id} holds a certificate the database does not know"
        serial, status = by_fingerprint[held]
        assert status in ("delivered", "verified"), \
            f"{context}: {device_id} holds certificate 0x{serial}, recorded as {status}"
    for serial, device_id, status, fingerprint in rows:
        if status in ("delivered", "verified"):
            assert _held(store, device_id) == fingerprint, \
                f"{context}: certificate 0x{serial} is {status} but device {device_id} does not hold it"


def _batch_closed(workdir, batch_id) -> bool:
    if not (workdir / "audit.db").exists():
        return False
    db = sqlite3.connect(workdir / "audit.db")
    try:
        row = db.execute("select status from batches where batch_id = ?", (batch_id,)).fetchone()
    except sqlite3.OperationalError:  # killed while creating the schema
        return False
    finally:
        db.close()
    return bool(row) and row[0] == "closed"


@pytest.mark.timeout(600)  # ~20 restarts of real processes: about 2 minutes on 2 cores
def test_twenty_sigkills_at_random_moments_never_lose_custody(tmp_path):
    config = station_dir(tmp_path)
    # Every restart re-presents all devices; a device that holds a certificate of this station
    # needs the supervisor's approval (given once, for the scripted run, and logged per device).
    config.write_text(config.read_text().replace('reprovision = "refuse"', 'reprovision = "supervisor"'))
    rng = random.Random(SEED)
    store = tmp_path / "devices"
    with simulated_devices(tmp_path, DEVICES, keygen_ms=250) as ports:
        slots = [f"--port=S{i % 3 + 1}={port}" for i, port in enumerate(ports)]
        kills = 0
        for attempt in range(1, 3 * KILLS + 1):
            if kills == KILLS:
                break
            # The killed run's work order is resumed by the restart, which then closes it.
            run_args = ["run", "--headless", "--batch", f"WO-LOOP-{attempt}", "--model", "SIM-1",
                        "--supervisor-override", "SUP-1", *slots]
            run = station_proc(*run_args, cwd=tmp_path)
            time.sleep(rng.uniform(0.3, 2.0))  # start-up takes ~0.5-1 s: some kills land before any device
            if run.poll() is None:
                os.kill(run.pid, signal.SIGKILL)
            run.wait(10)
            run.stdout.close()
            run.stderr.close()
            killed = run.returncode == -signal.SIGKILL
            kills += killed
            context = f"attempt {attempt}, kill {kills} (seed {SEED})"
            # The run may have beaten the timer (exit 0), or been killed after closing its batch:
            # then there is nothing to resume, only custody to check.
            if not killed or _batch_closed(tmp_path, f"WO-LOOP-{attempt}"):
                assert killed or run.returncode == 0, (context, run.returncode)
                _check_custody(tmp_path, store, context)
                continue
            # The restart recovers and resumes the killed run's batch; the custody check below
            # verifies the whole audit (the chain survives every kill).
            again = run_station(*run_args, cwd=tmp_path)
            assert again.returncode == 0, (context, again.stdout, again.stderr)
            assert again.stdout.count("PASS ") == DEVICES, (context, again.stdout)
            _check_custody(tmp_path, store, context)
    assert kills == KILLS
