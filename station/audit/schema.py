"""Tables of the audit database, created through sqlite-utils (docs/audit.md, "Schema").

`events` and `checkpoints` are the tamper-evident record; the other tables are the current
state, every change to which is also an event, so they can be checked against the log.
"""
from __future__ import annotations

import sqlite_utils

SCHEMA_VERSION = "1"

TABLES: dict[str, dict] = {
    "meta": dict(columns={"key": str, "value": str}, pk="key"),
    "stations": dict(
        columns={"station_id": str, "created_at": str, "config_sha256": str,
                 "ca_fingerprints": str, "software_version": str, "last_started_at": str},
        pk="station_id"),
    "sessions": dict(
        columns={"session_id": str, "station_id": str, "hostname": str, "pid": int,
                 "opened_at": str, "closed_at": str},
        pk="session_id"),
    "operators": dict(
        columns={"operator_id": str, "name": str, "first_login_at": str, "last_login_at": str},
        pk="operator_id"),
    "batches": dict(
        columns={"batch_id": str, "station_id": str, "model": str, "operator": str,
                 "expected_count": int, "manifest_sha256": str, "status": str,
                 "opened_at": str, "closed_at": str, "holder_session": str},
        pk="batch_id", not_null={"station_id", "model", "status", "opened_at"}),
    "devices": dict(
        columns={"device_id": str, "station_id": str, "model": str, "hw_rev": str,
                 "fw_version": str, "label": str, "batch_id": str, "state": str,
                 "reason": str, "session_id": str, "updated_at": str},
        pk="device_id", not_null={"state", "updated_at"}),
    "certificates": dict(
        columns={"serial": str, "spki_sha256": str, "station_id": str, "subject": str,
                 "device_id": str, "batch_id": str, "slot": str, "operator": str,
                 "status": str, "status_reason": str, "cert_pem": str,
                 "fingerprint_sha256": str, "not_before": str, "not_after": str,
                 "reserved_at": str, "updated_at": str, "session_id": str},
        pk="serial", not_null={"spki_sha256", "station_id", "subject", "status",
                               "reserved_at", "updated_at"}),
    "events": dict(
        columns={"id": int, "ts": str, "station_id": str, "kind": str, "operator": str,
                 "batch_id": str, "slot": str, "device_id": str, "data": str,
                 "prev_hash": str, "hash": str},
        pk="id", not_null={"ts", "station_id", "kind", "data", "prev_hash", "hash"}),
    "checkpoints": dict(
        columns={"id": int, "station_id": str, "last_event_id": int, "last_event_hash": str,
                 "event_count": int, "ts": str, "key_id": str, "signature": str},
        pk="id", not_null={"station_id", "last_event_id", "last_event_hash", "event_count",
                           "ts", "key_id", "signature"}),
}

# (table, columns, unique)
INDEXES = (
    # The never-seen-key rule rests on this constraint, not on a check in Python: it holds
    # across threads, processes and any code path that inserts a certificate.
    ("certificates", ["spki_sha256"], True),
    ("certificates", ["device_id"], False),
    ("certificates", ["status"], False),
    ("devices", ["state"], False),
    ("events", ["device_id"], False),
    ("events", ["batch_id"], False),
)


# Guards against the station's own code paths, not against an attacker (who can drop them):
# tampering is caught by the chain and the signed checkpoints, never by these.
APPEND_ONLY = ("events", "checkpoints")


def create_schema(db: sqlite_utils.Database) -> None:
    """Create missing tables, indexes and append-only triggers (idempotent). Call inside a
    write transaction."""
    for name, spec in TABLES.items():
        db.table(name).create(spec["columns"], pk=spec["pk"],
                              not_null=spec.get("not_null"), if_not_exists=True)
    # Columns added after a table's first release: an older database gains them here.
    for name, spec in TABLES.items():
        have = db.table(name).columns_dict
        for column, kind in spec["columns"].items():
            if column not in have:
                db.table(name).add_column(column, kind)
    for table, columns, unique in INDEXES:
        db.table(table).create_index(columns, unique=unique, if_not_exists=True)
    for table in APPEND_ONLY:
        for action in ("UPDATE", "DELETE"):
            db.execute(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} BEFORE {action} "
                f"ON {table} BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END")
    db.table("meta").insert({"key": "schema_version", "value": SCHEMA_VERSION}, ignore=True)
