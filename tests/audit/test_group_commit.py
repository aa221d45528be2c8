"""Group commit (station/audit/database.py): concurrent writers share one COMMIT and one fsync,
each returns only once its own record is durable, and a failed COMMIT fails every writer in
its group with nothing of theirs recorded. Real SQLite files, real threads; the failing commit
is a real EFBIG from RLIMIT_FSIZE in a child process."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from station.audit import AuditDB, verify
from station.errors import PolicyRefusal
from tests.audit.conftest import STATION

CHILD = Path(__file__).with_name("group_commit_child.py")


def run_threads(count: int, work) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def body(t: int) -> None:
        start.wait()
        try:
            work(t)
        except BaseException as exc:  # collected for the assertion, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(t,)) for t in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_sixteen_writers_are_all_durable_in_one_verified_chain_with_shared_commits(db_path):
    db = AuditDB.open(db_path, station_id=STATION)
    returned: dict[str, int] = {}

    def work(t: int) -> None:
        for i in range(40):
            event_id = db.log_event("step", slot=str(t), data={"tag": f"{t}-{i}"})
            # Durable when it returns: a separate connection (another process) sees it.
            with sqlite3.connect(db_path) as other:
                assert other.execute("SELECT json_extract(data, '$.tag') FROM events "
                                     "WHERE id = ?", (event_id,)).fetchone() == (f"{t}-{i}",)
            returned[f"{t}-{i}"] = event_id

    assert run_threads(16, work) == []
    commits, records = db.commits, db.records_committed
    db.close()
    assert len(returned) == 640 and len(set(returned.values())) == 640
    report = verify(db_path)
    assert report.ok, report.reason
    assert report.events_checked == 640
    # The point of the change: fewer COMMITs (fsyncs) than records.
    assert records == 640 + 1 and commits < records  # + the session registration


def test_a_failing_commit_fails_every_caller_of_its_group_and_records_none_of_them(tmp_path):
    out = subprocess.run([sys.executable, str(CHILD), str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    failed = [tag for tag, _ in result["failed"]]
    assert len(failed) == 16, "every writer must have been told of its failure"
    assert all(message.startswith("disk full writing") or "I/O error" in message
               for _, message in result["failed"]), result["failed"]
    assert sorted(result["stored"]) == sorted(result["ok"]), \
        "exactly the records whose callers returned are stored"
    assert not set(failed) & set(result["stored"])
    # More callers failed than groups were lost: whole groups failed together.
    assert 1 <= result["groups_lost"] < len(failed)
    assert result["verify_ok"] and result["events_checked"] == 20 + len(result["ok"])


def test_a_record_refused_inside_a_group_leaves_the_other_records_of_the_group(db_path):
    db = AuditDB.open(db_path, station_id=STATION)
    key = "ab" * 32

    def work(t: int) -> None:
        for i in range(20):
            db.log_event("step", data={"tag": f"{t}-{i}"})
            if t == 0 and i == 10:
                db.reserve_certificate(serial=0x10, spki_sha256=key, subject="CN=a",
                                       device_id="a")
            if t == 1 and i == 15:
                try:  # the same key again: refused, alone
                    db.reserve_certificate(serial=0x11, spki_sha256=key, subject="CN=b",
                                           device_id="b")
                except PolicyRefusal:
                    pass

    assert run_threads(8, work) == []
    db.close()
    report = verify(db_path)
    assert report.ok, report.reason
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'step'").fetchone() == (160,)
        assert conn.execute("SELECT serial FROM certificates").fetchall() == [("10",)]


def test_checkpoints_fall_due_from_the_counter_in_memory_under_concurrent_writers(db_path):
    db = AuditDB.open(db_path, station_id=STATION, checkpoint_every=50)
    key = ec.generate_private_key(ec.SECP256R1())
    db.set_checkpoint_signer(key)
    assert run_threads(8, lambda t: [db.log_event("step") for _ in range(100)]) == []
    db.close()
    report = verify(db_path, key.public_key())
    assert report.ok, report.reason
    with sqlite3.connect(db_path) as conn:
        covered = [row[0] for row in conn.execute(
            "SELECT last_event_id FROM checkpoints ORDER BY id")]
    # 800 events + one checkpoint-written event each: a checkpoint every 51 ids or so.
    assert len(covered) >= 14
    gaps = [b - a for a, b in zip([0] + covered, covered)]
    assert all(gap <= 50 + 1 + 16 for gap in gaps), gaps
