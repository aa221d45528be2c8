"""RowWriter (station/audit/tables.py) does what sqlite-utils' insert, update and upsert did
for the audit records, checked side by side on two real databases built from the same schema:
the same rows afterwards, the same errors."""
from __future__ import annotations

import sqlite3

import pytest
import sqlite_utils
from sqlite_utils.db import NotFoundError

from station.audit.schema import create_schema
from station.audit.tables import RowWriter


def twin(tmp_path, name):
    conn = sqlite3.connect(tmp_path / name, isolation_level=None)
    create_schema(sqlite_utils.Database(conn))
    return conn


def outcome(action):
    try:
        action()
        return "ok"
    except (NotFoundError, sqlite3.IntegrityError) as exc:
        return type(exc).__name__


def test_row_writer_matches_sqlite_utils_for_every_call_the_records_make(tmp_path):
    ref_conn, new_conn = twin(tmp_path, "ref.db"), twin(tmp_path, "new.db")
    ref, new = sqlite_utils.Database(ref_conn), RowWriter(new_conn)
    device = {"device_id": "D1", "station_id": "s", "model": "m", "state": "in-flight",
              "updated_at": "t1", "label": "L1"}
    steps = [
        lambda db: db["devices"].upsert(device, pk="device_id"),
        # An upsert naming fewer columns leaves the others as they are.
        lambda db: db["devices"].upsert({"device_id": "D1", "state": "passed", "updated_at": "t2"},
                                        pk="device_id"),
        lambda db: db["devices"].update("D1", {"reason": "done", "updated_at": "t3"}),
        lambda db: db["devices"].update("NOPE", {"reason": "x"}),  # a missing row
        lambda db: db["stations"].insert({"station_id": "s", "created_at": "t"}),
        lambda db: db["stations"].insert({"station_id": "s", "created_at": "t9"}, ignore=True),
        lambda db: db["stations"].insert({"station_id": "s", "created_at": "t9"}),  # duplicate
        # A list or dict value is stored as JSON text.
        lambda db: db["meta"].insert({"key": "k", "value": {"b": [1, 2], "a": None}}),
        lambda db: db["stations"].update("s", {"ca_fingerprints": ["ab", "cd"]}),
    ]
    for step in steps:
        assert outcome(lambda: step(ref)) == outcome(lambda: step(new))
    for table in ("devices", "stations", "meta"):
        query = f"SELECT * FROM {table} ORDER BY 1"
        assert ref_conn.execute(query).fetchall() == new_conn.execute(query).fetchall(), table


def test_update_of_a_missing_row_names_it(tmp_path):
    writer = RowWriter(twin(tmp_path, "a.db"))
    with pytest.raises(NotFoundError, match="NOPE"):
        writer["certificates"].update("NOPE", {"status": "void"})
