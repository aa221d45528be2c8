"""Which writers of the audit database are gone, so their unfinished work can be closed.

Several processes write one database (the station, `station issue` runs). After a crash only
the work of *dead* writers may be marked interrupted/undelivered: a live CLI run's reservation
is not an orphan. Each AuditDB registers a session (host, pid); a session is dead when it was
closed, or its process no longer exists on this host.

`CrashRecovery` is part of AuditDB (station/audit/database.py), which supplies the connection,
the lock, `_transaction` and `_append`.
"""
from __future__ import annotations

import os
import socket
import sqlite3
from pathlib import Path

from station.audit import statuses as st
from station.audit.chain import utc_timestamp


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


class CrashRecovery:
    def recover_after_crash(self) -> dict:
        """Close the unfinished work of writers that died (this one excluded): their in-flight
        devices become `interrupted`, their reserved certificates `undelivered`, their issued ones
        `unknown` (settled at the device's next contact), each change logged as an event;
        their delivered-but-never-verified certificates are named (`certificates_unproven`).
        Work of live writers (another running process) is left.

        Returns: {"devices_interrupted": [device_id...], "certificates_undelivered": [serial
        int...], "certificates_unknown": [...], "certificates_unproven": [...],
        "sessions_closed": [session_id...]} (empty lists if nothing to do).
        Raises: AuditWriteFailed.
        """
        result = {"devices_interrupted": [], "certificates_undelivered": [],
                  "certificates_unknown": [], "certificates_unproven": [], "sessions_closed": []}
        with self._transaction():
            live = live_sessions(self._conn, self.session_id)
            marks = ", ".join("?" * len(live))
            devices = self._conn.execute(
                f"SELECT device_id FROM devices WHERE state = ? AND "
                f"(session_id IS NULL OR session_id NOT IN ({marks})) ORDER BY device_id",
                (st.IN_FLIGHT, *live)).fetchall()
            for (device_id,) in devices:
                self._set_device_state(device_id, st.INTERRUPTED,
                                       "station stopped while this device was in flight")
                result["devices_interrupted"].append(device_id)
            cur = self._conn.execute(
                f"SELECT * FROM certificates WHERE status IN (?, ?) AND "
                f"(session_id IS NULL OR session_id NOT IN ({marks})) ORDER BY serial",
                (*sorted(st.UNCONFIRMED), *live))
            names = [d[0] for d in cur.description]
            for values in cur.fetchall():
                row = dict(zip(names, values))
                if row["status"] == st.ISSUED:
                    # It may have been written and committed just before the station died:
                    # the device's next contact settles it (CertificateRecords.settle_stored).
                    self._change_status(row, st.UNKNOWN, "station stopped before the commit "
                                        "was confirmed; settled at the device's next contact")
                    result["certificates_unknown"].append(int(row["serial"], 16))
                else:
                    self._change_status(row, st.UNDELIVERED,
                                        "station stopped before the certificate was signed")
                    result["certificates_undelivered"].append(int(row["serial"], 16))
            # Committed on the device but its proof never ran: the certificate stays delivered
            # (the device holds it, so re-provisioning needs an override), and the record
            # names it, so QA sees possession was never proven.
            # Named once, by the recovery that closes the dead session.
            dead = unclosed_dead_sessions(self._conn, live)
            unproven = self._conn.execute(
                f"SELECT serial FROM certificates WHERE status = ? AND session_id IN "
                f"({', '.join('?' * len(dead))}) ORDER BY serial", (st.DELIVERED, *dead)).fetchall()
            result["certificates_unproven"] = [int(s, 16) for (s,) in unproven]
            for session_id in dead:
                self._db["sessions"].update(session_id, {"closed_at": utc_timestamp()})
                result["sessions_closed"].append(session_id)
            if result["devices_interrupted"] or any(
                    result[k] for k in ("certificates_undelivered", "certificates_unknown",
                                        "certificates_unproven")):
                self._append("crash-recovered", data={
                    "devices_interrupted": result["devices_interrupted"],
                    **{k: [format(s, "x") for s in result[k]] for k in (
                        "certificates_undelivered", "certificates_unknown",
                        "certificates_unproven")},
                    "sessions_closed": result["sessions_closed"]})
        return result


