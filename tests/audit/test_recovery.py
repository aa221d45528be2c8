"""Crash safety: a real station process killed with SIGKILL while writing, then restarted."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from station.audit import AuditDB, verify

from tests.audit.conftest import STATION

CHILD = Path(__file__).with_name("child.py")


@pytest.fixture
def crashed(tmp_path):
    """The child leaves D1 delivered, D2 issued, D3 reserved and in flight, then is killed
    while it streams events. Returns the database path."""
    proc = subprocess.Popen([sys.executable, str(CHILD), "crash", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        # Kill while it is writing: after it has committed a few events, with more coming.
        for _ in range(25):
            assert proc.stdout.readline().strip()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return tmp_path / "audit.db"


def by_device(db):
    return {d: [c["status"] for c in db.certificates_for_device(d)] for d in ("D1", "D2", "D3")}


def test_after_sigkill_the_chain_verifies_and_recovery_marks_unfinished_work(crashed):
    before = verify(crashed)
    assert before.ok, before.reason
    assert before.events_checked > 25
    with AuditDB.open(crashed, station_id=STATION) as db:
        assert by_device(db) == {"D1": ["delivered"], "D2": ["issued"], "D3": ["reserved"]}
        changed = db.recover_after_crash()
        assert changed["devices_interrupted"] == ["D2", "D3"]
        # D3's was only reserved (never signed: cannot be on the device); D2's was signed
        # and may have been committed just before the kill: unknown until the device says.
        assert changed["certificates_undelivered"] == [1003]
        assert changed["certificates_unknown"] == [1002]
        # D1's was committed but never proven: it stays delivered, and the record names it.
        assert changed["certificates_unproven"] == [1001]
        assert len(changed["sessions_closed"]) == 1
        assert by_device(db) == {"D1": ["delivered"], "D2": ["unknown"],
                                 "D3": ["undelivered"]}
        assert db.recover_after_crash() == {"devices_interrupted": [],
                                            "certificates_undelivered": [],
                                            "certificates_unknown": [],
                                            "certificates_unproven": [],
                                            "sessions_closed": []}
    after = verify(crashed)
    assert after.ok, after.reason
    # Each change is an event: 2 device states, 2 certificate statuses, 1 summary.
    assert after.events_checked == before.events_checked + 5


def test_reprovisioning_an_interrupted_device_supersedes_or_voids_its_old_certificates(
        crashed, issue):
    with AuditDB.open(crashed, station_id=STATION) as db:
        db.recover_after_crash()
        issue(db, "D2", "delivered")
        issue(db, "D3", "delivered")
        # D2's old certificate was signed: it exists, so it is superseded; D3's was only
        # reserved, never signed: void.
        assert by_device(db) == {"D1": ["delivered"], "D2": ["superseded", "delivered"],
                                 "D3": ["void", "delivered"]}
    assert verify(crashed).ok


def test_recovery_leaves_the_work_of_a_live_writer_alone(db_path):
    # Another writer (a `station issue` run) is still alive: its reservation is not an orphan.
    cli_run = AuditDB.open(db_path, station_id=STATION)
    cli_run.reserve_certificate(serial=0x77, spki_sha256="77" * 32, subject="CN=x",
                                device_id="X")
    with AuditDB.open(db_path, station_id=STATION) as station:
        assert station.recover_after_crash()["certificates_undelivered"] == []
        # Once that writer has gone, its unconfirmed reservation is.
        cli_run.close()
        assert station.recover_after_crash()["certificates_undelivered"] == [0x77]


def test_processes_writing_at_once_keep_one_chain(db_path):
    AuditDB.open(db_path, station_id=STATION).close()
    procs = [subprocess.Popen([sys.executable, str(CHILD), "burst", str(db_path.parent)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:  # released together: their writes interleave
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        assert proc.stdout.readline().strip() == "done"
        proc.wait(timeout=30)
        proc.stdin.close()
        proc.stdout.close()
    report = verify(db_path)
    assert report.ok, report.reason
    assert report.events_checked == 180
