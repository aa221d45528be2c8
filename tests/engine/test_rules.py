"""The line's rules, end to end over ptys: manifest, model, labels, re-provisioning with a
recorded supervisor override, locking, and label scanning through the engine's commands."""
from __future__ import annotations

import dataclasses
import io
import sqlite3
import threading

import pytest

from station.boot import open_station
from station.engine.batch import Batch, Manifest
from station.engine.engine import Engine
from station.engine.events import DeviceFailed, DevicePassed, SlotStateChanged
from station.errors import PolicyRefusal
from station.headless import run_batch
from station.sim import SimulatedLine
from tests.engine.conftest import MODEL, write_manifest


def _run(cfg, tmp_path, line, batch_id, manifest=None, model=MODEL, override=None):
    out = io.StringIO()
    summary = run_batch(cfg, batch_id=batch_id, model=model, operator="op", slots={"S1": line.ports},
                        manifest=manifest or write_manifest(tmp_path / f"{batch_id}.csv", line), out=out,
                        supervisor_override=override)
    return summary, out.getvalue()


def _with_line(cfg, **changes):
    return dataclasses.replace(cfg, line=dataclasses.replace(cfg.line, **changes))


def test_device_missing_from_the_manifest_is_refused(engine_config, tmp_path):
    with SimulatedLine(2, tmp_path / "devices", keygen_ms=20) as line:
        manifest = tmp_path / "m.csv"
        d0 = line.devices[0].identity.device_id
        manifest.write_text(f"device_id,label\n{d0},L-ONLY\n")
        summary, printed = _run(engine_config, tmp_path, line, "WO-M", manifest=manifest)
    assert (summary.passed, summary.failed) == (1, 1)
    assert "step=bind" in printed and "is not in the batch manifest" in printed


def test_device_of_another_model_is_refused(engine_config, tmp_path):
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20, model="OTHER-2") as line:
        summary, printed = _run(engine_config, tmp_path, line, "WO-X")
    assert summary.failed == 1 and "reports model OTHER-2" in printed and "step=bind" in printed


def test_label_bound_to_another_device_in_an_earlier_batch_is_refused(engine_config, tmp_path):
    with SimulatedLine(2, tmp_path / "devices", keygen_ms=20) as line:
        a, b = (d.identity.device_id for d in line.devices)
        first = tmp_path / "first.csv"
        first.write_text(f"device_id,label\n{a},SHARED-1\n")
        second = tmp_path / "second.csv"
        second.write_text(f"device_id,label\n{b},SHARED-1\n")
        s1 = run_batch(engine_config, batch_id="WO-1", model=MODEL, operator="op", slots={"S1": [line.ports[0]]},
                       manifest=first, out=io.StringIO())
        out = io.StringIO()
        s2 = run_batch(engine_config, batch_id="WO-2", model=MODEL, operator="op", slots={"S1": [line.ports[1]]},
                       manifest=second, out=out)
    assert s1.passed == 1 and s2.failed == 1
    assert f"label SHARED-1 is already bound to device {a}" in out.getvalue()


def test_reprovisioning_is_refused_then_allowed_with_a_recorded_supervisor_override(engine_config, tmp_path):
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20) as line:
        device_id = line.devices[0].identity.device_id
        manifest = write_manifest(tmp_path / "m.csv", line)
        first, _ = _run(engine_config, tmp_path, line, "WO-A", manifest=manifest)
        refused, printed = _run(engine_config, tmp_path, line, "WO-B", manifest=manifest)
        supervised = _with_line(engine_config, reprovision="supervisor")
        still_refused, printed_2 = _run(supervised, tmp_path, line, "WO-C", manifest=manifest)
        allowed, _ = _run(supervised, tmp_path, line, "WO-D", manifest=manifest, override="sup-7")
    assert first.passed == 1
    assert refused.failed == 1 and "already provisioned" in printed and "reprovision = \"refuse\"" in printed
    assert still_refused.failed == 1 and "needs a supervisor override" in printed_2
    assert allowed.passed == 1
    db = sqlite3.connect(engine_config.audit.database)
    statuses = [r[0] for r in db.execute("select status from certificates where device_id = ? order by reserved_at",
                                         (device_id,))]
    assert statuses == ["superseded", "verified"]
    override = db.execute("select operator, batch_id, data from events where kind = 'override-approved'").fetchall()
    assert len(override) == 1 and override[0][0] == "sup-7" and override[0][1] == "WO-D"
    assert device_id in db.execute("select device_id from events where kind = 'override-approved'").fetchone()[0]


def test_locked_device_is_never_provisioned_again(engine_config, tmp_path):
    locking = _with_line(engine_config, lock=True, reprovision="supervisor")
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20) as line:
        manifest = write_manifest(tmp_path / "m.csv", line)
        first, _ = _run(locking, tmp_path, line, "WO-L1", manifest=manifest)
        again, printed = _run(locking, tmp_path, line, "WO-L2", manifest=manifest, override="sup-1")
    assert first.passed == 1
    assert again.failed == 1 and "is locked" in printed


def test_scanned_label_binds_the_device_in_its_slot(engine_config, tmp_path):
    scanning = _with_line(engine_config, label_source="scan")
    labels = tmp_path / "labels.csv"
    labels.write_text("label\nSCAN-001\nSCAN-002\n")
    events = []
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20) as line, open_station(scanning) as station:
        engine = Engine(station, Batch("WO-SCAN", MODEL, "op", manifest=Manifest.load(labels)), scanning.line,
                        driver_opts={"timeout_scale": scanning.line.timeout_scale})
        waiting = threading.Event()
        engine.bus.subscribe(events.append)
        engine.bus.subscribe(lambda e: waiting.set() if isinstance(e, SlotStateChanged)
                             and e.state == "waiting-label" else None)
        engine.start()
        engine.attach("S3", line.ports[0])
        assert waiting.wait(10), "the slot must wait for a scan"
        # A scan outside the label alphabet is refused as it arrives; the slot keeps waiting.
        for bad in ("SCAN-002\n", "SCAN 002", "\x1b[31mSCAN", ""):
            with pytest.raises(PolicyRefusal) as refused:
                engine.bind_label("S3", bad)
            assert refused.value.code == "label-invalid"
        engine.bind_label("S3", "SCAN-002")
        engine.finish()
    passed = [e for e in events if isinstance(e, DevicePassed)]
    assert [(e.slot, e.label) for e in passed] == [("S3", "SCAN-002")]
    assert not [e for e in events if isinstance(e, DeviceFailed)]


def test_a_device_pulled_out_while_its_slot_waits_for_a_scan_fails_at_once(engine_config, tmp_path, monkeypatch):
    scanning = _with_line(engine_config, label_source="scan")
    labels = tmp_path / "labels.csv"
    labels.write_text("label\nSCAN-001\n")
    # Far longer than the test waits: the wait must end by the removal, not by its timeout.
    monkeypatch.setattr(Engine, "LABEL_WAIT_S", 600.0)
    events = []
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20) as line, open_station(scanning) as station:
        engine = Engine(station, Batch("WO-PULL", MODEL, "op", manifest=Manifest.load(labels)), scanning.line,
                        driver_opts={"timeout_scale": scanning.line.timeout_scale})
        waiting, failed = threading.Event(), threading.Event()
        engine.bus.subscribe(events.append)
        engine.bus.subscribe(lambda e: waiting.set() if isinstance(e, SlotStateChanged)
                             and e.state == "waiting-label" else None)
        engine.bus.subscribe(lambda e: failed.set() if isinstance(e, DeviceFailed) else None)
        engine.start()
        worker = engine.attach("S3", line.ports[0], hotplug=True)
        assert waiting.wait(10), "the slot must wait for a scan"
        engine.detach("S3")
        assert failed.wait(10), "the removal must end the wait for a label"
        worker.join(10)
        assert not worker.is_alive()
        engine.finish()
    [failure] = [e for e in events if isinstance(e, DeviceFailed)]
    assert (failure.slot, failure.step, failure.code) == ("S3", "bind", "device-removed")
    assert failure.reason == "device removed during bind"
    assert not [e for e in events if isinstance(e, DevicePassed)]
    # Refused before bind took it: no unit of the work order, the label still free.
    with sqlite3.connect(scanning.audit.database) as conn:
        assert conn.execute("SELECT COUNT(*) FROM devices WHERE label = 'SCAN-001'").fetchone() == (0,)


def test_a_work_order_never_provisions_more_than_its_expected_count(engine_config, tmp_path):
    with SimulatedLine(4, tmp_path / "devices", keygen_ms=20) as line:
        manifest = write_manifest(tmp_path / "m.csv", line)
        out = io.StringIO()
        summary = run_batch(engine_config, batch_id="WO-2", model=MODEL, operator="op", expected=2,
                            slots={"S1": line.ports[:2], "S2": line.ports[2:]}, manifest=manifest, out=out)
    assert (summary.passed, summary.failed) == (2, 2), out.getvalue()
    assert out.getvalue().count("already has its 2 device(s)") == 2 and "step=bind" in out.getvalue()


def test_a_resumed_work_order_counts_the_devices_that_passed_before(engine_config, tmp_path):
    from station.audit import AuditDB

    with SimulatedLine(2, tmp_path / "devices", keygen_ms=20) as line:
        manifest = write_manifest(tmp_path / "m.csv", line)
        ids = [d.identity.device_id for d in line.devices]
        # A run of WO-R that was interrupted after one device passed: the batch is still open.
        with AuditDB.open(engine_config.audit.database, station_id=engine_config.station_id) as db:
            db.open_batch("WO-R", model=MODEL, operator="op", expected_count=1,
                          manifest_sha256=Manifest.load(manifest).sha256)
            db.upsert_device(ids[0], model=MODEL, hw_rev="A", fw_version="1", label=f"L-{ids[0][-6:]}",
                             batch_id="WO-R", state="passed")
        out = io.StringIO()
        summary = run_batch(engine_config, batch_id="WO-R", model=MODEL, operator="op", expected=1,
                            slots={"S1": [line.ports[1]]}, manifest=manifest, out=out)
    assert summary.failed == 1 and "already has its 1 device(s)" in out.getvalue()
