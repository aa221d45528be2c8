"""What a QA export covers: a batch, a date range or one device (docs/audit.md, "QA export").

A selection is a WHERE clause over `events`, evaluated by SQLite on a read-only connection;
every export streams the matching rows from a cursor, so a batch of any size is exported
without loading the database into memory.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from station.audit.chain import utc_timestamp
from station.audit.errors import AuditUnreadable
from station.audit.verify import open_read_only
from station.errors import UsageError

EVENT_COLUMNS = ("id", "ts", "station_id", "kind", "operator", "batch_id", "slot", "device_id",
                 "data", "prev_hash", "hash")


def parse_moment(text: str, option: str, *, end_of_day: bool = False) -> str:
    """A --since/--until value (an ISO 8601 date or date-time; UTC unless it says otherwise)
    as the audit's timestamp text, which compares correctly as a string. A bare date given
    to --until means the end of that day."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected a date (2026-11-23) or an ISO 8601 date-time "
                         "(2026-11-23T14:00:00Z)") from None
    if end_of_day and len(text) == 10:
        moment += dt.timedelta(days=1)
    return utc_timestamp(moment)


@dataclass(frozen=True)
class Selection:
    """Exactly one of: a batch id; a time range [since, until) of audit timestamps; a device id."""

    batch: str | None = None
    since: str | None = None
    until: str | None = None
    device: str | None = None

    def __post_init__(self):
        given = [self.batch is not None, self.since is not None, self.device is not None]
        if sum(given) != 1:
            raise UsageError("select what to export with exactly one of --batch WO, --since DATE [--until "
                             "DATE], --device ID")
        if self.until is not None and self.since is None:
            raise UsageError("--until needs --since")

    def where(self) -> tuple[str, tuple]:
        """The SQL condition on `events` and its parameters."""
        if self.batch is not None:
            return "batch_id = ?", (self.batch,)
        if self.device is not None:
            return "device_id = ?", (self.device,)
        if self.until is not None:
            return "ts >= ? AND ts < ?", (self.since, self.until)
        return "ts >= ?", (self.since,)

    def describe(self) -> dict:
        """The selection as plain JSON, for manifests and summaries."""
        return {k: v for k, v in (("batch", self.batch), ("since", self.since), ("until", self.until),
                                  ("device", self.device)) if v is not None}


@contextmanager
def reading(path: Path):
    """A read-only connection to the audit database; AuditUnreadable if it is not there."""
    path = Path(path)
    if not path.is_file():
        raise AuditUnreadable(f"no audit database at {path}")
    conn = open_read_only(path)
    try:
        yield conn
    except sqlite3.Error as exc:
        raise AuditUnreadable(f"cannot read audit database {path}: {exc}") from exc
    finally:
        conn.close()


def rows(conn: sqlite3.Connection, sql: str, params=()):
    """Stream the result as dicts, one row at a time."""
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    for values in cur:
        yield dict(zip(names, values))


def selected_events(conn: sqlite3.Connection, selection: Selection, order: str = "id"):
    condition, params = selection.where()
    return rows(conn, f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE {condition} ORDER BY {order}",
                params)
