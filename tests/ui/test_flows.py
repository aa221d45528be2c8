"""Full flows of the operator terminal: Textual's Pilot drives the app headless, against
simulated devices on real pseudo-terminals, the real SoftHSM2 token and a real SQLite audit."""
from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
import subprocess
import tty
from pathlib import Path

import pytest

from station.operator import i18n
from station.operator.fixture import PortWatcher
from station.sim import SimulatedLine
from station.ui.launch import build_app, demo_app
from tests.ui.conftest import SIZE, audit_events, scan, screen_text, track, wait_for


def fast_demo(cfg, workdir, **kwargs):
    opts = dict(slots=4, devices=6, keygen_ms=20, faulty=2, hold_s=0.1, gap_s=0.05)
    return track(demo_app(cfg, workdir, **{**opts, **kwargs}))


async def test_badge_then_work_order_runs_a_batch_to_its_summary(ui_config, tmp_path):
    app = fast_demo(ui_config, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        model = app.model
        await wait_for(pilot, lambda: model.station_ready, what="station open")
        await scan(pilot, "OP-DEMO")
        await wait_for(pilot, lambda: model.operator == "OP-DEMO", what="login")
        await scan(pilot, "WO-1")
        await wait_for(pilot, lambda: model.batch is not None and model.batch.closed, what="batch closed")
        batch = model.batch
        assert (batch.passed, batch.failed) == (5, 1)
        # The faulty device: FAIL with its step and a reason in words.
        assert batch.failures_by_cause()[0][0] == "issue"
        assert "refused" in batch.failures_by_cause()[0][1]
        summary = app.screen
        assert type(summary).__name__ == "BatchSummary"
        text = screen_text(app)
        assert "5 passed" in text and "1 failed" in text
        head_id, _, head_hash = batch.audit_head.partition(":")
        assert head_hash[:16] in text  # the audit head, to write down
        assert app.focused is not None and app.focused.id == "summary-scan"
        # The batch report was written at close, and the summary says where.
        report = Path(batch.report)
        assert report == ui_config.base_dir / "reports" / f"{batch.batch_id}.html" and report.exists()
        assert "Batch report:" in text and batch.batch_id + ".html" in text.replace("\n", "")
        assert "5" in report.read_text() and batch.batch_id in report.read_text()
    logins = audit_events(ui_config.audit.database, "operator-logged-in")
    assert logins and logins[0]["operator"] == "OP-DEMO"
    [closed] = audit_events(ui_config.audit.database, "batch-closed")
    assert closed["batch_id"] == batch.batch_id


async def test_a_faulty_device_shows_fail_with_step_and_reason(ui_config, tmp_path):
    app = fast_demo(ui_config, tmp_path, slots=1, devices=1, faulty=0, hold_s=30)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model.station_ready)
        await scan(pilot, "OP-DEMO")
        await wait_for(pilot, lambda: app.model.operator)
        await scan(pilot, "WO-2")
        await wait_for(pilot, lambda: app.model.slots["S1"].result == "FAIL", what="FAIL")
        text = screen_text(app)
        assert "✘" in text and "FAIL" in text
        assert "at issue:" in text and "rsa-1024" in text  # the step and the reason, in words
        app.session.fixture.stop()


async def test_an_unknown_scan_is_refused_with_a_bell_and_changes_nothing(ui_config, tmp_path):
    app = fast_demo(ui_config, tmp_path)
    bells = []
    async with app.run_test(size=SIZE) as pilot:
        app.bell = lambda: bells.append(1)  # count the bells the terminal would ring
        await wait_for(pilot, lambda: app.model.station_ready)
        for refused in ("HELLO WORLD", "WO-1"):  # unknown; a work order before any badge
            await scan(pilot, refused)
            await pilot.pause(0.2)
            assert app.model.operator is None and app.model.batch is None
            assert app.model.last_scan[0] is False
        assert len(bells) == 2
        text = screen_text(app)
        assert "scan your operator badge first" in text
        assert app.focused.id == "scan"
    assert audit_events(ui_config.audit.database, "operator-logged-in") == []


@pytest.fixture
def one_device(tmp_path):
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20, model="SIM-1") as line:
        yield line


def _line_config(cfg, tmp_path, line, **line_changes):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    device = line.devices[0].identity.device_id
    for wo in ("WO-1", "WO-2"):
        (manifests / f"{wo}.csv").write_text(f"device_id,label\n{device},LBL-{device[-6:]}\n")
    return dataclasses.replace(
        cfg, ui=dataclasses.replace(cfg.ui, manifests=manifests),
        line=dataclasses.replace(cfg.line, model="SIM-1", ports={"S1": line.ports[0]}, **line_changes))


async def test_reprovisioning_needs_a_supervisor_scan_and_both_identities_are_audited(ui_config, tmp_path, one_device):
    cfg = _line_config(ui_config, tmp_path, one_device, reprovision="supervisor")
    app = track(build_app(cfg, PortWatcher(cfg.line.ports, hold_s=0.1, gap_s=0.05)))
    async with app.run_test(size=SIZE) as pilot:
        model = app.model
        await wait_for(pilot, lambda: model.station_ready)
        await scan(pilot, "OP-ANNA")
        await wait_for(pilot, lambda: model.operator == "OP-ANNA")
        await scan(pilot, "WO-1")
        await wait_for(pilot, lambda: model.batch and model.batch.passed == 1, what="first provisioning")
        await scan(pilot, "SV-BOB")  # nothing waits for a supervisor yet
        assert model.last_scan == (False, "no slot is waiting for a supervisor")
        app.action_close_batch()
        await wait_for(pilot, lambda: model.batch.closed, what="WO-1 closed")
        await scan(pilot, "WO-2")  # scanned on the summary screen
        await wait_for(pilot, lambda: model.waiting_for_override(), what="override request")
        text = screen_text(app)
        assert "SUPERVISOR" in text and "scan a supervisor badge" in text
        await scan(pilot, "SV-BOB")
        await wait_for(pilot, lambda: model.batch.passed == 1 and model.batch.batch_id == "WO-2", what="re-provisioned")
        app.action_close_batch()
        await wait_for(pilot, lambda: model.batch.closed)
    # Both identities: the supervisor signs the approval, the operator the new certificate.
    [approved] = audit_events(cfg.audit.database, "override-approved")
    assert (approved["batch_id"], approved["operator"], approved["data"]["supervisor"]) == ("WO-2", "SV-BOB", "SV-BOB")
    with sqlite3.connect(f"file:{cfg.audit.database}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT batch_id, operator, status FROM certificates ORDER BY reserved_at").fetchall()
    assert rows == [("WO-1", "OP-ANNA", "superseded"), ("WO-2", "OP-ANNA", "verified")]


async def test_a_scanned_label_binds_to_the_slot_waiting_for_it(ui_config, tmp_path, one_device):
    cfg = _line_config(ui_config, tmp_path, one_device, label_source="scan")
    device = one_device.devices[0].identity.device_id
    app = track(build_app(cfg, PortWatcher(cfg.line.ports, hold_s=30, gap_s=0.05)))  # PASS stays shown
    async with app.run_test(size=SIZE) as pilot:
        model = app.model
        await wait_for(pilot, lambda: model.station_ready)
        await scan(pilot, "OP-ANNA")
        await wait_for(pilot, lambda: model.operator == "OP-ANNA")
        await scan(pilot, "LBL-EARLY")  # nothing waits for a label yet: refused, nothing changes
        assert model.last_scan == (False, "no slot is waiting for a label")
        await scan(pilot, "WO-1")
        await wait_for(pilot, lambda: model.waiting_for_label(), what="a slot waiting for its label")
        assert "SCAN LABEL" in screen_text(app)
        await scan(pilot, f"S1:LBL-{device[-6:]}")  # with the slot prefix
        await wait_for(pilot, lambda: model.slots["S1"].result == "PASS", what="PASS")
        assert model.slots["S1"].label == f"LBL-{device[-6:]}"
    with sqlite3.connect(f"file:{cfg.audit.database}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT label, state FROM devices WHERE device_id = ?", (device,)).fetchone() == \
            (f"LBL-{device[-6:]}", "passed")


def _chattr(path, flag: str) -> bool:
    return shutil.which("chattr") is not None and \
        subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


async def test_a_halted_issuance_shows_the_banner_and_stops_the_line(ui_config, tmp_path):
    db = ui_config.audit.database
    app = fast_demo(ui_config, tmp_path, slots=2, devices=16, keygen_ms=600, faulty=None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model.station_ready)
        await scan(pilot, "OP-DEMO")
        await wait_for(pilot, lambda: app.model.operator)
        await scan(pilot, "WO-3")
        await wait_for(pilot, lambda: app.model.in_flight(), what="devices in flight")
        files = [db, db.with_name(db.name + "-wal")]
        if not all(_chattr(f, "+i") for f in files):
            for f in files:
                _chattr(f, "-i")
            pytest.skip("chattr +i not available here (the audit database cannot be made unwritable)")
        try:
            await wait_for(pilot, lambda: app.model.halted, what="halt")
            await wait_for(pilot, lambda: app.model.batch.closed, what="line stopped")
            text = screen_text(app)
        finally:
            for f in files:
                _chattr(f, "-i")
        assert "ISSUANCE HALTED" in text and "the line is stopped" in text
        assert app.model.batch.left_open
        assert app.model.batch.done < 16  # nothing new started once halted


async def test_q_with_devices_in_flight_asks_then_stops_gently(ui_config, tmp_path):
    app = fast_demo(ui_config, tmp_path, slots=2, devices=12, keygen_ms=600, faulty=None)
    async with app.run_test(size=SIZE) as pilot:
        model = app.model
        await wait_for(pilot, lambda: model.station_ready)
        await scan(pilot, "OP-DEMO")
        await wait_for(pilot, lambda: model.operator)
        await scan(pilot, "WO-4")
        await wait_for(pilot, lambda: model.in_flight(), what="devices in flight")
        await pilot.press("q")
        await pilot.pause(0.1)
        assert type(app.screen).__name__ == "ConfirmQuit"
        await pilot.press("n")  # carry on
        await pilot.pause(0.1)
        assert type(app.screen).__name__ == "Screen" or app.screen.id is None
        await wait_for(pilot, lambda: model.in_flight(), what="devices in flight again")
        await pilot.press("q")
        await pilot.pause(0.1)
        await pilot.press("y")
        await wait_for(pilot, lambda: app.return_code is not None, what="the app to exit")
    batch = model.batch
    assert model.stopped and batch.left_open and batch.done < 12  # in flight finished, nothing new started
    assert audit_events(ui_config.audit.database, "batch-closed") == []  # the batch stays open
    assert all(s.result in ("PASS", "FAIL", None) and not s.in_flight for s in model.slots.values())


async def test_the_pin_is_asked_masked_and_a_wrong_pin_is_reported_not_retried(ui_config, tmp_path):
    pin = ui_config.hsm.pin_file.read_text().strip()
    cfg = dataclasses.replace(ui_config, hsm=dataclasses.replace(ui_config.hsm, pin_file=None))
    app = fast_demo(cfg, tmp_path)
    opened = []
    real_open = app.session.open
    app.session.open = lambda *args: opened.append(1) or real_open(*args)  # count login attempts
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        assert type(app.screen).__name__ == "PinScreen"
        field = app.screen.query_one("#pin")
        assert field.password and app.focused is field
        await pilot.press(*"0000", "enter")
        await wait_for(pilot, lambda: app.model.station_error, what="wrong PIN reported")
        await pilot.pause(0.5)
        assert len(opened) == 1  # reported, asked again, never retried on its own
        assert type(app.screen).__name__ == "PinScreen"
        text = screen_text(app)
        assert "Wrong PIN" in text and "0000" not in text
        await pilot.press(*pin, "enter")
        await wait_for(pilot, lambda: app.model.station_ready, what="station open")
        assert pin not in screen_text(app)
        assert len(opened) == 2


async def test_a_serial_scanner_feeds_the_same_router(ui_config, tmp_path):
    # A scanner in USB CDC mode is a serial port: here the slave side of a real pty, with the
    # test typing into the master as the scanner's firmware would.
    master, slave = os.openpty()
    tty.setraw(slave)
    cfg = dataclasses.replace(ui_config, scan=dataclasses.replace(ui_config.scan, serial_port=os.ttyname(slave)))
    app = fast_demo(cfg, tmp_path)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.model.station_ready)
            os.write(master, b"NOT-A-CODE\r\nOP-SERIAL\r\n")
            await wait_for(pilot, lambda: app.model.operator == "OP-SERIAL", what="login by the serial scanner")
            assert any("NOT-A-CODE" in entry.text and "refused" in entry.text for entry in app.model.log)
            await pilot.press("q")
            await wait_for(pilot, lambda: app.return_code is not None, what="exit")
    finally:
        os.close(master)
        os.close(slave)


async def test_the_command_palette_offers_the_less_common_actions(ui_config, tmp_path):
    app = fast_demo(ui_config, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert titles == ["Close batch", "Stop line", "Help", "Quit"]
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        assert type(app.screen).__name__ == "CommandPalette"
        await pilot.press(*"Help", "enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen", what="help from the palette")


async def test_the_terminal_speaks_the_configured_language(ui_config, tmp_path):
    cfg = dataclasses.replace(ui_config, ui=dataclasses.replace(ui_config.ui, language="de"))
    app = fast_demo(cfg, tmp_path)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.model.station_ready)
            await scan(pilot, "WO-1")
            text = screen_text(app)
            assert "zuerst den Bedienerausweis scannen" in text  # the refusal
            assert "Bediener" in text and "Hier scannen" in text  # the panel and the scan field
    finally:
        i18n.use_language("en")
