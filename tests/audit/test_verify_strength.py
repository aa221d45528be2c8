"""How strong `verify` is against a careful attacker and a damaged file (issue 12).

Each test tampers with a real SQLite file the way someone with write access would (triggers
dropped, hashes recomputed where that helps the attacker) and asserts that the report names
the row that was changed. test_tamper.py covers the naive edits; this file covers the edits
that keep each row self-consistent, the genesis value, every checked checkpoint field, the
certificate status transitions the log records, and a file with garbage written over it.
"""
from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from station.audit import AuditDB, AuditUnreadable, verify
from station.audit.chain import GENESIS_HASH, canonical_json, event_hash, utc_timestamp
from station.errors import ExitCode
from tests.audit.conftest import STATION
from tests.audit.test_tamper import bad, build, checkpoints, rechain, tamper
from tests.cli_runner import assert_clean_failure, run_station

AUDIT_DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


@pytest.fixture
def good(db_path, audit_key, issue):
    build(db_path, audit_key, issue)
    assert verify(db_path, audit_key.public_key()).ok
    return db_path


def rows(path, sql, params=()):
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def event(path, eid) -> dict:
    return rows(path, "SELECT * FROM events WHERE id = ?", (eid,))[0]


def rewrite_one(conn, eid, **changes) -> None:
    """Edit event `eid` and recompute its own hash only: the row is self-consistent, the next
    event's link is what breaks."""
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM events WHERE id = ?", (eid,)).fetchone())
    conn.row_factory = None
    row.update(changes)
    row["hash"] = event_hash(row)
    sets = ", ".join(f"{column} = ?" for column in [*changes, "hash"])
    conn.execute(f"UPDATE events SET {sets} WHERE id = ?",
                 (*changes.values(), row["hash"], eid))


def append_forged(conn, kind, data, **columns) -> int:
    """Append an event with a correct link and hash, as the station's writer would."""
    head_id, head_hash = conn.execute("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
    row = {"id": head_id + 1, "ts": utc_timestamp(), "station_id": STATION, "kind": kind,
           "operator": None, "batch_id": None, "slot": None, "device_id": None,
           "data": canonical_json(data).decode(), "prev_hash": head_hash, **columns}
    row["hash"] = event_hash(row)
    conn.execute(f"INSERT INTO events ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                 tuple(row.values()))
    return row["id"]


# -- an event edited with its own hash recomputed ----------------------------------------

@pytest.mark.parametrize("which", ["first", "middle", "just-before-a-checkpoint-record"])
def test_event_edited_and_rehashed_is_named_by_its_successors_link(good, audit_key, which):
    covered = checkpoints(good)[1]["last_event_id"]
    eid = {"first": 1, "middle": covered // 2, "just-before-a-checkpoint-record": covered}[which]
    with tamper(good) as conn:
        rewrite_one(conn, eid, operator="mallory")
    report = bad(good, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("events", eid), report.reason
    assert report.reason.startswith(f"event {eid}: ")
    assert f"event {eid + 1}" in report.reason and "rehashed" in report.reason


# -- the genesis value -------------------------------------------------------------------

def test_genesis_value_is_the_one_docs_audit_md_states():
    stated = re.search(r"`prev_hash` of event 1 is (\d+) zeros", AUDIT_DOC.read_text())
    assert stated, "docs/audit.md must state the genesis prev_hash"
    assert GENESIS_HASH == "0" * int(stated.group(1)) == "0" * 64


def test_first_event_links_to_the_genesis_value(good):
    assert event(good, 1)["prev_hash"] == GENESIS_HASH


@pytest.mark.parametrize("rechain_all", [False, True], ids=["only-event-1-rehashed", "whole-chain-rehashed"])
def test_changed_genesis_is_detected_at_event_1(good, audit_key, rechain_all):
    """Another start of the chain (a log spliced onto someone else's) is caught at event 1,
    even when every later hash is recomputed to fit."""
    with tamper(good) as conn:
        rewrite_one(conn, 1, prev_hash="f" * 64)
        if rechain_all:
            rechain(conn, 2)
    report = bad(good, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("events", 1)
    assert report.reason == "event 1: prev_hash is not the genesis value (64 zeros): the log's start was replaced"


# -- every checked field of a checkpoint -------------------------------------------------

def test_checkpoint_key_id_edit_is_named(good, audit_key):
    with tamper(good) as conn:
        conn.execute("UPDATE checkpoints SET key_id = ? WHERE id = 2", ("ab" * 32,))
    report = bad(good, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("checkpoints", 2)
    assert report.reason == "checkpoint 2: key_id was edited"


def test_checkpoint_event_count_edit_is_named(good, audit_key):
    cp = checkpoints(good)[1]
    with tamper(good) as conn:
        conn.execute("UPDATE checkpoints SET event_count = ? WHERE id = 2", (cp["event_count"] - 1,))
    report = bad(good, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("checkpoints", 2)
    assert report.reason == (f"checkpoint 2: event count {cp['event_count'] - 1} does not match "
                             f"the log ({cp['last_event_id']})")


def test_checkpoint_record_naming_another_covered_event_is_named(good, audit_key):
    """The `checkpoint-written` record says which event the checkpoint covers; after the last
    checkpoint that record can be rewritten (and the chain after it recomputed), so verify
    compares it with the checkpoint row."""
    last = checkpoints(good)[-1]
    record_id = last["last_event_id"] + 1
    data = dict(json.loads(event(good, record_id)["data"]), last_event_id=1)
    with tamper(good) as conn:
        rewrite_one(conn, record_id, data=canonical_json(data).decode())
        rechain(conn, record_id + 1)
    report = bad(good, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("checkpoints", last["id"])
    assert report.reason == (f"checkpoint {last['id']}: event {record_id} records it as covering "
                             f"event 1, not {last['last_event_id']} (edited?)")


# -- certificate status transitions recorded in the log ----------------------------------

def serial_of(path, device):
    return rows(path, "SELECT serial FROM certificates WHERE device_id = ?", (device,))[0]["serial"]


def _put_in(db: AuditDB, path, status: str) -> str:
    """A certificate in `status`, reached by the station's own writes; its serial (hex)."""
    if status == "reserved":
        db.reserve_certificate(serial=0x5A << 100, spki_sha256="e1" * 32, subject="CN=D9", device_id="D9")
        return format(0x5A << 100, "x")
    serial = serial_of(path, "D1")  # verified
    if status == "revoked":
        db.set_certificate_status(int(serial, 16), "revoked", reason="key compromised")
    return serial


@pytest.mark.parametrize("start, forged", [("revoked", "verified"), ("verified", "reserved"),
                                           ("reserved", "delivered")])
def test_forbidden_status_transition_in_the_log_is_named(good, audit_key, start, forged):
    """After the last checkpoint, an attacker appends a correctly chained status change that
    the station would never write (un-revoking a certificate, delivering one never signed) and
    edits the table to match. The log and the table agree, so only the transition rules catch
    it."""
    with AuditDB.open(good, station_id=STATION) as db:  # no signer: no checkpoint is written
        serial = _put_in(db, good, start)
    with tamper(good) as conn:
        eid = append_forged(conn, "certificate-status-changed",
                            {"serial": serial, "from": start, "to": forged, "reason": "forged"})
        conn.execute("UPDATE certificates SET status = ?, status_reason = 'forged' WHERE serial = ?",
                     (forged, serial))
    report = bad(good, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("events", eid), report.reason
    assert report.reason == (f"event {eid}: certificate 0x{serial} moves from {start} to {forged}, "
                             "which the station never does (forged?)")


def test_signed_certificate_voided_in_the_log_is_named(good, audit_key, issue):
    """`undelivered -> void` is allowed only for a reservation that was never signed: a signed
    certificate exists somewhere and must be revoked."""
    with AuditDB.open(good, station_id=STATION) as db:
        serial = format(issue(db, "D5", "delivered").serial, "x")
        db.set_certificate_status(int(serial, 16), "undelivered", reason="commit not confirmed")
    with tamper(good) as conn:
        eid = append_forged(conn, "certificate-status-changed",
                            {"serial": serial, "from": "undelivered", "to": "void", "reason": "forged"})
        conn.execute("UPDATE certificates SET status = 'void', status_reason = 'forged' WHERE serial = ?",
                     (serial,))
    report = bad(good, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("events", eid), report.reason
    assert report.reason == (f"event {eid}: certificate 0x{serial} moves from undelivered to void, "
                             "which the station never does (forged?)")


# -- a damaged file ----------------------------------------------------------------------

GARBAGE = bytes(range(256)) * 16  # one 4 KiB page of bytes no SQLite page holds


@pytest.fixture
def large(db_path, audit_key):
    """A closed database of some 50 pages (its WAL folded back into the file)."""
    with AuditDB.open(db_path, station_id=STATION) as db:
        db.set_checkpoint_signer(audit_key)
        for i in range(300):
            db.log_event("scan", data={"i": i, "pad": "x" * 100})
        db.checkpoint()
    assert not Path(f"{db_path}-wal").exists() or Path(f"{db_path}-wal").stat().st_size == 0
    return db_path


@pytest.mark.parametrize("where", [0.0, 0.1, 0.5, 0.7, 0.9])
def test_garbage_over_part_of_the_file_is_unreadable_not_a_report(large, where):
    size = large.stat().st_size
    with open(large, "r+b") as fh:
        fh.seek(int(size * where) // 4096 * 4096)
        fh.write(GARBAGE)
    with pytest.raises(AuditUnreadable) as failed:
        verify(large)
    assert str(large) in str(failed.value) and "\n" not in str(failed.value)


@pytest.mark.parametrize("where", [0.0, 0.5, 0.7, 0.9])
def test_station_audit_verify_on_a_damaged_file_exits_3_with_one_line(large, where):
    size = large.stat().st_size
    with open(large, "r+b") as fh:
        fh.seek(int(size * where) // 4096 * 4096)
        fh.write(GARBAGE)
    result = run_station("audit", "verify", "--db", large, "--skip-signatures")
    assert_clean_failure(result, ExitCode.ENVIRONMENT, str(large))
    assert "TAMPERED" not in result.stderr


# -- certificate events that contradict the log's own history -----------------------------

@pytest.mark.parametrize("kind, data, reason", [
    ("certificate-reserved", lambda serial: {"serial": serial, "spki_sha256": "ab" * 32, "status": "reserved"},
     "event {eid}: certificate 0x{serial} reserved twice"),
    ("certificate-status-changed", lambda serial: {"serial": "abc", "from": "issued", "to": "delivered"},
     "event {eid}: certificate 0xabc changes but was never reserved"),
    ("certificate-status-changed", lambda serial: {"serial": serial, "from": "delivered", "to": "revoked"},
     "event {eid}: certificate 0x{serial} leaves status delivered but the log had it verified"),
], ids=["reserved-twice", "never-reserved", "wrong-from"])
def test_certificate_event_contradicting_the_log_is_named(good, audit_key, kind, data, reason):
    serial = serial_of(good, "D1")  # verified
    with tamper(good) as conn:
        eid = append_forged(conn, kind, data(serial))
    report = bad(good, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("events", eid)
    assert report.reason == reason.format(eid=eid, serial=serial)


def test_summary_says_what_was_and_was_not_checked(good, audit_key):
    signed = verify(good, audit_key.public_key()).summary()
    # A key given without a trust anchor proves nothing about who holds it: said plainly.
    assert signed.startswith("audit intact: ") and "signatures checked against an UNANCHORED key" in signed
    assert "signatures verified" not in signed
    unsigned = verify(good).summary()
    assert "(signatures NOT checked: no audit public key given)" in unsigned
    with tamper(good) as conn:
        conn.execute("UPDATE events SET kind = 'x' WHERE id = 3")
    assert verify(good).summary() == "audit TAMPERED: event 3: hash does not match its content (edited?)"
