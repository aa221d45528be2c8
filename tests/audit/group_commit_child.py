"""A station process whose audit commits start failing: `python group_commit_child.py DIR`.

RLIMIT_FSIZE stops every file write past a size (EFBIG: SQLite reports a full disk), so the
group commit fails for real, in a process of its own, with no mount namespace needed. Sixteen
threads write until each has seen its first failure; the process prints one JSON line: what
each thread was told, and what the database holds afterwards.
"""
from __future__ import annotations

import json
import resource
import signal
import sqlite3
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from station.audit import AuditDB, AuditWriteFailed, verify  # noqa: E402
from tests.audit.conftest import STATION  # noqa: E402

THREADS = 16


def main(directory: Path) -> None:
    path = directory / "audit.db"
    db = AuditDB.open(path, station_id=STATION)
    for n in range(20):
        db.log_event("warm-up", data={"n": n})
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    wal = Path(f"{path}-wal")
    # Room for a few groups of 16 padded events, then every write past it fails.
    resource.setrlimit(resource.RLIMIT_FSIZE, (wal.stat().st_size + 400_000, hard))
    outcome: dict[str, list] = {"ok": [], "failed": []}
    start = threading.Barrier(THREADS)
    lock = threading.Lock()

    def writer(t: int) -> None:
        start.wait()
        for i in range(10_000):
            tag = f"{t}-{i}"
            try:
                db.log_event("padded", data={"tag": tag, "pad": "p" * 3000})
            except AuditWriteFailed as exc:
                with lock:
                    outcome["failed"].append([tag, str(exc)])
                return
            with lock:
                outcome["ok"].append(tag)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    groups_lost, commits = db.groups_lost, db.commits
    db.close()
    with sqlite3.connect(path) as conn:
        stored = [json.loads(d)["tag"] for (d,) in
                  conn.execute("SELECT data FROM events WHERE kind = 'padded'")]
    report = verify(path)
    print(json.dumps({**outcome, "stored": stored, "groups_lost": groups_lost,
                      "commits": commits, "verify_ok": report.ok,
                      "events_checked": report.events_checked}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
