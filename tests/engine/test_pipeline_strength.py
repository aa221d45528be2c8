"""What the pipeline tells about each device, field by field (issue 12, mutation testing of
station/engine/pipeline.py): the events it publishes, the outcome it returns, the records and
reasons it leaves in the audit database, and the operator-facing wording of its own refusals.
Real simulator ptys, the session's SoftHSM2 token and a real audit database, as everywhere in
tests/engine; each test pins what a surviving mutant showed no other test looked at.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sqlite3
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from station.audit import AuditDB, verify
from station.audit.recovery import hostname
from station.boot import open_station
from station.drivers import registry
from station.drivers.cip import CipDriver
from station.engine.batch import Batch, Manifest
from station.engine.engine import Engine
from station.engine.events import (DeviceFailed, DeviceIdentified, DevicePassed, IssuanceHalted, OverrideApproved,
                                   SlotStateChanged, StepFinished, StepStarted)
from station.engine.pipeline import Outcome
from station.sim import SimulatedLine
from tests.engine.conftest import MODEL, write_manifest
from tests.engine.test_pipeline_checks import SEED, of, provisioned_elsewhere, run_line
from tests.engine.test_pipeline_checks import unchecked_families  # noqa: F401 (a fixture)

STEPS = ["identify", "bind", "keygen", "issue", "write", "commit", "prove"]


def rows(cfg, sql, *params):
    db = sqlite3.connect(cfg.audit.database)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(sql, params)]
    finally:
        db.close()


def status_changes(cfg, device_id):
    """(from, to, reason) of every certificate status change of the device, in order."""
    return [(d["from"], d["to"], d["reason"]) for d in
            (json.loads(r["data"]) for r in rows(cfg, "select data from events where kind = "
                                                      "'certificate-status-changed' and device_id = ? order by id",
                                                 device_id))]


def slot_story(events, slot="S1"):
    """What the pipeline published for `slot`, compactly: steps, identity, state, ending."""
    story = []
    for e in events:
        if getattr(e, "slot", None) != slot:
            continue
        if isinstance(e, StepStarted):
            story.append(("started", e.step, e.device_id))
        elif isinstance(e, StepFinished):
            story.append(("finished", e.step, e.device_id, e.ok))
        elif isinstance(e, DeviceIdentified):
            story.append(("identified", e.device_id))
        elif isinstance(e, SlotStateChanged) and e.device_id is not None:
            story.append(("state", e.state, e.device_id))
        elif isinstance(e, (DevicePassed, DeviceFailed)):
            story.append((e.kind, e.device_id))
    return story


# -- a passing device ------------------------------------------------------------------------

def test_a_passing_device_is_reported_and_recorded_in_full(engine_config, tmp_path):
    """Manifest label, trust anchors, lock on: every step's events, the identity as the device
    gave it, the certificate for the subject the profile dictates, each record with its reason."""
    anchors = engine_config.ca.chain  # the station's own CA certificates serve as the anchors
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20, model=MODEL) as line:
        sim = line.devices[0]
        device_id, port = sim.identity.device_id, line.ports[0]
        manifest = write_manifest(tmp_path / "m.csv", line)
        began = time.monotonic()
        engine, events = run_line(engine_config, {"S1": line.ports}, batch_id="WO-FULL", manifest=manifest,
                                  label_source="manifest", lock=True, anchors=anchors)
        elapsed = time.monotonic() - began
        objects, state = dict(sim.store.objects), sim.store.state
    label = f"L-{device_id[-6:]}"
    cert = x509.load_der_x509_certificate(objects["cert"])
    fingerprint = hashlib.sha256(objects["cert"]).hexdigest()

    assert slot_story(events) == [
        ("started", "identify", None), ("identified", device_id), ("state", "busy", device_id),
        ("finished", "identify", device_id, True),
        *[entry for step in STEPS[1:] + ["lock"]
          for entry in (("started", step, device_id), ("finished", step, device_id, True))],
        ("device-passed", device_id), ("state", "passed", device_id)]
    [identified] = of(DeviceIdentified, events)
    assert identified == DeviceIdentified(slot="S1", device_id=device_id, model=MODEL, hw_rev=sim.identity.hw_rev,
                                          fw_version=sim.identity.fw_version, state="blank")
    [passed] = of(DevicePassed, events)
    [outcome] = engine.outcomes
    assert passed == DevicePassed(slot="S1", device_id=device_id, label=label,
                                  serial_hex=format(cert.serial_number, "x"),
                                  fingerprint_sha256=fingerprint, duration_s=outcome.duration_s)
    assert outcome == Outcome(slot="S1", port=port, passed=True, device_id=device_id, label=label,
                              serial=cert.serial_number, duration_s=passed.duration_s, took_unit=True)
    assert 0 < outcome.duration_s < elapsed, "the device's own time, start to end"
    assert state == "locked", "the lock step ran on the device"

    # The certificate is for the subject the profile renders from this device and batch.
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"{MODEL}-{device_id}"
    assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == label
    [record] = rows(engine_config, "select * from certificates where device_id = ?", device_id)
    assert (record["batch_id"], record["slot"], record["operator"], record["fingerprint_sha256"],
            record["status"]) == ("WO-FULL", "S1", "op", fingerprint, "verified")
    assert status_changes(engine_config, device_id)[-2:] == [
        ("issued", "delivered", f"committed on {port}"), ("delivered", "verified", "proof of possession verified")]

    [device] = rows(engine_config, "select * from devices where device_id = ?", device_id)
    assert {k: device[k] for k in ("model", "hw_rev", "fw_version", "label", "batch_id", "state")} == {
        "model": MODEL, "hw_rev": sim.identity.hw_rev, "fw_version": sim.identity.fw_version, "label": label,
        "batch_id": "WO-FULL", "state": "passed"}
    [recorded] = rows(engine_config, "select data from events where kind = 'device-recorded' and device_id = ?",
                      device_id)
    assert json.loads(recorded["data"])["state"] == "in-flight"

    [committed] = rows(engine_config, "select * from events where kind = 'objects-committed'")
    assert (committed["batch_id"], committed["slot"], committed["device_id"]) == ("WO-FULL", "S1", device_id)
    assert json.loads(committed["data"]) == {
        "serial": format(cert.serial_number, "x"), "port": port, "cert": fingerprint,
        "chain": hashlib.sha256(objects["chain"]).hexdigest(),
        "anchors": hashlib.sha256(objects["anchors"]).hexdigest(),
        "anchor_fingerprints": [c.fingerprint(hashes.SHA256()).hex()
                                for c in x509.load_pem_x509_certificates(anchors.read_bytes())]}
    assert objects["anchors"] == anchors.read_bytes()
    assert verify(engine_config.audit.database).ok


# -- a failing device ------------------------------------------------------------------------

def test_a_failed_proof_is_reported_and_recorded_in_full(engine_config, tmp_path):
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20, model=MODEL, faults={0: ["bad-proof"]}) as line:
        device_id, port = line.devices[0].identity.device_id, line.ports[0]
        began = time.monotonic()
        engine, events = run_line(engine_config, {"S1": line.ports}, batch_id="WO-BAD")
        elapsed = time.monotonic() - began
    reason = (f"device on {port} failed PROVE integrity check: proof of possession failed: the device's signature "
              f"over the station's nonce does not verify with the certificate's key")
    [record] = rows(engine_config, "select * from certificates where device_id = ?", device_id)
    serial = int(record["serial"], 16)

    assert slot_story(events)[-4:] == [("started", "prove", device_id), ("finished", "prove", device_id, False),
                                       ("device-failed", device_id), ("state", "failed", device_id)]
    [finished] = [e for e in of(StepFinished, events) if not e.ok]
    assert finished == StepFinished(slot="S1", step="prove", device_id=device_id, ok=False, duration_s=0.0,
                                    detail=reason)
    [failed] = of(DeviceFailed, events)
    [outcome] = engine.outcomes
    assert failed == DeviceFailed(slot="S1", device_id=device_id, step="prove", reason=reason,
                                  code="DeviceIntegrityError", duration_s=outcome.duration_s)
    assert outcome == Outcome(slot="S1", port=port, passed=False, device_id=device_id, label=device_id, step="prove",
                              reason=reason, serial=serial, duration_s=failed.duration_s, took_unit=True)
    assert 0 < outcome.duration_s < elapsed
    assert (record["status"], record["status_reason"]) == ("undelivered", f"prove: {reason}")
    [device] = rows(engine_config, "select state, reason from devices where device_id = ?", device_id)
    assert device == {"state": "failed", "reason": f"prove: {reason}"}


def test_a_device_refused_before_issue_has_no_serial_and_the_line_goes_on(engine_config, tmp_path):
    with SimulatedLine(2, tmp_path / "devices", keygen_ms=20, model="OTHER-2") as line:
        device_id, port = line.devices[0].identity.device_id, line.ports[0]
        engine, events = run_line(engine_config, {"S1": line.ports}, batch_id="WO-X")
    reason = f"device reports model OTHER-2, batch WO-X is for {MODEL}"
    assert [(e.device_id, e.step, e.code, e.reason) for e in of(DeviceFailed, events)][0] == (
        device_id, "bind", "wrong-model", reason)
    assert engine.outcomes[0] == Outcome(slot="S1", port=port, passed=False, device_id=device_id, label=None,
                                         step="bind", reason=reason, duration_s=engine.outcomes[0].duration_s)
    assert len(engine.outcomes) == 2 and engine.halted is None
    assert rows(engine_config, "select * from devices") == []
    assert rows(engine_config, "select * from certificates") == []


def test_a_lost_commit_answer_leaves_the_certificate_unknown_with_its_reason(engine_config, tmp_path):
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20, model=MODEL, faults={0: ["stall@COMMIT"]}) as line:
        device_id, port = line.devices[0].identity.device_id, line.ports[0]
        _, events = run_line(engine_config, {"S1": line.ports}, batch_id="WO-U")
    [failed] = of(DeviceFailed, events)
    assert failed.reason.startswith(f"device on {port} did not answer COMMIT within ")
    [record] = rows(engine_config, "select status, status_reason from certificates where device_id = ?", device_id)
    assert record == {"status": "unknown", "status_reason": f"commit outcome unknown: {failed.reason}"}
    [device] = rows(engine_config, "select state, reason from devices where device_id = ?", device_id)
    assert device == {"state": "failed", "reason": f"commit: {failed.reason}"}


# -- the pipeline's own refusals, worded for the operator -----------------------------------

@pytest.mark.parametrize("family, fault", [("cip-unchecked", {0: ["wrong-hash"]}), ("cip-cert-unreported", {})],
                         ids=["wrong-hash", "missing-hash"])
def test_a_commit_hash_refusal_shows_both_hashes_shortened(engine_config, tmp_path, unchecked_families,  # noqa: F811
                                                            family, fault):
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20, model=MODEL, faults=fault) as line:
        device_id, port = line.devices[0].identity.device_id, line.ports[0]
        _, events = run_line(engine_config, {"S1": line.ports}, batch_id="WO-H", family=family)
    [record] = rows(engine_config, "select cert_pem from certificates where device_id = ?", device_id)
    sent = hashlib.sha256(x509.load_pem_x509_certificate(record["cert_pem"].encode()).public_bytes(
        serialization.Encoding.DER)).hexdigest()
    [failed] = of(DeviceFailed, events)
    match = re.fullmatch(rf"device on {re.escape(port)} failed COMMIT integrity check: device stored cert with "
                         rf"SHA-256 (nothing|[0-9a-f]{{16}}\.\.\.), not what was sent \({sent[:16]}\.\.\.\)",
                         failed.reason)
    assert match, failed.reason
    assert match[1] == ("nothing" if family == "cip-cert-unreported" else match[1])
    assert match[1] != f"{sent[:16]}..."
    assert (failed.step, failed.code) == ("commit", "DeviceIntegrityError")


def test_a_locked_device_is_refused_in_so_many_words(engine_config, tmp_path):
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20, model=MODEL) as line:
        device_id = line.devices[0].identity.device_id
        line.devices[0].store.lock()
        _, events = run_line(engine_config, {"S1": line.ports}, batch_id="WO-LOCK")
    [failed] = of(DeviceFailed, events)
    assert (failed.code, failed.reason) == ("device-locked", f"device {device_id} is locked; it cannot be provisioned")


def test_a_device_in_flight_in_another_station_process_is_refused_at_bind(engine_config, tmp_path):
    """Another writer on the same database (a second, live session: this process) has the
    device in flight: refused at bind, its record left as that writer made it."""
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20, model=MODEL) as line:
        device_id = line.devices[0].identity.device_id
        with AuditDB.open(engine_config.audit.database, station_id=engine_config.station_id) as other:
            other.open_batch("WO-OTHER", model=MODEL, operator="op2", expected_count=None, manifest_sha256=None)
            other.upsert_device(device_id, model=MODEL, hw_rev="A", fw_version="1", label="L-OTHER",
                                batch_id="WO-OTHER", state="in-flight")
            engine, events = run_line(engine_config, {"S1": line.ports}, batch_id="WO-HERE")
    [failed] = of(DeviceFailed, events)
    assert (failed.step, failed.code, failed.reason) == (
        "bind", "device-in-flight",
        f"device {device_id} is being provisioned by another station process (pid {os.getpid()} on {hostname()})")
    assert [o.took_unit for o in engine.outcomes] == [False]
    [device] = rows(engine_config, "select label, batch_id, state from devices where device_id = ?", device_id)
    assert device == {"label": "L-OTHER", "batch_id": "WO-OTHER", "state": "in-flight"}


def test_re_provisioning_is_refused_or_approved_naming_the_certificate_held(engine_config, tmp_path):
    store = tmp_path / "devices"
    with SimulatedLine(1, store, keygen_ms=20, model=MODEL) as line:
        device_id = line.devices[0].identity.device_id
        first, _ = run_line(engine_config, {"S1": line.ports}, batch_id="WO-R1")
        serial = format(first.outcomes[0].serial, "x")
        _, refused = run_line(engine_config, {"S1": line.ports}, batch_id="WO-R2")
        _, unapproved = run_line(engine_config, {"S1": line.ports}, batch_id="WO-R3", reprovision="supervisor")
        _, overridden = run_line(engine_config, {"S1": line.ports}, batch_id="WO-R4", standing_override="SUP-8")
        # A supervisor approves at the slot (the operator terminal's command), not for the run.
        approved, approving = run_line(engine_config, {"S1": line.ports}, batch_id="WO-R5", reprovision="supervisor",
                                       ready=lambda engine: engine.approve_override("S1", "SUP-9"))
    held = f"device {device_id} is already provisioned (certificate 0x{serial} already verified)"
    assert [(e.code, e.reason) for e in of(DeviceFailed, refused)] == [
        ("already-provisioned", f"{held}; re-provisioning is disabled ([line] reprovision = \"refuse\")")]
    assert [(e.code, e.reason) for e in of(DeviceFailed, overridden)] == [
        ("already-provisioned", f"{held}; re-provisioning is disabled ([line] reprovision = \"refuse\")")], \
        "with re-provisioning disabled, no supervisor can approve it"
    assert [(e.code, e.reason) for e in of(DeviceFailed, unapproved)] == [
        ("already-provisioned", f"{held}; re-provisioning needs a supervisor override")]
    assert of(OverrideApproved, approving) == [OverrideApproved(
        slot="S1", device_id=device_id, supervisor="SUP-9",
        what=f"re-provision: certificate 0x{serial} already verified")]
    assert approved.outcomes[0].passed
    # The refusals rewrote nothing: a refused device keeps the record it had.
    assert [e["to"] for e in (json.loads(r["data"]) for r in rows(
        engine_config, "select data from events where kind = 'device-state-changed' and device_id = ?", device_id))
    ] == ["passed", "passed"]


def test_a_device_provisioned_elsewhere_is_refused_in_so_many_words(engine_config, tmp_path):
    provisioned_elsewhere(tmp_path / "devices")
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20, model=MODEL, seed=SEED) as line:
        device_id = line.devices[0].identity.device_id
        _, events = run_line(engine_config, {"S1": line.ports}, batch_id="WO-ELSE")
    assert [(e.code, e.reason) for e in of(DeviceFailed, events)] == [(
        "already-provisioned", f"device {device_id} is already provisioned (device reports a certificate this "
                               f"station never issued); re-provisioning is disabled ([line] reprovision = \"refuse\")")]


def test_a_full_work_order_refuses_the_next_device_by_name(engine_config, tmp_path):
    with SimulatedLine(2, tmp_path / "devices", keygen_ms=20, model=MODEL) as line:
        second = line.devices[1].identity.device_id
        engine, events = run_line(engine_config, {"S1": line.ports}, batch_id="WO-ONE", expected=1)
    assert [o.passed for o in engine.outcomes] == [True, False]
    [failed] = of(DeviceFailed, events)
    assert (failed.device_id, failed.step, failed.code, failed.reason) == (
        second, "bind", "batch-complete", f"batch WO-ONE already has its 1 device(s) passed or in progress; "
                                          f"device {second} belongs to another work order")


# -- RSA device keys -------------------------------------------------------------------------

class RsaCipDriver(CipDriver):
    """The cip driver asking the device for an RSA-2048 key (KEYGEN RSA-2048)."""

    @classmethod
    def open(cls, port: str, **opts) -> CipDriver:
        return super().open(port, **{**opts, "key_type": "RSA-2048"})


@pytest.mark.parametrize("faults, passes", [({}, True), ({0: ["bad-proof"]}, False)], ids=["good", "bad-proof"])
def test_an_rsa_device_proves_possession_with_pkcs1_v15(engine_config, tmp_path, monkeypatch, faults, passes):
    monkeypatch.setitem(registry._FAMILIES, "cip-rsa", f"{__name__}:RsaCipDriver")
    cfg = dataclasses.replace(engine_config, policy=dataclasses.replace(engine_config.policy,
                                                                        allowed_keys=("ec-p256", "rsa")))
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20, model=MODEL, faults=faults) as line:
        device_id, port = line.devices[0].identity.device_id, line.ports[0]
        engine, events = run_line(cfg, {"S1": line.ports}, batch_id="WO-RSA", family="cip-rsa")
    [record] = rows(cfg, "select status, cert_pem from certificates where device_id = ?", device_id)
    assert x509.load_pem_x509_certificate(record["cert_pem"].encode()).public_key().key_size == 2048
    if passes:
        assert [o.passed for o in engine.outcomes] == [True] and record["status"] == "verified"
    else:
        [failed] = of(DeviceFailed, events)
        assert (failed.step, record["status"]) == ("prove", "undelivered")
        assert failed.reason.startswith(f"device on {port} failed PROVE integrity check: proof of possession failed")


# -- the audit database refuses a write ------------------------------------------------------

class WriteLockHolder:
    """Another writer on the audit database: it takes the write lock as soon as an event
    `when(event)` picks has been written, and holds it (longer than the station's busy timeout)
    until the line halts. A watch for run_line."""

    def __init__(self, path, when):
        self.when = when
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def __call__(self, event):
        if self.when(event):
            self.conn.execute("BEGIN EXCLUSIVE")
        elif isinstance(event, IssuanceHalted) and self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


def short_lock_wait(cfg):
    """`cfg` with a 300 ms busy timeout: the lock holder below never lets go, so each of
    these runs would otherwise wait out the default 10 s before the write fails."""
    return dataclasses.replace(cfg, audit=dataclasses.replace(cfg.audit, busy_timeout_ms=300))


def test_the_configured_busy_timeout_is_the_one_the_station_waits(engine_config):
    """[audit] busy_timeout_ms reaches the audit database's connection (SQLite reports it in ms)."""
    with open_station(short_lock_wait(engine_config)) as station:
        assert station.audit._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 300
    with open_station(engine_config) as station:
        assert station.audit._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10000


def test_a_device_whose_pass_cannot_be_recorded_fails_and_halts_the_line(engine_config, tmp_path):
    """The device's `passed` cannot be written: it fails at "pass" with the database's words,
    the line halts with them, and the certificate, verified on the device, is not turned
    undelivered: that refusal is itself recorded."""
    engine_config = short_lock_wait(engine_config)
    holder = WriteLockHolder(engine_config.audit.database,
                             lambda e: isinstance(e, StepFinished) and e.step == "prove")
    try:
        with SimulatedLine(1, tmp_path / "devices", keygen_ms=20, model=MODEL) as line:
            device_id, port = line.devices[0].identity.device_id, line.ports[0]
            engine, events = run_line(engine_config, {"S1": line.ports}, batch_id="WO-LAST", watch=holder)
    finally:
        holder.conn.close()
    [record] = rows(engine_config, "select serial, status from certificates where device_id = ?", device_id)
    [halted] = of(IssuanceHalted, events)
    assert engine.halted == halted.reason and "locked" in halted.reason
    reason = f"audit database write failed: {halted.reason}"
    [failed] = of(DeviceFailed, events)
    assert failed == DeviceFailed(slot="S1", device_id=device_id, step="pass", reason=reason,
                                  code="audit-write-failed", duration_s=failed.duration_s)
    assert engine.outcomes == [Outcome(slot="S1", port=port, passed=False, device_id=device_id, label=device_id,
                                       step="pass", reason=reason, serial=int(record["serial"], 16),
                                       duration_s=failed.duration_s, took_unit=True)]
    assert failed.duration_s > 0, "the device's time, start to the failed write"
    assert not of(DevicePassed, events) and record["status"] == "verified"
    [refused] = rows(engine_config, "select batch_id, slot, device_id, data from events where kind = 'record-refused'")
    assert {**refused, "data": json.loads(refused["data"])} == {
        "batch_id": "WO-LAST", "slot": "S1", "device_id": device_id,
        "data": {"reason": f"certificate 0x{record['serial']} is verified; it cannot become undelivered",
                 "step": "pass"}}


def test_a_slot_waiting_for_a_scan_names_its_device_and_the_scan_is_checked_against_the_manifest(
        engine_config, tmp_path):
    """label_source = "scan" with a manifest of device ids and labels: the slot says which
    device waits; the right scan binds it, a wrong one is refused naming both labels."""
    line_config = dataclasses.replace(engine_config.line, label_source="scan")
    events = []
    with SimulatedLine(2, tmp_path / "devices", keygen_ms=20, model=MODEL) as line, \
            open_station(engine_config) as station:
        ids = [d.identity.device_id for d in line.devices]
        right = f"L-{ids[0][-6:]}"
        batch = Batch("WO-SC", MODEL, "op", manifest=Manifest.load(write_manifest(tmp_path / "m.csv", line)))
        engine = Engine(station, batch, line_config, driver_opts={"timeout_scale": line_config.timeout_scale})
        engine.bus.subscribe(events.append)
        # Both slots are scanned with the first device's label, as each asks for its scan.
        engine.bus.subscribe(lambda e: engine.bind_label(e.slot, right) if isinstance(e, SlotStateChanged)
                             and e.state == "waiting-label" else None)
        engine.start()
        engine.run_slot_queue("S1", [line.ports[0]]).join()
        engine.run_slot_queue("S2", [line.ports[1]])
        engine.finish()
    waiting = [(e.slot, e.device_id) for e in events if isinstance(e, SlotStateChanged) and e.state == "waiting-label"]
    assert waiting == [("S1", ids[0]), ("S2", ids[1])]
    assert [(e.device_id, e.label) for e in of(DevicePassed, events)] == [(ids[0], right)]
    [failed] = of(DeviceFailed, events)
    assert (failed.device_id, failed.code, failed.reason) == (
        ids[1], "label-mismatch", f"scanned label {right} does not match the manifest's label L-{ids[1][-6:]} "
                                  f"for device {ids[1]}")


def test_a_failure_that_cannot_be_recorded_halts_the_line(engine_config, tmp_path):
    """The proof failed, and the database refuses the failure's records: the line halts
    saying so, and nothing is recorded as undelivered or failed (crash recovery's business)."""
    engine_config = short_lock_wait(engine_config)
    holder = WriteLockHolder(engine_config.audit.database, lambda e: isinstance(e, StepFinished) and not e.ok)
    try:
        with SimulatedLine(2, tmp_path / "devices", keygen_ms=20, model=MODEL, faults={0: ["bad-proof"]}) as line:
            device_id = line.devices[0].identity.device_id
            engine, events = run_line(engine_config, {"S1": line.ports}, batch_id="WO-REC", watch=holder)
    finally:
        holder.conn.close()
    [halted] = of(IssuanceHalted, events)
    assert engine.halted == halted.reason
    assert halted.reason.startswith("audit database write failed while recording a failure: ") and \
        "locked" in halted.reason
    assert [(e.device_id, e.step) for e in of(DeviceFailed, events)] == [(device_id, "prove")]
    assert len(engine.outcomes) == 1, "a halted line starts no other device"
    [record] = rows(engine_config, "select status from certificates where device_id = ?", device_id)
    [device] = rows(engine_config, "select state from devices where device_id = ?", device_id)
    assert (record["status"], device["state"]) == ("delivered", "in-flight")
