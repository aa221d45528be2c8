"""Deferred records (station/audit/database.py, docs/audit.md "What is durable when"): a
step's progress takes its place in the chain at once and becomes durable with the next COMMIT
without its writer waiting; a durable record is durable only with everything before it; a
deferred record that is lost stops every later write. Real SQLite files, real threads."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from station.audit import AuditDB, AuditWriteFailed, verify
from station.errors import PolicyRefusal
from station.engine import events as ev
from station.engine.audit_writer import AuditWriter
from tests.audit.conftest import STATION

CHILD = Path(__file__).with_name("deferred_child.py")


def stored_kinds(path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [k for (k,) in conn.execute("SELECT kind FROM events ORDER BY id")]


def test_a_deferred_event_is_committed_by_the_committer_with_no_later_write(db_path):
    db = AuditDB.open(db_path, station_id=STATION)
    try:
        assert db.log_event("step-finished", data={"step": "identify"}, durable=False) is None
        # Another process sees it once the committer thread has committed it; nothing else
        # is written meanwhile. (A bound, not a timing: the wait ends as soon as it shows.)
        deadline = time.monotonic() + 10
        while "step-finished" not in stored_kinds(db_path) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert stored_kinds(db_path)[-1] == "step-finished"
        assert db.records_deferred == 1
    finally:
        db.close()


def test_a_durable_record_returns_only_once_the_deferred_records_before_it_are_durable(db_path):
    db = AuditDB.open(db_path, station_id=STATION)
    try:
        for n in range(50):
            db.log_event("progress", data={"n": n}, durable=False)
            db.log_event("decision", data={"n": n})
            # When the decision returns, another connection sees it and its progress event.
            with sqlite3.connect(db_path) as other:
                rows = other.execute("SELECT kind, json_extract(data, '$.n') FROM events "
                                     "ORDER BY id DESC LIMIT 2"
                                     ).fetchall()
            assert rows == [("decision", n), ("progress", n)]
    finally:
        db.close()
    assert verify(db_path).ok


def test_a_deferred_status_change_is_checked_at_once_though_not_waited_for(db_path):
    db = AuditDB.open(db_path, station_id=STATION)
    try:
        db.reserve_certificate(serial=0x1F, spki_sha256="ab" * 32, subject="CN=dev",
                               device_id="dev")
        # A transition the database refuses is refused in the caller's thread, deferred or not:
        # only the fsync is left to the next COMMIT, never the decision.
        with pytest.raises(PolicyRefusal) as refused:
            db.set_certificate_status(0x1F, "verified", durable=False)
        assert refused.value.code == "certificate-status"
    finally:
        db.close()


def test_a_lost_deferred_record_refuses_every_later_write(tmp_path):
    out = subprocess.run([sys.executable, str(CHILD), str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["groups_lost"] == 1
    # The disk took writes again, but the process had lost a record it put in the chain.
    assert result["later"] is not None and "earlier records could not be committed" in result["later"]
    assert "progress" not in result["kinds"] and "decision" not in result["kinds"]
    assert result["kinds"][-1] == "warm-up"


def test_the_engine_defers_progress_and_waits_for_every_decision(db_path):
    db = AuditDB.open(db_path, station_id=STATION)
    writer = AuditWriter(db, "B1", "op")
    try:
        progress = [ev.DeviceAttached(slot="1", port="/dev/ttyX"),
                    ev.DeviceIdentified(slot="1", device_id="D1", model="M", hw_rev="A",
                                        fw_version="1", state="blank"),
                    ev.StepFinished(slot="1", step="identify", device_id="D1", ok=True,
                                    duration_s=0.1),
                    ev.StepFinished(slot="1", step="bind", device_id="D1", ok=True,
                                    duration_s=0.1)]
        decisions = [ev.DevicePassed(slot="1", device_id="D1", label="L1", serial_hex="1f",
                                     fingerprint_sha256="ab" * 32, duration_s=1.0),
                     ev.DeviceFailed(slot="1", device_id="D2", step="bind", reason="no",
                                     code="x", duration_s=1.0),
                     ev.OverrideApproved(slot="1", device_id="D1", supervisor="sup", what="w")]
        for event in progress + decisions:
            writer.record(event)
    finally:
        db.close()
    # Every decision was waited for (and committed what came before it); no progress event
    # was: 4 deferred records of the 7, all of them in the chain.
    assert db.records_deferred == len(progress)
    assert stored_kinds(db_path)[-7:] == [e.kind for e in progress + decisions]


def test_a_deferred_event_is_checked_in_its_writer_s_thread(db_path):
    db = AuditDB.open(db_path, station_id=STATION)
    try:
        with pytest.raises(ValueError, match="not JSON-serialisable"):
            db.log_event("progress", data={"when": object()}, durable=False)
        with pytest.raises(ValueError, match="must not be empty"):
            db.log_event("", durable=False)
    finally:
        db.close()
    assert "progress" not in stored_kinds(db_path)


def test_a_deferred_event_after_close_is_refused(db_path):
    db = AuditDB.open(db_path, station_id=STATION)
    db.close()
    with pytest.raises(AuditWriteFailed, match="closed"):
        db.log_event("progress", durable=False)
