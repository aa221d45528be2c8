"""Errors of the audit database, each one line an operator can act on.

Writes that fail stop issuance: the engine treats `AuditWriteFailed` as "no certificate may
leave the station now", because a certificate the database does not know is the one thing the
audit must never allow.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from station.errors import EnvironmentProblem, StationError


class AuditWriteFailed(EnvironmentProblem):
    """The audit database could not record something (read-only, disk full, locked, I/O)."""


class AuditUnreadable(EnvironmentProblem):
    """The audit database cannot be opened or is not an audit database."""


class CheckpointFailed(EnvironmentProblem):
    """A checkpoint could not be signed or written. Events written before it stay recorded."""


class AuditTampered(StationError):
    """`station audit verify` found the log or a table inconsistent (exit code 1)."""


def write_failure(exc: sqlite3.Error, path: Path) -> AuditWriteFailed:
    """Translate a SQLite error raised while writing `path` into an operator-readable reason."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    # The extended codes (SQLITE_READONLY_DBMOVED, SQLITE_IOERR_WRITE, ...) share a prefix.
    if name.startswith("SQLITE_READONLY") or "readonly" in text:
        return AuditWriteFailed(f"audit database is read-only: {path}")
    if name == "SQLITE_FULL" or "disk is full" in text:
        return AuditWriteFailed(f"disk full writing {path}")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return AuditWriteFailed(f"audit database is locked by another process: {path}")
    if name.startswith("SQLITE_CANTOPEN"):
        return AuditWriteFailed(f"cannot open audit database for writing: {path}")
    if name.startswith("SQLITE_IOERR"):
        return AuditWriteFailed(f"disk I/O error writing {path} ({text})")
    return AuditWriteFailed(f"audit write failed on {path}: {text}")
