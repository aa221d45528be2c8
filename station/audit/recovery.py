"""Which writers of the audit database are gone, so their unfinished work can be closed.

Several processes write one database (the station, `station issue` runs). After a crash only
the work of *dead* writers may be marked interrupted/undelivered: a live CLI run's reservation
is not an orphan. Each AuditDB registers a session (host, pid); a session is dead when it was
closed, or its process no longer exists on this host.
"""
from __future__ import annotations

import os
import socket
import sqlite3
from pathlib import Path


def hostname() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """True if `pid` is a running (not zombie) process on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    # A killed child its parent has not reaped yet still answers signal 0.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def live_sessions(conn: sqlite3.Connection, current: str) -> set[str]:
    """Sessions whose writer may still be working: the current one, every unclosed session of
    another host (we cannot see its processes), and unclosed local ones whose pid runs.
    A pid reused by an unrelated process keeps a dead session "live": the safe side."""
    live = {current}
    here = hostname()
    for session_id, host, pid in conn.execute(
            "SELECT session_id, hostname, pid FROM sessions WHERE closed_at IS NULL"):
        if host != here or pid_alive(pid):
            live.add(session_id)
    return live


def unclosed_dead_sessions(conn: sqlite3.Connection, live: set[str]) -> list[str]:
    rows = conn.execute("SELECT session_id FROM sessions WHERE closed_at IS NULL").fetchall()
    return [r[0] for r in rows if r[0] not in live]
