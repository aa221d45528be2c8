"""The pipeline's own security checks, over real simulator ptys, the real token and a real
audit database (issue 12): each must hold whatever the driver or the device does.

* COMMIT: the pipeline compares the hashes the device reports with what it sent, even when
  the family's driver does not (the real cip driver, subclassed with its own check off).
* bind: a device holding a certificate this station never issued is refused; a locked device
  fails without taking a unit of the work order.
* prove: a device that failed its proof is not provisioned: its certificate is undelivered,
  it is not counted as passed, and re-inserting it provisions it afresh.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import sqlite3
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from station.audit import verify
from station.boot import open_station
from station.drivers import registry
from station.drivers.base import CommitReceipt
from station.drivers.cip import CipDriver
from station.engine.batch import Batch, Manifest
from station.engine.engine import Engine
from station.engine.events import DeviceFailed, DevicePassed, OverrideApproved
from station.sim import SimulatedLine
from station.sim.device import derive_device_id
from station.sim.store import DeviceStore
from tests.engine.conftest import MODEL


def run_line(cfg, slots: dict[str, list[str]], *, batch_id: str, expected: int | None = None,
             manifest: Path | None = None, standing_override: str | None = None,
             prepare=lambda station: None, watch=lambda event: None, ready=lambda engine: None, **line_changes):
    """Run the engine over `slots` (slot -> ports, in order) with labels taken from the
    device ids (or `manifest`, with label_source="manifest"). `prepare(station)` runs on the
    opened station before the engine starts; `watch(event)` sees every event on the worker's
    thread as it is published; `ready(engine)` runs just before it starts.
    Returns (engine, every event published)."""
    line = dataclasses.replace(cfg.line, **{"label_source": "device-id", **line_changes})
    events = []
    with open_station(cfg) as station:
        prepare(station)
        batch = Batch(batch_id, MODEL, "op", expected=expected, manifest=Manifest.load(manifest) if manifest else None)
        engine = Engine(station, batch, line, driver_opts={"timeout_scale": line.timeout_scale},
                        standing_override=standing_override)
        engine.bus.subscribe(events.append)
        engine.bus.subscribe(watch)
        ready(engine)
        engine.start()
        for slot, ports in slots.items():
            engine.run_slot_queue(slot, ports)
        engine.finish()
    return engine, events


def of(kind, events):
    return [e for e in events if isinstance(e, kind)]


def certificates(cfg, device_id):
    db = sqlite3.connect(cfg.audit.database)
    try:
        return db.execute("select status, status_reason from certificates where device_id = ? "
                          "order by reserved_at", (device_id,)).fetchall()
    finally:
        db.close()


def device_state(cfg, device_id):
    db = sqlite3.connect(cfg.audit.database)
    try:
        return db.execute("select state from devices where device_id = ?", (device_id,)).fetchone()[0]
    finally:
        db.close()


# -- COMMIT: the pipeline's own hash comparison ------------------------------------------

class UncheckedCipDriver(CipDriver):
    """The real cip driver with its own COMMIT comparison switched off, as a less careful
    family's driver would be. `unreported` kinds are left out of the receipt (a device that
    reports no hash for them)."""

    unreported: ClassVar[tuple[str, ...]] = ()

    def commit(self) -> CommitReceipt:
        self._written.clear()  # leaves the driver's own check nothing to compare
        receipt = super().commit()
        return CommitReceipt(hashes={kind: digest for kind, digest in receipt.hashes.items()
                                     if kind not in self.unreported})


class CertHashUnreportedDriver(UncheckedCipDriver):
    unreported = ("cert",)


@pytest.fixture
def unchecked_families(monkeypatch):
    """Two more device families, registered the way a real one is (registry._FAMILIES)."""
    monkeypatch.setitem(registry._FAMILIES, "cip-unchecked", f"{__name__}:UncheckedCipDriver")
    monkeypatch.setitem(registry._FAMILIES, "cip-cert-unreported", f"{__name__}:CertHashUnreportedDriver")


@pytest.mark.parametrize("family, fault, shown", [
    # The device flips a bit of the certificate it stores and reports that hash.
    ("cip-unchecked", {0: ["wrong-hash"]}, "device stored cert with SHA-256 "),
    # Every device's receipt lacks the certificate's hash.
    ("cip-cert-unreported", {}, "device stored cert with SHA-256 nothing"),
], ids=["wrong-hash", "missing-hash"])
def test_the_pipeline_compares_commit_hashes_whatever_the_driver_does(engine_config, tmp_path, unchecked_families,
                                                                        family, fault, shown):
    with SimulatedLine(2, tmp_path / "devices", keygen_ms=20, model=MODEL, faults=fault) as line:
        ids, ports = [d.identity.device_id for d in line.devices], list(line.ports)
        engine, events = run_line(engine_config, {"S1": [ports[0]], "S2": [ports[1]]},
                                  batch_id="WO-C", family=family)
    bad = [ids[0]] if fault else ids
    failed = {e.device_id: e for e in of(DeviceFailed, events)}
    assert sorted(failed) == sorted(bad)
    assert [e.device_id for e in of(DevicePassed, events)] == [i for i in ids if i not in bad]
    for device_id, failure in failed.items():
        assert failure.step == "commit" and shown in failure.reason and "not what was sent" in failure.reason
        # The reason names both hashes by their first 16 digits: what the device reported it
        # stores (here, what its flash really holds) and what was sent.
        db = sqlite3.connect(engine_config.audit.database)
        [(pem,)] = db.execute("select cert_pem from certificates where device_id = ?", (device_id,)).fetchall()
        db.close()
        sent = hashlib.sha256(x509.load_pem_x509_certificate(pem.encode()).public_bytes(
            serialization.Encoding.DER)).hexdigest()[:16]
        held = DeviceStore(tmp_path / "devices" / device_id).objects.get("cert")
        reported = hashlib.sha256(held).hexdigest()[:16] + "..." if fault else "nothing"
        assert failure.reason == (f"device on {ports[ids.index(device_id)]} failed COMMIT integrity check: device stored cert with "
                                  f"SHA-256 {reported}, not what was sent ({sent}...)")
        assert certificates(engine_config, device_id) == [("undelivered", f"commit: {failure.reason}")]
        assert device_state(engine_config, device_id) == "failed"
    assert (engine.batch.passed, engine.batch.failed) == (2 - len(bad), len(bad))
    assert verify(engine_config.audit.database).ok


# -- bind: provisioned elsewhere, locked -------------------------------------------------

SEED = "provisioned-elsewhere"


def provisioned_elsewhere(store: Path, *, lock: bool = False) -> bytes:
    """Pre-load the flash of device 0 of a line seeded with SEED as another station would
    leave it: a committed key and a certificate from a CA this station never heard of
    (locked too, with `lock`). Returns the certificate's DER."""
    foreign_ca, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    device_id = derive_device_id(SEED, 0)
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Another Factory CA")]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=365))
            .sign(foreign_ca, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    flash = DeviceStore(store / device_id)
    flash.commit({"cert": der}, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    if lock:
        flash.lock()
    return der


@pytest.mark.parametrize("reprovision", ["refuse", "supervisor"])
def test_a_device_holding_a_certificate_this_station_never_issued_is_refused_at_bind(engine_config, tmp_path,
                                                                                       reprovision):
    foreign = provisioned_elsewhere(tmp_path / "devices")
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20, model=MODEL, seed=SEED) as line:
        assert line.devices[0].store.state == "provisioned"
        device_id = line.devices[0].identity.device_id
        engine, events = run_line(engine_config, {"S1": line.ports}, batch_id="WO-E", reprovision=reprovision)
        held = line.devices[0].store.objects["cert"]
    [failed] = of(DeviceFailed, events)
    assert (failed.step, failed.code) == ("bind", "already-provisioned")
    assert "reports a certificate this station never issued" in failed.reason
    assert not of(OverrideApproved, events)
    assert certificates(engine_config, device_id) == [], "nothing may be signed for it"
    assert held == foreign, "the device's own certificate is left alone"
    assert [o.took_unit for o in engine.outcomes] == [False]


def test_a_locked_device_fails_at_bind_without_taking_a_unit(engine_config, tmp_path):
    """A work order for one unit: the locked device in S1 is refused at bind and never holds
    the unit, so the blank device in S2 gets it."""
    provisioned_elsewhere(tmp_path / "devices", lock=True)
    with SimulatedLine(2, tmp_path / "devices", keygen_ms=20, model=MODEL, seed=SEED) as line:
        locked, blank = (d.identity.device_id for d in line.devices)
        assert line.devices[0].store.state == "locked"
        engine, events = run_line(engine_config, {"S1": [line.ports[0]], "S2": [line.ports[1]]},
                                  batch_id="WO-LK", expected=1, reprovision="supervisor")
    [failed] = of(DeviceFailed, events)
    assert (failed.device_id, failed.step, failed.code) == (locked, "bind", "device-locked")
    assert [e.device_id for e in of(DevicePassed, events)] == [blank]
    assert {o.device_id: o.took_unit for o in engine.outcomes} == {locked: False, blank: True}
    assert certificates(engine_config, locked) == []


# -- prove: a failed proof does not count --------------------------------------------------

def test_a_device_that_failed_its_proof_is_not_provisioned_and_is_provisioned_afresh(engine_config, tmp_path):
    store = tmp_path / "devices"
    with SimulatedLine(1, store, keygen_ms=20, model=MODEL, faults={0: ["bad-proof"]}) as line:
        device_id = line.devices[0].identity.device_id
        first, events = run_line(engine_config, {"S1": line.ports}, batch_id="WO-P1")
    [failed] = of(DeviceFailed, events)
    assert (failed.step, failed.code) == ("prove", "DeviceIntegrityError")
    assert not of(DevicePassed, events)
    assert (first.batch.passed, first.batch.failed) == (0, 1)
    assert [status for status, _ in certificates(engine_config, device_id)] == ["undelivered"]
    assert device_state(engine_config, device_id) == "failed"

    # Re-inserted (same flash, the fault gone): no override needed, a new certificate.
    with SimulatedLine(1, store, keygen_ms=20, model=MODEL) as line:
        assert line.devices[0].identity.device_id == device_id
        assert line.devices[0].store.state == "provisioned", "it holds the unproven certificate"
        again, events = run_line(engine_config, {"S1": line.ports}, batch_id="WO-P2")
        held = x509.load_der_x509_certificate(line.devices[0].store.objects["cert"])
    [passed] = of(DevicePassed, events)
    assert passed.device_id == device_id and not of(DeviceFailed, events) and not of(OverrideApproved, events)
    assert [status for status, _ in certificates(engine_config, device_id)] == ["superseded", "verified"]
    assert format(held.serial_number, "x") == passed.serial_hex
    assert device_state(engine_config, device_id) == "passed"
    assert verify(engine_config.audit.database).ok


class StoredCertUnreportedDriver(CipDriver):
    """The real cip driver, but its device's report of what it stores lacks the certificate."""

    def stored(self) -> CommitReceipt:
        receipt = super().stored()
        return CommitReceipt(hashes={k: v for k, v in receipt.hashes.items() if k != "cert"})


def test_a_provisioned_device_that_names_no_certificate_is_refused_at_bind(engine_config, tmp_path, monkeypatch):
    monkeypatch.setitem(registry._FAMILIES, "cip-stored-unreported", f"{__name__}:StoredCertUnreportedDriver")
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20, model=MODEL) as line:
        device_id, port = line.devices[0].identity.device_id, line.ports[0]
        run_line(engine_config, {"S1": [line.ports[0]]}, batch_id="WO-S1")
        # Even with re-provisioning approved, a device that cannot say what it holds is refused.
        engine, events = run_line(engine_config, {"S1": [line.ports[0]]}, batch_id="WO-S2",
                                  family="cip-stored-unreported", reprovision="supervisor",
                                  standing_override="sup-1")
    [failure] = of(DeviceFailed, events)
    assert (failure.device_id, failure.step) == (device_id, "bind")
    assert failure.reason == (f"device on {port} failed STORED integrity check: the device says it is "
                              "provisioned but reports no stored certificate")
    assert not of(DevicePassed, events) and not of(OverrideApproved, events)
    assert [o.took_unit for o in engine.outcomes] == [False]
    assert certificates(engine_config, device_id) == [("verified", "proof of possession verified")]
    assert device_state(engine_config, device_id) == "passed"
