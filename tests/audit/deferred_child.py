"""A station process whose deferred records cannot be committed: `python deferred_child.py DIR`.

As in group_commit_child.py, RLIMIT_FSIZE makes the WAL file unable to grow (EFBIG: SQLite
reports a full disk), so the committer thread's COMMIT of a group that only deferred records
wait on fails for real. Then the limit is lifted again: the disk is fine, but the process
lost records it had been told were in the chain, so every later write must be refused. Prints
one JSON line: what the later write was told and what the database holds.
"""
from __future__ import annotations

import json
import resource
import signal
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from station.audit import AuditDB, AuditWriteFailed  # noqa: E402
from tests.audit.conftest import STATION  # noqa: E402


def main(directory: Path) -> None:
    path = directory / "audit.db"
    db = AuditDB.open(path, station_id=STATION)
    db.log_event("warm-up")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    wal = Path(f"{path}-wal")
    resource.setrlimit(resource.RLIMIT_FSIZE, (wal.stat().st_size, hard))
    returned = db.log_event("progress", data={"pad": "p" * 3000}, durable=False)
    deadline = time.monotonic() + 30
    while db.groups_lost == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    later = None
    try:
        db.log_event("decision")
    except AuditWriteFailed as exc:
        later = str(exc)
    groups_lost = db.groups_lost
    db.close()
    with sqlite3.connect(path) as conn:
        kinds = [k for (k,) in conn.execute("SELECT kind FROM events ORDER BY id")]
    print(json.dumps({"returned": returned, "groups_lost": groups_lost, "later": later,
                      "kinds": kinds}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
