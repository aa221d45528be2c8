"""Every refusal of `verify` word for word, with the table and row it names (issue 12).

The reason is what QA reads in `station audit verify`'s one line: a change to its wording,
its numbers or the table it names is a change to the product, so each is pinned exactly here
(test_tamper.py and test_verify_strength.py check that each tampering is caught at all).
"""
from __future__ import annotations

import re
import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from station.audit import AuditDB, AuditUnreadable, verify
from station.audit.checkpoint import key_id
from tests.audit.conftest import STATION
from tests.audit.test_tamper import bad, checkpoints, plain, rechain, tamper  # noqa: F401
from tests.audit.test_verify_strength import (append_forged, good, large, rewrite_one,  # noqa: F401
                                              rows, serial_of)


def unreadable(path, key=None) -> str:
    with pytest.raises(AuditUnreadable) as failed:
        verify(path, key)
    return str(failed.value)


def named(report, table, row, reason):
    assert report.ok is False
    assert (report.first_bad_table, report.first_bad_row, report.reason) == (table, row, reason)


# -- the file ------------------------------------------------------------------------------

def test_a_private_key_given_as_the_audit_key_is_refused(good, audit_key):
    with pytest.raises(TypeError, match="^the audit public key must be an EC public key$"):
        verify(good, audit_key)


def test_no_file(tmp_path):
    assert unreadable(tmp_path / "none.db") == f"no audit database at {tmp_path / 'none.db'}"


def test_a_file_that_is_not_sqlite(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not a database\n" * 200)
    assert unreadable(path) == f"{path} is not a readable audit database (file is not a database)"


def test_a_sqlite_file_without_the_audit_tables(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE meta (key TEXT)")
        conn.execute("CREATE TABLE events (id INTEGER)")
    conn.close()
    assert unreadable(path) == (f"{path} is not an audit database (missing tables: "
                                "certificates, checkpoints)")


def damage(path, where: float) -> None:
    with open(path, "r+b") as fh:
        fh.seek(int(path.stat().st_size * where) // 4096 * 4096)
        fh.write(bytes(range(256)) * 16)


def test_a_damaged_file_names_the_first_bad_page(large):
    damage(large, 0.1)
    message = unreadable(large)
    # quick_check's first line is a "*** in database main ***" header: the page line follows.
    assert re.fullmatch(rf"audit database {re.escape(str(large))} is damaged \(Page \d+: "
                        r"btreeInitPage\(\) returns error code 11\); it cannot be verified: "
                        r"verify a backup copy", message), message


@pytest.mark.parametrize("where, reason", [
    (0.5, "{path} is not a readable audit database (database disk image is malformed)"),
    (0.9, "cannot read audit database {path}: database disk image is malformed"),
])
def test_damage_quick_check_does_not_see_is_still_one_line(large, where, reason):
    damage(large, where)
    assert unreadable(large) == reason.format(path=large)


def test_an_events_table_without_a_column_is_unreadable(good):
    with tamper(good) as conn:
        conn.execute("ALTER TABLE events DROP COLUMN hash")
    assert unreadable(good) == f"cannot read audit database {good}: no such column: hash"


# -- the chain -----------------------------------------------------------------------------

def test_the_first_event_deleted(plain, audit_key):
    with tamper(plain) as conn:
        conn.execute("DELETE FROM events WHERE id = 1")
    named(bad(plain, audit_key), "events", 1,
          "event 1 missing: the log starts at event 2 (deleted?)")


def test_an_event_deleted_from_the_middle(plain, audit_key):
    with tamper(plain) as conn:
        conn.execute("DELETE FROM events WHERE id = 3")
    named(bad(plain, audit_key), "events", 3, "event 3 missing: chain jumps from 2 to 4 (deleted?)")


def test_an_event_edited_and_rehashed(plain, audit_key):
    with tamper(plain) as conn:
        rewrite_one(conn, 3, operator="mallory")
    named(bad(plain, audit_key), "events", 3, "event 3: its hash is not the one event 4 links "
          "to (event 3 edited and rehashed, or event 4 replaced?)")


# -- checkpoints (plain: checkpoint 1 covers event 5, recorded by 6; 2 covers 11, by 12) ------

def test_a_checkpoint_covering_no_later_event_than_the_one_before(plain, audit_key):
    with tamper(plain) as conn:
        conn.execute("UPDATE checkpoints SET last_event_id = 5 WHERE id = 2")
    named(bad(plain, audit_key), "checkpoints", 2,
          "checkpoint 2: covers event 5, not after checkpoint 1 (reordered?)")


@pytest.mark.parametrize("keep", [11, 10])
def test_events_after_a_checkpoint_deleted(plain, audit_key, keep):
    with tamper(plain) as conn:
        conn.execute("DELETE FROM events WHERE id > ?", (keep,))
    named(bad(plain, audit_key), "checkpoints", 2,
          "events after checkpoint 2 deleted: it covers event 11 and is recorded by event 12, "
          f"but the log ends at event {keep} (truncated?)")


@pytest.mark.parametrize("change", [{"kind": "scan"},
                                    {"data": '{"checkpoint_id":9,"last_event_id":5}'}],
                         ids=["kind", "checkpoint-id"])
def test_a_checkpoint_record_replaced(plain, audit_key, change):
    with tamper(plain) as conn:
        rewrite_one(conn, 6, **change)
        rechain(conn, 7)
    named(bad(plain, audit_key), "checkpoints", 1,
          "checkpoint 1: event 6 is not its checkpoint-written record (inserted?)")


@pytest.mark.parametrize("signature", ["30" + "00" * 20, "not hex"], ids=["other", "not-hex"])
def test_a_checkpoint_signature_replaced(plain, audit_key, signature):
    with tamper(plain) as conn:
        conn.execute("UPDATE checkpoints SET signature = ? WHERE id = 1", (signature,))
    named(verify(plain), "checkpoints", 1,
          "checkpoint 1: signature differs from the one logged in event 6 (replaced?)")


def test_checkpoints_checked_with_another_key_name_the_signing_key(plain, audit_key):
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    signer = key_id(audit_key.public_key())
    named(verify(plain, other), "checkpoints", 1, "checkpoint 1: signature does not verify "
          f"(signed by key {signer[:16]}..., not the given audit key)")


@pytest.mark.parametrize("checkpoint_id", [None, "x", 3])
def test_a_checkpoint_record_without_its_row(plain, audit_key, checkpoint_id):
    with tamper(plain) as conn:
        eid = append_forged(conn, "checkpoint-written", {"checkpoint_id": checkpoint_id})
    named(bad(plain, audit_key), "checkpoints", checkpoint_id,
          f"checkpoint {checkpoint_id} missing: event {eid} records it (deleted?)")


def test_a_checkpoint_record_for_an_existing_row_is_no_problem(plain, audit_key):
    with tamper(plain) as conn:
        append_forged(conn, "checkpoint-written", {"checkpoint_id": 2})
    assert verify(plain, audit_key.public_key()).ok


# -- certificates --------------------------------------------------------------------------

def last_event_of(path, serial) -> int:
    return max(r["id"] for r in rows(path, "SELECT id, data FROM events WHERE kind LIKE "
                                     "'certificate-%' AND data LIKE ?", (f'%"{serial}"%',)))


@pytest.mark.parametrize("column, value, shown", [
    ("status", "revoked", "status is 'revoked' in the table but 'verified' in the log"),
    ("cert_pem", "x", "cert_pem differs from the log"),  # a PEM is not printed
])
def test_a_certificate_column_edited(good, audit_key, column, value, shown):
    serial = serial_of(good, "D1")
    with tamper(good) as conn:
        conn.execute(f"UPDATE certificates SET {column} = ? WHERE serial = ?", (value, serial))
    named(bad(good, audit_key), "certificates", serial,
          f"certificate 0x{serial}: {shown} (event {last_event_of(good, serial)})")


def test_of_two_certificate_rows_deleted_the_lower_serial_is_named(good, audit_key):
    serials = sorted(serial_of(good, d) for d in ("D0", "D2"))
    with tamper(good) as conn:
        conn.executemany("DELETE FROM certificates WHERE serial = ?", [(s,) for s in serials])
    named(bad(good, audit_key), "certificates", serials[0],
          f"certificate 0x{serials[0]}: in the log (event {last_event_of(good, serials[0])}) "
          "but missing from the table (deleted?)")


def test_a_refused_certificate_event_changes_no_certificate(good, audit_key):
    with tamper(good) as conn:
        append_forged(conn, "certificate-refused", {"serial": "abc", "reason": "policy"})
    assert verify(good, audit_key.public_key()).ok


# -- the report ----------------------------------------------------------------------------

def test_an_intact_report_counts_everything_it_checked(good, audit_key):
    head = rows(good, "SELECT id, hash FROM events ORDER BY id DESC LIMIT 1")[0]
    count = len(checkpoints(good))
    report = verify(good, audit_key.public_key())
    assert (report.ok, report.events_checked, report.head_event_id, report.head_hash) == \
        (True, head["id"], head["id"], head["hash"])
    assert (report.checkpoints_checked, report.certificates_checked) == (count, 3)
    assert report.signatures_checked is True and verify(good).signatures_checked is False
    assert report.checkpoint_stations == {STATION}
    assert (report.first_bad_table, report.first_bad_row, report.reason) == (None, None, None)
    unsigned, anchored = verify(good), verify(good, audit_key.public_key())
    anchored.anchored_by = "the trust anchor root.pem"
    for checked, signatures in [
            (unsigned, "signatures NOT checked: no audit public key given"),
            (report, "signatures checked against an UNANCHORED key: it proves nothing against "
                     "whoever could replace that key; give --trust-anchor ROOT.pem"),
            (anchored, "signatures verified against the trust anchor root.pem")]:
        assert checked.summary() == (f"audit intact: {head['id']} events, {count} checkpoints "
                                     f"({signatures}), 3 certificates; head event {head['id']} "
                                     f"{head['hash']}")


def test_a_certificate_issued_again_names_the_move(good, audit_key):
    serial = serial_of(good, "D1")  # verified
    with tamper(good) as conn:
        eid = append_forged(conn, "certificate-issued", {"serial": serial, "status": "issued"})
    named(bad(good, audit_key), "events", eid, f"event {eid}: certificate 0x{serial} moves from "
          "verified to issued, which the station never does (forged?)")


def test_a_checkpoint_of_the_empty_log_signs_the_genesis_value(db_path, audit_key):
    """A checkpoint written before the first event covers event 0, whose hash is the genesis
    value."""
    with AuditDB.open(db_path, station_id=STATION) as db:
        db.set_checkpoint_signer(audit_key)
        db.checkpoint()
        db.log_event("scan")
    report = verify(db_path, audit_key.public_key())
    assert report.ok, report.reason
    assert (checkpoints(db_path)[0]["last_event_id"], report.checkpoints_checked) == (0, 1)


def test_a_checkpoint_before_the_log_is_out_of_order(plain, audit_key):
    with tamper(plain) as conn:
        conn.execute("UPDATE checkpoints SET last_event_id = -1 WHERE id = 1")
    named(bad(plain, audit_key), "checkpoints", 1,
          "checkpoint 1: covers event -1, not after checkpoint 0 (reordered?)")


def test_verify_needs_only_its_four_tables(good, audit_key):
    with tamper(good) as conn:
        others = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT IN ('meta', 'events', 'checkpoints', "
                                             "'certificates') AND name NOT LIKE 'sqlite_%'")]
        assert others, "the station's database has more tables than verify reads"
        for table in others:
            conn.execute(f"DROP TABLE {table}")
    assert verify(good, audit_key.public_key()).ok
