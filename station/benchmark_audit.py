"""`station bench audit-write` and `station bench audit`: how many events per second the
audit database makes durable, and how fast `station audit verify` checks them.

Both run on a throwaway database through the real writer (AuditDB: WAL, synchronous=FULL,
group commit), in a temporary directory on the file system given (default: the system's
temporary directory; pass the station's own directory to measure its disk). The disk sets
the pace of durable writes: every caller waits for the fsync that holds its record, so with
W writers at most W records can share one fsync, and W / fsync-latency bounds the rate.
"""
from __future__ import annotations

import os
import resource
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from station.audit import AuditDB, verify
from station.benchmark import machine_and_time
from station.errors import EnvironmentProblem

# About the size of a real engine event's data (a step with its duration and detail).
_EVENT_DATA = {"step": "write", "duration_ms": 12.5, "detail": "certificate chain written, 1,203 "
               "bytes, SHA-256 compared", "attempt": 1}


@contextmanager
def scratch_directory(directory: Path | None):
    """A temporary directory under `directory`, removed afterwards.

    Raises: EnvironmentProblem if it cannot be created there."""
    try:
        tmp = tempfile.TemporaryDirectory(prefix="station-bench-", dir=directory)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write a benchmark database in {directory}: "
                                 f"{exc.strerror}") from exc
    with tmp as path:
        yield Path(path)


def fsync_ms(directory: Path, count: int = 200) -> float:
    """Median latency of a 4 KiB append + fdatasync in `directory` (what one COMMIT waits for)."""
    path = Path(directory) / "fsync-probe"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        block = b"\0" * 4096
        for _ in range(count):
            start = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            times.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()
    times.sort()
    return times[len(times) // 2] * 1000


def write_events(db: AuditDB, events: int, writers: int) -> float:
    """Log `events` events from `writers` threads at once; returns the elapsed seconds."""
    share = [events // writers + (1 if i < events % writers else 0) for i in range(writers)]
    errors: list[BaseException] = []
    start_line = threading.Barrier(writers + 1)

    def writer(n: int, count: int) -> None:
        start_line.wait()
        try:
            for i in range(count):
                db.log_event("step-finished", operator="bench", batch_id="BENCH", slot=str(n),
                             device_id=f"D{n:04d}{i:08d}", data=_EVENT_DATA)
        except BaseException as exc:  # reported after the run
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n, c)) for n, c in enumerate(share)]
    for thread in threads:
        thread.start()
    start_line.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def bench_audit_write(events: int = 20_000, writers: int = 16, directory: Path | None = None,
                      progress=lambda msg: None) -> dict:
    with scratch_directory(directory) as tmp:
        progress(f"measuring fsync latency in {tmp}")
        fsync = fsync_ms(tmp)
        db = AuditDB.open(tmp / "audit.db", station_id="bench")
        try:
            progress(f"{writers} writers logging {events} events")
            commits, records = db.commits, db.records_committed
            elapsed = write_events(db, events, writers)
            commits, records = db.commits - commits, db.records_committed - records
        finally:
            db.close()
        report = verify(tmp / "audit.db")
    return {
        "events": events,
        "writers": writers,
        "durable_events_per_s": round(events / elapsed, 1),
        "commits": commits,
        "events_per_commit": round(records / commits, 2) if commits else 0,
        "fsync_ms_median": round(fsync, 3),
        "bound_events_per_s": round(writers / (fsync / 1000), 1) if fsync else None,
        "chain_verifies": report.ok,
        **machine_and_time(),
    }


def bench_audit_verify(events: int = 200_000, writers: int = 16, directory: Path | None = None,
                       progress=lambda msg: None) -> dict:
    with scratch_directory(directory) as tmp:
        path = tmp / "audit.db"
        with AuditDB.open(path, station_id="bench") as db:
            progress(f"building a database of {events} events ({writers} writers)")
            build = write_events(db, events, writers)
        size = path.stat().st_size
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        progress("verifying it")
        start, cpu_start = time.perf_counter(), time.process_time()
        report = verify(path)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "events": events,
        "database_bytes": size,
        "build_events_per_s": round(events / build, 1),
        "verify_s": round(elapsed, 3),
        "verify_events_per_s": round(report.events_checked / elapsed, 1),
        # CPU seconds of this process: on a shared machine the wall time also counts the
        # time other processes held the cores.
        "verify_cpu_s": round(cpu, 3),
        "verify_events_per_cpu_s": round(report.events_checked / cpu, 1) if cpu else None,
        "verify_ok": report.ok,
        # ru_maxrss only grows: 0 means verify stayed under the peak the build had reached.
        "verify_peak_rss_growth_kib": max(0, rss_after - rss_before),
        **machine_and_time(),
    }
