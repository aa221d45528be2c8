"""verify hashes the common row through one template (chain.PLAIN_ROW) and every other row
through the documented encoding (issue 10): a row the template cannot write exactly must still
verify when its hash is the documented one, and its data must still be a JSON object.

Each row here is appended after the last checkpoint with a correct link and the hash the
documented encoding gives, so the only thing under test is how verify recomputes it.
"""
from __future__ import annotations

import importlib
import json

import pytest

from station.audit import AuditDB, verify
from station.audit.chain import event_hash, utc_timestamp
from tests.audit.conftest import STATION
from tests.audit.test_tamper import bad, tamper
from tests.audit.test_verify_strength import good  # noqa: F401 (fixture)


def append(conn, **columns) -> int:
    """Append an event with a correct link and the documented hash, any column overridden."""
    head_id, head_hash = conn.execute("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
    row = {"id": head_id + 1, "ts": utc_timestamp(), "station_id": STATION, "kind": "note",
           "operator": "op7", "batch_id": "WO-9", "slot": "1", "device_id": "D0",
           "data": '{"x":1}', "prev_hash": head_hash, **columns}
    row["hash"] = event_hash(row)
    conn.execute(f"INSERT INTO events ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                 tuple(row.values()))
    return row["id"]


@pytest.mark.parametrize("columns", [
    {"operator": 'Ann "QA" O\'Neil'},             # a quote: escaped in the canonical form
    {"slot": "S\\1"},                             # a backslash
    {"device_id": "D\n1", "batch_id": "WO\x1f9"},  # control characters
    {"operator": "Jürgen 検査 🛠"},                # non-ASCII is written as it is
    {"operator": None, "batch_id": "WO-9"},       # NULLs
    {"slot": b"S1"},                              # a BLOB in a text column: hashed as hex
    {"data": b'{"blob":true}'},                   # data stored as a BLOB of JSON
    {"ts": "", "kind": "k"},                      # empty text
], ids=["quote", "backslash", "control", "non-ascii", "null", "blob", "blob-data", "empty"])
def test_row_outside_the_template_verifies_by_the_documented_encoding(good, audit_key, columns):
    with tamper(good) as conn:
        eid = append(conn, **columns)
    report = verify(good, audit_key.public_key())
    assert report.ok, report.reason
    assert report.head_event_id == eid


def test_an_id_stored_as_real_is_hashed_as_a_real(good, audit_key):
    """A table rebuilt without INTEGER PRIMARY KEY can hold id 24.0, whose canonical form is
    24.0, not the template's 24."""
    with tamper(good) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(events)")]
        conn.execute(f"CREATE TABLE untyped ({', '.join(columns)})")
        conn.execute("INSERT INTO untyped SELECT * FROM events")
        conn.execute("DROP TABLE events")
        conn.execute("ALTER TABLE untyped RENAME TO events")
        head = conn.execute("SELECT max(id) FROM events").fetchone()[0]
        append(conn, id=float(head + 1))
    report = verify(good, audit_key.public_key())
    assert report.ok, report.reason
    assert report.head_event_id == head + 1


@pytest.mark.parametrize("data", [' {"x": 1} ', '{"x":1}\n'], ids=["around", "after"])
def test_data_with_whitespace_around_the_object_is_json(good, audit_key, data):
    with tamper(good) as conn:
        append(conn, data=data)
    assert verify(good, audit_key.public_key()).ok


@pytest.mark.parametrize("data, reason", [
    ('{"x":1} trailing', "data is not JSON"),
    ("{", "data is not JSON"),
    ("", "data is not JSON"),
    ("[1, 2]", "data is not a JSON object"),
    ('"text"', "data is not a JSON object"),
])
def test_data_that_is_not_a_json_object_is_named(good, audit_key, data, reason):
    with tamper(good) as conn:
        eid = append(conn, data=data)
    report = bad(good, audit_key)
    assert (report.first_bad_table, report.first_bad_row) == ("events", eid)
    assert report.reason == f"event {eid}: {reason}"


def test_a_device_step_row_is_hashed_by_the_template_not_the_general_encoder(db_path, monkeypatch):
    """The rows a line writes most (every column set, nothing to escape) must take the
    template and the JSON scanner: a fast path that quietly stopped applying would leave verify
    correct but slow."""
    with AuditDB.open(db_path, station_id=STATION) as db:
        for n in range(3):
            db.log_event("step-finished", operator="op7", batch_id="WO-9", slot=str(n),
                         device_id=f"D{n}", data={"step": "write", "detail": 'a "quoted" é'})

    def general_encoder(row):
        raise AssertionError(f"event {row['id']} took the general encoder")

    # station.audit re-exports the function verify under the module's name.
    monkeypatch.setattr(importlib.import_module("station.audit.verify"), "event_hash",
                        general_encoder)
    # Nor does its data need json.loads: the scanner alone reads it.
    monkeypatch.setattr(json, "loads", general_encoder)
    report = verify(db_path)
    assert report.ok and report.events_checked == 3
