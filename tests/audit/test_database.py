"""AuditDB behaviour on real SQLite files: the issuance record, statuses, refusals, threads."""
from __future__ import annotations

import json
import os
import sqlite3
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from station.audit import AuditDB, verify
from station.errors import ConfigError, PolicyRefusal

from tests.audit.conftest import STATION, build_certificate, spki_sha256


def events(path):
    conn = sqlite3.connect(path)
    try:
        return [(k, json.loads(d)) for k, d in conn.execute(
            "SELECT kind, data FROM events ORDER BY id")]
    finally:
        conn.close()


def test_open_sets_wal_and_full_synchronous(audit_db, db_path):
    assert audit_db._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert audit_db._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_event_ids_count_up_and_every_field_is_stored(audit_db, db_path):
    first = audit_db.log_event("scan", operator="op1", batch_id="B1", slot="3",
                               device_id="D1", data={"label": "L-1"})
    second = audit_db.log_event("refused", data={"code": "bad-csr", "reason": "no PoP"})
    assert (first, second) == (1, 2)
    conn = sqlite3.connect(db_path)
    row = conn.execute("SELECT ts, station_id, operator, batch_id, slot, device_id, data "
                       "FROM events WHERE id = 1").fetchone()
    assert row[1:] == (STATION, "op1", "B1", "3", "D1", '{"label":"L-1"}')
    assert row[0].endswith("Z") and len(row[0]) == len("2026-01-01T00:00:00.000000Z")


def test_a_database_of_another_station_is_refused(db_path):
    AuditDB.open(db_path, station_id="A").close()
    with pytest.raises(ConfigError, match="belongs to station 'A'"):
        AuditDB.open(db_path, station_id="B")


def test_station_start_records_config_hash_ca_fingerprints_and_version(audit_db, db_path):
    eid = audit_db.log_station_start("AB" * 32, ["11" * 32, "22" * 32], "0.1.0")
    kind, data = events(db_path)[eid - 1]
    assert kind == "station-started"
    assert (data["config_sha256"], data["ca_fingerprints"], data["software_version"]) == \
        ("ab" * 32, ["11" * 32, "22" * 32], "0.1.0")


def test_issuance_record_holds_pem_fingerprints_subject_and_validity(audit_db, issue):
    issued = issue(audit_db, "D1", "verified")
    [row] = audit_db.certificates_for_device("D1")
    assert row["serial"] == issued.serial and row["serial_hex"] == format(issued.serial, "x")
    assert (row["cert_pem"], row["fingerprint_sha256"], row["spki_sha256"], row["subject"]) == \
        (issued.pem, issued.fingerprint, issued.spki_sha256, "CN=D1")
    assert row["status"] == "verified" and row["not_after"].endswith(".000000Z")


def test_same_public_key_is_refused_and_the_refusal_is_logged(audit_db, issue, db_path):
    first = issue(audit_db, "D1")
    assert audit_db.public_key_known(first.spki_sha256)
    with pytest.raises(PolicyRefusal) as refused:
        audit_db.reserve_certificate(serial=7, spki_sha256=first.spki_sha256, subject="CN=D2",
                                     device_id="D2")
    assert refused.value.code == "key-reused"
    assert f"serial 0x{first.serial:x}, device D1" in str(refused.value)
    kind, data = events(db_path)[-1]
    assert kind == "certificate-refused" and data["code"] == "key-reused"
    assert [c["device_id"] for c in audit_db.certificates_for_device("D2")] == []


def test_two_threads_reserving_one_key_exactly_one_wins(audit_db):
    spki = "ab" * 32
    barrier = threading.Barrier(8)
    outcomes = []

    def attempt(n):
        barrier.wait()
        try:
            audit_db.reserve_certificate(serial=100 + n, spki_sha256=spki, subject=f"CN=D{n}",
                                         device_id=f"D{n}")
            outcomes.append("won")
        except PolicyRefusal as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["key-reused"] * 7 + ["won"]
    assert verify(audit_db.path).ok


def test_two_connections_reserving_one_key_exactly_one_wins(db_path):
    # Two AuditDB objects = two connections, as two processes would have: the UNIQUE
    # constraint and BEGIN IMMEDIATE, not the in-process lock, decide.
    a = AuditDB.open(db_path, station_id=STATION)
    b = AuditDB.open(db_path, station_id=STATION)
    barrier = threading.Barrier(2)
    outcomes = {}

    def attempt(db, name, serial):
        barrier.wait()
        try:
            db.reserve_certificate(serial=serial, spki_sha256="cd" * 32, subject="CN=x",
                                   device_id=name)
            outcomes[name] = "won"
        except PolicyRefusal as exc:
            outcomes[name] = exc.code

    threads = [threading.Thread(target=attempt, args=(a, "A", 1)),
               threading.Thread(target=attempt, args=(b, "B", 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a.close()
    b.close()
    assert sorted(outcomes.values()) == ["key-reused", "won"]
    report = verify(db_path)
    assert report.ok, report.reason


def test_many_threads_logging_keep_one_unbroken_chain(audit_db, audit_key):
    audit_db.set_checkpoint_signer(audit_key)
    audit_db._every = 25

    def work(n):
        for i in range(20):
            audit_db.log_event("step", slot=str(n), data={"i": i})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = verify(audit_db.path, audit_key.public_key())
    assert report.ok, report.reason
    assert report.checkpoints_checked >= 4
    assert report.events_checked == 120 + report.checkpoints_checked


def test_reused_serial_is_refused(audit_db):
    audit_db.reserve_certificate(serial=5, spki_sha256="01" * 32, subject="CN=a", device_id="a")
    with pytest.raises(PolicyRefusal) as refused:
        audit_db.reserve_certificate(serial=5, spki_sha256="02" * 32, subject="CN=b",
                                     device_id="b")
    assert refused.value.code == "serial-reused"


def test_completion_with_a_certificate_for_another_key_is_refused(audit_db, ca_key):
    other = build_certificate(ca_key, ec.generate_private_key(ec.SECP256R1()), 77, "D1")
    audit_db.reserve_certificate(serial=77, spki_sha256="ee" * 32, subject="CN=D1",
                                 device_id="D1")
    with pytest.raises(PolicyRefusal, match="public key is not the reserved one") as refused:
        audit_db.complete_certificate(77, cert_pem=other.pem,
                                      fingerprint_sha256=other.fingerprint,
                                      not_before=other.cert.not_valid_before_utc,
                                      not_after=other.cert.not_valid_after_utc)
    assert refused.value.code == "certificate-mismatch"
    assert audit_db.certificates_for_device("D1")[0]["status"] == "reserved"


@pytest.mark.parametrize("start, target", [
    ("reserved", "delivered"), ("issued", "void"), ("verified", "delivered"),
    ("verified", "issued"),
])
def test_disallowed_status_transitions_are_refused(audit_db, issue, start, target):
    issued = issue(audit_db, "D1", start)
    with pytest.raises(PolicyRefusal, match=f"is {start}; it cannot become {target}"):
        audit_db.set_certificate_status(issued.serial, target)


def test_revoked_is_final(audit_db, issue):
    issued = issue(audit_db, "D1", "delivered")
    audit_db.set_certificate_status(issued.serial, "revoked", reason="key compromise")
    for status in ("delivered", "superseded", "void", "undelivered"):
        with pytest.raises(PolicyRefusal):
            audit_db.set_certificate_status(issued.serial, status)


def test_unknown_status_is_a_programming_error(audit_db, issue):
    issued = issue(audit_db, "D1", "issued")
    with pytest.raises(ValueError, match="unknown certificate status 'lost'"):
        audit_db.set_certificate_status(issued.serial, "lost")


def test_delivering_a_new_certificate_supersedes_the_old_one(audit_db, issue):
    old = issue(audit_db, "D1", "issued")
    audit_db.set_certificate_status(old.serial, "undelivered", reason="cable pulled")
    new = issue(audit_db, "D1", "delivered")
    statuses = {c["serial"]: (c["status"], c["status_reason"])
                for c in audit_db.certificates_for_device("D1")}
    assert statuses[old.serial] == ("superseded", f"replaced by 0x{new.serial:x}")
    assert statuses[new.serial] == ("delivered", None)
    assert verify(audit_db.path).ok


def test_batches_cannot_be_reopened_once_closed(audit_db, db_path):
    audit_db.open_batch("WO-1", model="m1", operator="op1", expected_count=10,
                        manifest_sha256="aa" * 32)
    audit_db.open_batch("WO-1", model="m1", operator="op2", expected_count=10,
                        manifest_sha256="aa" * 32)
    with pytest.raises(PolicyRefusal) as mismatch:
        audit_db.open_batch("WO-1", model="m2", operator="op2", expected_count=10,
                            manifest_sha256="aa" * 32)
    assert mismatch.value.code == "batch-mismatch"
    audit_db.close_batch("WO-1")
    with pytest.raises(PolicyRefusal, match="cannot be reopened") as closed:
        audit_db.open_batch("WO-1", model="m1", operator="op1", expected_count=10,
                            manifest_sha256="aa" * 32)
    assert closed.value.code == "batch-closed"
    assert [k for k, _ in events(db_path)] == ["batch-opened", "batch-resumed", "batch-closed"]


def test_closing_a_batch_writes_a_signed_checkpoint(audit_db, audit_key):
    audit_db.set_checkpoint_signer(audit_key)
    audit_db.open_batch("WO-2", model="m1", operator="op1", expected_count=None,
                        manifest_sha256=None)
    audit_db.close_batch("WO-2")
    report = verify(audit_db.path, audit_key.public_key())
    assert report.ok and report.checkpoints_checked == 1 and report.signatures_checked


def test_checkpoint_every_n_events(db_path, audit_key):
    with AuditDB.open(db_path, station_id=STATION, checkpoint_every=10) as db:
        db.set_checkpoint_signer(audit_key)
        for i in range(35):
            db.log_event("step", data={"i": i})
    report = verify(db_path, audit_key.public_key())
    assert report.ok and report.checkpoints_checked == 3


def test_operator_logins_and_device_states_are_logged(audit_db, db_path):
    audit_db.record_operator_login("op1", "Ann")
    audit_db.record_operator_login("op1")
    audit_db.upsert_device("D1", model="m", hw_rev="B", fw_version="1.2", label="L1",
                           batch_id=None, state="detected")
    audit_db.set_device_state("D1", "failed", reason="no CSR")
    with pytest.raises(ValueError, match="unknown device state"):
        audit_db.set_device_state("D1", "exploded")
    logged = events(db_path)
    assert [k for k, _ in logged] == ["operator-logged-in", "operator-logged-in",
                                      "device-recorded", "device-state-changed"]
    assert logged[-1][1] == {"from": "detected", "to": "failed", "reason": "no CSR"}


def test_data_that_is_not_json_is_refused_and_nothing_is_written(audit_db, db_path):
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        audit_db.log_event("x", data={"when": object()})
    assert events(db_path) == []


class TokenGoneSigner(ec.EllipticCurvePrivateKey):
    """Stands where the HSM signer does (an EllipticCurvePrivateKey subclass whose sign() goes
    to the token), with a token that has been unplugged."""

    def __init__(self, key):
        self._key = key

    def sign(self, data, signature_algorithm):
        raise RuntimeError("token removed")

    def public_key(self):
        return self._key.public_key()

    curve = property(lambda self: self._key.curve)
    key_size = property(lambda self: self._key.key_size)

    def exchange(self, *args):
        raise NotImplementedError

    def private_numbers(self):
        raise NotImplementedError

    def private_bytes(self, *args):
        raise NotImplementedError

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def test_failed_checkpoint_signature_is_reported_and_the_event_kept(db_path, audit_key):
    from station.audit import CheckpointFailed

    with AuditDB.open(db_path, station_id=STATION, checkpoint_every=3) as db:
        db.set_checkpoint_signer(TokenGoneSigner(audit_key))
        db.log_event("a")
        db.log_event("b")
        db.log_event("c")
        with pytest.raises(CheckpointFailed, match="could not be signed: token removed") as exc:
            db.log_event("d")
        assert exc.value.event_id == 4
    assert [k for k, _ in events(db_path)] == ["a", "b", "c", "d"]
    assert verify(db_path).ok


def test_checkpoint_without_a_signer_is_refused(audit_db):
    from station.audit import CheckpointFailed

    with pytest.raises(CheckpointFailed, match="no audit signing key"):
        audit_db.checkpoint()


def test_verify_never_writes_the_file(audit_db, issue, db_path):
    issue(audit_db, "D1", "verified")
    audit_db.close()
    before = db_path.read_bytes()
    assert verify(db_path).ok
    assert db_path.read_bytes() == before
    # A WAL reader may create the -shm index and an empty -wal; it never writes a frame.
    wal = db_path.with_name("audit.db-wal")
    assert not wal.exists() or wal.stat().st_size == 0


def test_empty_database_verifies(audit_db, db_path):
    report = verify(db_path)
    assert report.ok and report.events_checked == 0 and report.head_event_id == 0


def test_numeric_slot_and_device_ids_do_not_break_the_chain(audit_db, issue, db_path):
    # SQLite stores an int given for a TEXT column as text; hashing the int would then make
    # an untouched row look edited.
    audit_db.log_event("scan", slot=3, device_id=1234, batch_id=7, operator=42)
    audit_db.upsert_device(99, model="m", hw_rev="A", fw_version="1", label=None,
                           batch_id=None, state="detected")
    audit_db.set_device_state(99, "in-flight")
    issue(audit_db, 99, "delivered", slot=2)
    assert [c["slot"] for c in audit_db.certificates_for_device(99)] == ["2"]
    report = verify(db_path)
    assert report.ok, report.reason


def test_common_non_json_values_in_event_data_are_written_plainly(audit_db, db_path):
    import enum
    from datetime import datetime, timezone
    from pathlib import Path

    class Colour(enum.Enum):
        RED = "red"

    audit_db.log_event("x", data={"at": datetime(2026, 1, 2, tzinfo=timezone.utc),
                                  "colour": Colour.RED, "port": Path("/dev/ttyACM0"),
                                  "raw": b"\x01\xff", "tags": {"b", "a"}})
    assert events(db_path)[0][1] == {"at": "2026-01-02T00:00:00.000000Z", "colour": "red",
                                     "port": "/dev/ttyACM0", "raw": "01ff", "tags": ["a", "b"]}
    assert verify(db_path).ok


def test_a_device_in_flight_under_another_live_writer_cannot_be_marked_in_flight(db_path):
    # Two writers on one file, as two station processes (both live: this pid runs). The
    # refusal is made inside the write, under SQLite's write lock, so the second cannot slip
    # in between a check and its mark.
    first = AuditDB.open(db_path, station_id=STATION)
    second = AuditDB.open(db_path, station_id=STATION)
    fields = dict(model="M", hw_rev="A", fw_version="1", label="L-1", batch_id="B1")
    try:
        first.upsert_device("D1", state="in-flight", **fields)
        with pytest.raises(PolicyRefusal) as refused:
            second.upsert_device("D1", state="in-flight", **fields)
        assert refused.value.code == "device-in-flight"
        assert f"pid {os.getpid()}" in str(refused.value)
        first.set_device_state("D1", "passed")
        second.upsert_device("D1", state="in-flight", **fields)  # no longer held: taken
    finally:
        first.close()
        second.close()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT state, session_id FROM devices").fetchone() == (
            "in-flight", second.session_id)
