"""One device, one label, one certificate of record (issue 7, item 2), over real ptys, the
real token and real SQLite: cloned boards, re-presented boards, a lost COMMIT answer, and what
the device stores always named by the database."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import sqlite3
import time
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from station.audit import AuditDB, verify
from station.engine.batch import Batch
from station.engine.engine import Engine
from station.errors import ConfigError, PolicyRefusal
from station.headless import run_batch
from station.sim import SimulatedLine
from station.sim.store import DeviceStore
from tests.cli_runner import assert_clean_failure, run_station
from tests.engine.conftest import MODEL, write_manifest
from tests.engine.processes import simulated_devices, station_dir, station_proc


def _rows(db_path, sql, *args):
    db = sqlite3.connect(db_path)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def _stored_cert_sha(store_dir, device_id) -> str | None:
    objects = DeviceStore(store_dir / device_id).objects
    return None if "cert" not in objects else hashlib.sha256(objects["cert"]).hexdigest()


def test_a_cloned_board_in_another_slot_is_refused_at_bind_before_keygen(engine_config, tmp_path):
    # Two boards that report the same chip id (a clone, or a UID read that returns a constant),
    # in two slots at once. keygen takes long enough that both are in flight together.
    out = io.StringIO()
    with SimulatedLine(1, tmp_path / "a", keygen_ms=400, model=MODEL, seed="clone") as first, \
            SimulatedLine(1, tmp_path / "b", keygen_ms=400, model=MODEL, seed="clone") as clone:
        device_id = first.devices[0].identity.device_id
        assert clone.devices[0].identity.device_id == device_id
        manifest = write_manifest(tmp_path / "manifest.csv", first)
        summary = run_batch(engine_config, batch_id="WO-CLONE", model=MODEL, operator="op", manifest=manifest,
                            slots={"S1": first.ports, "S2": clone.ports}, out=out)
    printed = out.getvalue()
    assert (summary.passed, summary.failed, summary.halted) == (1, 1, None), printed
    fail = next(line for line in printed.splitlines() if line.startswith("FAIL"))
    assert "step=bind" in fail and "already in flight in slot" in fail, fail
    # Exactly one board generated a key and holds a certificate; one certificate exists.
    holders = [d for d in (tmp_path / "a" / device_id, tmp_path / "b" / device_id)
               if DeviceStore(d).objects.get("cert")]
    assert len(holders) == 1
    certs = _rows(engine_config.audit.database, "select status from certificates")
    assert certs == [("verified",)]
    assert _rows(engine_config.audit.database, "select state from devices") == [("passed",)]
    assert verify(engine_config.audit.database).ok


def test_re_presenting_a_provisioned_device_keeps_its_record_label_and_count(engine_config, tmp_path):
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20, model=MODEL) as line:
        manifest = write_manifest(tmp_path / "manifest.csv", line)
        device_id = line.devices[0].identity.device_id
        # A work order of 1: the board passes, then is put back into the fixture in the same
        # work order; later it turns up in another work order.
        first = run_batch(engine_config, batch_id="WO-ONE", model=MODEL, operator="op", manifest=manifest,
                          expected=1, slots={"S1": line.ports * 2}, out=io.StringIO())
        other = run_batch(engine_config, batch_id="WO-TWO", model=MODEL, operator="op", manifest=manifest,
                          slots={"S1": line.ports}, out=io.StringIO())
    assert (first.passed, first.failed, first.halted) == (1, 1, None)
    assert (other.passed, other.failed, other.halted) == (0, 1, None)
    # Only the bind that provisioned it wrote the device's record.
    assert len(_rows(engine_config.audit.database, "select id from events where kind = 'device-recorded' "
                     "and device_id = ?", device_id)) == 1
    # The refusals are events; the device's record is what it was: passed, its label, its batch.
    state, label, batch = _rows(engine_config.audit.database,
                                "select state, label, batch_id from devices where device_id = ?", device_id)[0]
    assert (state, label, batch) == ("passed", f"L-{device_id[-6:]}", "WO-ONE")
    refusals = _rows(engine_config.audit.database,
                     "select data from events where kind = 'device-failed' and device_id = ?", device_id)
    assert len(refusals) == 2 and all("already-provisioned" in r[0] for r in refusals)
    with AuditDB.open(engine_config.audit.database, station_id=engine_config.station_id) as db:
        assert db.devices_passed_in_batch("WO-ONE") == 1
        assert [r["device_id"] for r in db.devices_with_label(label)] == [device_id]
    assert _rows(engine_config.audit.database, "select count(*) from certificates") == [(1,)]


def test_the_label_of_a_provisioned_device_stays_taken(engine_config, tmp_path):
    # Device A passes with label L-SHARED; it is re-presented (refused); then device B, whose
    # manifest row names the same label, must still be refused: the label was never freed.
    with SimulatedLine(2, tmp_path / "devices", keygen_ms=20, model=MODEL) as line:
        a, b = (d.identity.device_id for d in line.devices)
        (tmp_path / "m1.csv").write_text(f"device_id,label\n{a},L-SHARED\n")
        (tmp_path / "m2.csv").write_text(f"device_id,label\n{b},L-SHARED\n")
        run_batch(engine_config, batch_id="WO-A", model=MODEL, operator="op", manifest=tmp_path / "m1.csv",
                  slots={"S1": line.ports[:1] * 2}, out=io.StringIO())
        out = io.StringIO()
        summary = run_batch(engine_config, batch_id="WO-B", model=MODEL, operator="op",
                            manifest=tmp_path / "m2.csv", slots={"S1": line.ports[1:]}, out=out)
    assert summary.passed == 0 and "label L-SHARED is already bound to device " + a in out.getvalue()


def test_one_batch_runs_in_one_live_process(engine_config, tmp_path):
    db_path = engine_config.audit.database
    holder = AuditDB.open(db_path, station_id=engine_config.station_id)
    holder.open_batch("WO-BUSY", model=MODEL, operator="op", expected_count=2, manifest_sha256=None)
    second = AuditDB.open(db_path, station_id=engine_config.station_id)
    try:
        with pytest.raises(PolicyRefusal) as refused:
            second.open_batch("WO-BUSY", model=MODEL, operator="op", expected_count=2, manifest_sha256=None)
        # This process is alive, so the holder is live whatever its session: named by pid.
        assert refused.value.code == "batch-busy" and f"pid {os.getpid()}" in str(refused.value)
        # Once the holder has gone, the batch may be resumed.
        holder.close()
        second.open_batch("WO-BUSY", model=MODEL, operator="op", expected_count=2, manifest_sha256=None)
    finally:
        holder.close()
        second.close()


def test_a_lost_commit_answer_is_unknown_then_settled_from_what_the_device_stores(engine_config, tmp_path):
    cfg = dataclasses.replace(engine_config, line=dataclasses.replace(engine_config.line, reprovision="supervisor"))
    store = tmp_path / "devices"
    # The device commits, but every COMMIT answer is garbled: the station cannot know.
    with SimulatedLine(1, store, keygen_ms=20, model=MODEL, faults={0: ["garbage@COMMIT=always"]}) as line:
        manifest = write_manifest(tmp_path / "manifest.csv", line)
        device_id = line.devices[0].identity.device_id
        first = run_batch(cfg, batch_id="WO-U1", model=MODEL, operator="op", manifest=manifest,
                          slots={"S1": line.ports}, out=io.StringIO())
    assert first.failed == 1
    (serial_1, status_1), = _rows(cfg.audit.database, "select serial, status from certificates")
    assert status_1 == "unknown"
    held = _stored_cert_sha(store, device_id)
    assert held is not None  # the device did commit it

    # Next contact, no override: the database first learns the device holds that certificate,
    # so the device is provisioned and re-provisioning is refused.
    with SimulatedLine(1, store, keygen_ms=20, model=MODEL) as line:
        out = io.StringIO()
        second = run_batch(cfg, batch_id="WO-U2", model=MODEL, operator="op", manifest=manifest,
                           slots={"S1": line.ports}, out=out)
    assert second.failed == 1 and "already provisioned" in out.getvalue(), out.getvalue()
    assert _rows(cfg.audit.database, "select status, fingerprint_sha256 from certificates") == [("delivered", held)]

    # With a supervisor's approval it is re-provisioned; the old one is superseded, and the
    # database's verified certificate is exactly the one the device stores.
    with SimulatedLine(1, store, keygen_ms=20, model=MODEL) as line:
        third = run_batch(cfg, batch_id="WO-U3", model=MODEL, operator="op", manifest=manifest,
                          slots={"S1": line.ports}, supervisor_override="SUP-1", out=io.StringIO())
    assert third.passed == 1
    rows = dict(_rows(cfg.audit.database, "select serial, status from certificates"))
    assert rows.pop(serial_1) == "superseded" and list(rows.values()) == ["verified"]
    (fingerprint,), = _rows(cfg.audit.database, "select fingerprint_sha256 from certificates where status = 'verified'")
    assert _stored_cert_sha(store, device_id) == fingerprint
    assert verify(cfg.audit.database).ok


def test_a_device_holding_a_certificate_this_station_never_issued_is_refused(engine_config, tmp_path):
    # The device was provisioned by another station (its audit database is not this one).
    store = tmp_path / "devices"
    elsewhere = dataclasses.replace(engine_config, audit=dataclasses.replace(engine_config.audit,
                                                                            database=tmp_path / "other.db"))
    # First an attempt here that failed (its certificate undelivered): this station has history
    # for the device, so "no history" cannot be what decides.
    with SimulatedLine(1, store, keygen_ms=20, model=MODEL, faults={0: ["commit-fail"]}) as line:
        manifest = write_manifest(tmp_path / "manifest.csv", line)
        assert run_batch(engine_config, batch_id="WO-W", model=MODEL, operator="op", manifest=manifest,
                         slots={"S1": line.ports}, out=io.StringIO()).failed == 1
    with SimulatedLine(1, store, keygen_ms=20, model=MODEL) as line:
        assert run_batch(elsewhere, batch_id="WO-X", model=MODEL, operator="op", manifest=manifest,
                         slots={"S1": line.ports}, out=io.StringIO()).passed == 1
        out = io.StringIO()
        summary = run_batch(engine_config, batch_id="WO-Y", model=MODEL, operator="op", manifest=manifest,
                            slots={"S1": line.ports}, out=out)
    assert summary.failed == 1 and "never issued" in out.getvalue(), out.getvalue()
    assert _rows(engine_config.audit.database, "select status from certificates") == [("undelivered",)]


def _ca_pem(tmp_path, *, ca: bool) -> bytes:
    from datetime import datetime, timedelta, timezone

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Test Server Root")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + timedelta(days=9))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def test_server_trust_anchors_are_written_committed_and_recorded(engine_config, tmp_path):
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(_ca_pem(tmp_path, ca=True))
    cfg = dataclasses.replace(engine_config, line=dataclasses.replace(engine_config.line, anchors=anchors))
    store = tmp_path / "devices"
    with SimulatedLine(1, store, keygen_ms=20, model=MODEL) as line:
        manifest = write_manifest(tmp_path / "manifest.csv", line)
        device_id = line.devices[0].identity.device_id
        assert run_batch(cfg, batch_id="WO-ANCH", model=MODEL, operator="op", manifest=manifest,
                         slots={"S1": line.ports}, out=io.StringIO()).passed == 1
    assert DeviceStore(store / device_id).objects["anchors"] == anchors.read_bytes()
    (data,), = _rows(cfg.audit.database, "select data from events where kind = 'objects-committed'")
    fingerprint = x509.load_pem_x509_certificate(anchors.read_bytes()).fingerprint(hashes.SHA256()).hex()
    assert fingerprint in data and hashlib.sha256(anchors.read_bytes()).hexdigest() in data


def test_a_trust_anchor_that_is_not_a_ca_stops_the_start(engine_config, tmp_path):
    anchors = tmp_path / "anchors.pem"
    line = dataclasses.replace(engine_config.line, anchors=anchors)
    station = SimpleNamespace(audit=None)  # the bundle is checked before anything is opened
    batch = Batch(batch_id="WO", model=MODEL, operator="op", expected=None, manifest=None)
    anchors.write_bytes(_ca_pem(tmp_path, ca=False))
    with pytest.raises(ConfigError, match="not a CA certificate"):
        Engine(station, batch, line)
    anchors.write_text("not pem")
    with pytest.raises(ConfigError, match="not a PEM bundle"):
        Engine(station, batch, line)


def test_a_second_station_run_on_a_live_batch_is_refused(tmp_path):
    station_dir(tmp_path)
    with simulated_devices(tmp_path, 2, keygen_ms=3000) as ports:
        args = ["run", "--headless", "--batch", "WO-TWICE", "--model", "SIM-1"]
        first = station_proc(*args, f"--port=S1={ports[0]}", cwd=tmp_path)
        try:
            deadline = time.monotonic() + 30
            while not _rows_if(tmp_path / "audit.db", "select 1 from events where kind = 'device-attached'"):
                assert time.monotonic() < deadline and first.poll() is None, first.stderr.read()
                time.sleep(0.1)
            second = run_station(*args, f"--port=S1={ports[1]}", cwd=tmp_path)
            assert_clean_failure(second, 1, "WO-TWICE", "another station process", f"pid {first.pid}")
        finally:
            first.wait(60)
            first.stdout.close()
            first.stderr.close()
    assert first.returncode == 0
    # The refused run provisioned nothing: one device, from the first run.
    assert _rows(tmp_path / "audit.db", "select count(*) from certificates") == [(1,)]


def _rows_if(db_path, sql):
    try:
        return _rows(db_path, sql) if db_path.exists() else []
    except sqlite3.OperationalError:  # being created by the other process
        return []
