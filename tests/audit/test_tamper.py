"""Tampering with the database file is detected and the first bad row is named.

The attacker here has write access to the file and drops the append-only triggers first, as
any real attacker would; the triggers only guard the station's own code paths.
"""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from station.audit import AuditDB, verify
from station.audit.chain import event_hash

from tests.audit.conftest import STATION

EVERY = 6


@contextmanager
def tamper(path):
    conn = sqlite3.connect(path)
    for table in ("events", "checkpoints"):
        for action in ("update", "delete"):
            conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
    try:
        yield conn
        conn.commit()
    finally:
        conn.close()


def build(path, signer, issue):
    with AuditDB.open(path, station_id=STATION, checkpoint_every=EVERY) as db:
        db.set_checkpoint_signer(signer)
        db.log_station_start("0f" * 32, ["aa" * 32], "0.1.0")
        db.record_operator_login("op7", "Ann")
        db.open_batch("WO-9", model="m1", operator="op7", expected_count=3,
                      manifest_sha256=None)
        for n in range(3):
            db.upsert_device(f"D{n}", model="m1", hw_rev="A", fw_version="1", label=None,
                             batch_id="WO-9", state="in-flight")
            issue(db, f"D{n}", "verified", batch_id="WO-9")
            db.set_device_state(f"D{n}", "passed")
        db.log_event("tail-1")
        db.log_event("tail-2")


@pytest.fixture
def good(db_path, audit_key, issue):
    build(db_path, audit_key, issue)
    report = verify(db_path, audit_key.public_key())
    assert report.ok, report.reason
    assert report.checkpoints_checked >= 3
    return db_path


def count(path, table):
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def checkpoints(path):
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM checkpoints ORDER BY id")]
    conn.close()
    return rows


def bad(path, key):
    report = verify(path, key.public_key())
    assert not report.ok
    return report


POSITIONS = ["first", "middle", "before-last", "last"]


def position(path, where):
    n = count(path, "events")
    return {"first": 1, "middle": n // 2, "before-last": n - 1, "last": n}[where]


@pytest.mark.parametrize("where", POSITIONS)
@pytest.mark.parametrize("column, value", [("data", '{"forged":true}'), ("device_id", "D99"),
                                           ("ts", "2020-01-01T00:00:00.000000Z")])
def test_edited_event_is_named(good, audit_key, where, column, value):
    eid = position(good, where)
    with tamper(good) as conn:
        conn.execute(f"UPDATE events SET {column} = ? WHERE id = ?", (value, eid))
    report = bad(good, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("events", eid)
    assert report.reason == f"event {eid}: hash does not match its content (edited?)"


@pytest.mark.parametrize("where", ["first", "middle", "before-last"])
def test_deleted_event_is_named(good, audit_key, where):
    eid = position(good, where)
    with tamper(good) as conn:
        conn.execute("DELETE FROM events WHERE id = ?", (eid,))
    report = bad(good, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("events", eid)
    assert report.reason.startswith(f"event {eid} missing: ")
    assert "(deleted?)" in report.reason


@pytest.mark.parametrize("where", ["first", "middle", "before-last"])
def test_swapped_events_are_named(good, audit_key, where):
    eid = position(good, where)
    columns = "ts, station_id, kind, operator, batch_id, slot, device_id, data, prev_hash, hash"
    with tamper(good) as conn:
        a = conn.execute(f"SELECT {columns} FROM events WHERE id = ?", (eid,)).fetchone()
        b = conn.execute(f"SELECT {columns} FROM events WHERE id = ?", (eid + 1,)).fetchone()
        sets = ", ".join(f"{c.strip()} = ?" for c in columns.split(","))
        conn.execute(f"UPDATE events SET {sets} WHERE id = ?", (*b, eid))
        conn.execute(f"UPDATE events SET {sets} WHERE id = ?", (*a, eid + 1))
    report = bad(good, audit_key)
    assert report.first_bad_row == eid
    assert report.reason.startswith(f"event {eid}: hash does not match")


def rechain(conn, start):
    """The careful attacker: after an edit, recompute every later hash so the chain holds."""
    prev = conn.execute("SELECT hash FROM events WHERE id = ?", (start - 1,)).fetchone()
    prev_hash = prev[0] if prev else "0" * 64
    conn.row_factory = sqlite3.Row
    for row in [dict(r) for r in conn.execute("SELECT * FROM events WHERE id >= ? ORDER BY id",
                                              (start,))]:
        row["prev_hash"] = prev_hash
        row["hash"] = prev_hash = event_hash(row)
        conn.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE id = ?",
                     (row["prev_hash"], row["hash"], row["id"]))
    conn.row_factory = None


def test_rewritten_chain_before_a_checkpoint_is_caught_by_the_checkpoint(good, audit_key):
    with tamper(good) as conn:
        conn.execute("UPDATE events SET operator = 'mallory' WHERE id = 2")
        rechain(conn, 2)
    report = bad(good, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("checkpoints", 1)
    first = checkpoints(good)[0]["last_event_id"]
    assert report.reason == f"checkpoint 1: event {first} does not have the hash it signs " \
                            "(log rewritten?)"


def test_rewritten_chain_and_checkpoint_hashes_fail_the_signature(good, audit_key):
    with tamper(good) as conn:
        conn.execute("UPDATE events SET operator = 'mallory' WHERE id = 2")
        rechain(conn, 2)
        for cp in checkpoints(good):
            new = conn.execute("SELECT hash FROM events WHERE id = ?",
                               (cp["last_event_id"],)).fetchone()[0]
            conn.execute("UPDATE checkpoints SET last_event_hash = ? WHERE id = ?",
                         (new, cp["id"]))
    report = bad(good, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("checkpoints", 1)
    assert report.reason == "checkpoint 1: signature does not verify"


@pytest.mark.parametrize("keep_after_last_checkpoint", [0, -1, -4])
def test_truncation_back_into_a_checkpoint_is_detected(good, audit_key,
                                                       keep_after_last_checkpoint):
    last = checkpoints(good)[-1]
    # 0 deletes the checkpoint-written event and all after it; negative values also cut
    # into the checkpointed events.
    keep = last["last_event_id"] + keep_after_last_checkpoint
    with tamper(good) as conn:
        conn.execute("DELETE FROM events WHERE id > ?", (keep,))
    report = bad(good, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("checkpoints", last["id"])
    assert report.reason.startswith(f"events after checkpoint {last['id']} deleted")
    assert f"the log ends at event {keep}" in report.reason


def test_truncated_certificate_changes_disagree_with_the_certificates_table(good, audit_key):
    last = checkpoints(good)[-1]
    with tamper(good) as conn:
        conn.execute("DELETE FROM events WHERE id > ?", (last["last_event_id"] + 1,))
    report = bad(good, audit_key)
    assert report.first_bad_table == "certificates"
    assert "in the table but 'delivered' in the log" in report.reason


@pytest.fixture
def plain(db_path, audit_key):
    """Checkpoints at known places and no certificates: 5 events, cp 1 (event 6), 5 events,
    cp 2 (event 12), 3 events; head 15."""
    with AuditDB.open(db_path, station_id=STATION) as db:
        db.set_checkpoint_signer(audit_key)
        for block in (5, 5, 3):
            for i in range(block):
                db.log_event("scan", data={"i": i})
            if block == 5:
                db.checkpoint()
    return db_path


def test_limit_events_after_the_last_checkpoint_can_be_truncated(plain, audit_key):
    """The documented limit (docs/audit.md, "Truncation"): events after the last checkpoint
    that changed no table can be removed without trace in this file; only a record held
    elsewhere (an exported checkpoint, the head shown at batch close) shows it. This test pins
    the limit so that a change to it is noticed."""
    with tamper(plain) as conn:
        conn.execute("DELETE FROM events WHERE id > 12")
    report = verify(plain, audit_key.public_key())
    assert report.ok and report.head_event_id == 12


def test_limit_last_checkpoint_and_everything_after_the_previous_one(plain, audit_key):
    with tamper(plain) as conn:
        conn.execute("DELETE FROM checkpoints WHERE id = 2")
        conn.execute("DELETE FROM events WHERE id > 6")
    report = verify(plain, audit_key.public_key())
    assert report.ok and report.head_event_id == 6 and report.checkpoints_checked == 1


def test_checkpoint_record_kept_but_its_row_deleted_is_detected(plain, audit_key):
    with tamper(plain) as conn:
        conn.execute("DELETE FROM checkpoints WHERE id = 2")
        conn.execute("DELETE FROM events WHERE id > 12")
    report = bad(plain, audit_key)
    assert report.reason == "checkpoint 2 missing: event 12 records it (deleted?)"


def test_deleting_the_last_checkpoint_row_is_detected_by_its_logged_record(good, audit_key):
    last = checkpoints(good)[-1]
    with tamper(good) as conn:
        conn.execute("DELETE FROM checkpoints WHERE id = ?", (last["id"],))
    report = bad(good, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("checkpoints", last["id"])
    assert report.reason == (f"checkpoint {last['id']} missing: event "
                             f"{last['last_event_id'] + 1} records it (deleted?)")


def test_deleting_a_middle_checkpoint_is_detected(good, audit_key):
    with tamper(good) as conn:
        conn.execute("DELETE FROM checkpoints WHERE id = 2")
    report = bad(good, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("checkpoints", 2)
    assert report.reason == "checkpoint 2 missing (deleted?)"


def test_flipped_signature_bytes_are_detected_even_without_the_public_key(good):
    with tamper(good) as conn:
        sig = conn.execute("SELECT signature FROM checkpoints WHERE id = 2").fetchone()[0]
        flipped = sig[:-2] + format(int(sig[-2:], 16) ^ 1, "02x")
        conn.execute("UPDATE checkpoints SET signature = ? WHERE id = 2", (flipped,))
    report = verify(good)
    assert not report.ok and not report.signatures_checked
    assert report.reason.startswith("checkpoint 2: signature differs from the one logged")


def test_database_forged_with_another_key_fails_the_signature_check(db_path, audit_key, issue):
    mallory = ec.generate_private_key(ec.SECP256R1())
    build(db_path, mallory, issue)
    assert verify(db_path).ok  # consistent in itself
    report = bad(db_path, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("checkpoints", 1)
    assert report.reason.startswith("checkpoint 1: signature does not verify (signed by key ")


def certificate(path, device):
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT serial FROM certificates WHERE device_id = ?",
                            (device,)).fetchone()[0]


@pytest.mark.parametrize("column, value", [
    ("status", "revoked"), ("cert_pem", "-----BEGIN CERTIFICATE-----\nAAAA\n"),
    ("spki_sha256", "ab" * 32), ("device_id", "D77"), ("fingerprint_sha256", "cd" * 32),
])
def test_edited_certificate_row_is_named(good, audit_key, column, value):
    serial = certificate(good, "D1")
    with tamper(good) as conn:
        conn.execute(f"UPDATE certificates SET {column} = ? WHERE serial = ?", (value, serial))
    report = bad(good, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("certificates", serial)
    assert report.reason.startswith(f"certificate 0x{serial}: {column} ")
    if column == "status":
        assert "is 'revoked' in the table but 'verified' in the log" in report.reason


def test_deleted_certificate_row_is_named(good, audit_key):
    serial = certificate(good, "D2")
    with tamper(good) as conn:
        conn.execute("DELETE FROM certificates WHERE serial = ?", (serial,))
    report = bad(good, audit_key)
    assert report.first_bad_row == serial and "missing from the table" in report.reason


def test_certificate_row_inserted_outside_the_station_is_named(good, audit_key):
    with tamper(good) as conn:
        conn.execute("INSERT INTO certificates (serial, spki_sha256, station_id, subject, "
                     "status, reserved_at, updated_at) VALUES ('abc', ?, ?, 'CN=x', "
                     "'delivered', 'x', 'x')", ("ef" * 32, STATION))
    report = bad(good, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("certificates", "abc")
    assert report.reason == "certificate 0xabc: not in the log (inserted outside the station?)"


def test_intact_database_reports_its_head(good, audit_key):
    report = verify(good, audit_key.public_key())
    with sqlite3.connect(good) as conn:
        head = conn.execute("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
    assert (report.head_event_id, report.head_hash) == head
    assert report.certificates_checked == 3
