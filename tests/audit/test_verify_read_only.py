"""verify on a copy whose directory it cannot write, in this process (issue 12).

A WAL database needs its `-shm` index to be read, and a reader creates it; on read-only media
it cannot, and SQLite answers SQLITE_CANTOPEN. test_failures.py reproduces that with a real
read-only bind mount, but in a child process, where no mutant of verify.py is loaded. Here the
`-shm` cannot be created for another reason SQLite treats alike: its name is a symlink into a
directory that does not exist (root, who runs these tests, can write any directory, so a
chmod would not do). The same branch of `open_read_only` runs: read the file as immutable when
no WAL content can be missed, refuse when there is some.
"""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from station.audit import AuditDB, AuditUnreadable, verify
from station.audit.verify import open_read_only
from tests.audit.conftest import STATION
from tests.audit.test_verify_strength import good  # noqa: F401 (a fixture)


def without_shm(path: Path) -> Path:
    """Make `path`'s `-shm` impossible to create; returns the symlink standing in its place."""
    shm = path.with_name(path.name + "-shm")
    assert not shm.exists(), "a -shm left by a writer would be read instead of created"
    shm.symlink_to(path.parent / "no-such-directory" / "shm")
    with pytest.raises(sqlite3.OperationalError) as refused:
        sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True).execute("SELECT 1 FROM sqlite_master")
    assert refused.value.sqlite_errorname == "SQLITE_CANTOPEN", "the branch under test is not reached"
    return shm


def copy_of(database: Path, directory: Path, *, wal: bytes | None = None) -> Path:
    directory.mkdir()
    copy = directory / database.name
    shutil.copyfile(database, copy)
    if wal is not None:
        (directory / f"{database.name}-wal").write_bytes(wal)
    return copy


def test_a_closed_copy_is_verified_in_full_as_the_original_is(good, audit_key, tmp_path):
    copy = copy_of(good, tmp_path / "media")
    without_shm(copy)
    original, report = verify(good, audit_key.public_key()), verify(copy, audit_key.public_key())
    assert report.ok and report.signatures_checked
    assert (report.events_checked, report.checkpoints_checked, report.certificates_checked, report.head_hash) == \
        (original.events_checked, original.checkpoints_checked, original.certificates_checked, original.head_hash)
    assert report.events_checked > 0 and report.certificates_checked > 0


def test_the_connection_it_gives_reads_everything_and_writes_nothing(good, tmp_path):
    copy = copy_of(good, tmp_path / "media")
    without_shm(copy)
    conn = open_read_only(copy)
    try:
        [(events,)] = conn.execute("SELECT count(*) FROM events").fetchall()
        assert events == sqlite3.connect(good).execute("SELECT count(*) FROM events").fetchone()[0]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM events")
    finally:
        conn.close()


def test_an_empty_wal_left_beside_it_is_no_reason_to_refuse(good, audit_key, tmp_path):
    copy = copy_of(good, tmp_path / "media", wal=b"")
    without_shm(copy)
    assert verify(copy, audit_key.public_key()).ok


def test_a_copy_whose_wal_holds_recent_events_is_refused_not_read_stale(tmp_path):
    live = tmp_path / "audit.db"
    db = AuditDB.open(live, station_id=STATION)
    db.log_event("scan")
    db.log_event("only-in-the-wal")
    # Freeze the files while the writer still holds its events in the -wal.
    copy = copy_of(live, tmp_path / "media", wal=Path(f"{live}-wal").read_bytes())
    db.close()
    assert (copy.parent / "audit.db-wal").stat().st_size > 0
    without_shm(copy)
    for attempt in (lambda: verify(copy), lambda: open_read_only(copy)):
        with pytest.raises(AuditUnreadable) as refused:
            attempt()
        assert str(refused.value) == (f"cannot open {copy} read-only: its audit.db-wal holds recent events "
                                      "and the directory is not writable; copy both files to a writable directory")


def test_a_wal_of_a_single_byte_is_refused_too(good, tmp_path):
    # Whatever a non-empty -wal holds, reading the file as immutable would ignore it.
    copy = copy_of(good, tmp_path / "media", wal=b"\0")
    without_shm(copy)
    with pytest.raises(AuditUnreadable, match="its audit.db-wal holds recent events"):
        open_read_only(copy)


def test_the_ordinary_connection_is_read_only_too(good):
    # The common case (a writable directory): `mode=ro`, so not even a bug in verify or an
    # export could change the database it reads.
    conn = open_read_only(good)
    try:
        with pytest.raises(sqlite3.OperationalError, match="attempt to write a readonly database"):
            conn.execute("DELETE FROM events")
    finally:
        conn.close()
    assert verify(good).ok


def test_a_database_that_is_not_there_is_refused_by_name(tmp_path):
    # open_read_only is also what the exports call, which do not check the path first.
    path = tmp_path / "gone" / "audit.db"
    with pytest.raises(AuditUnreadable) as refused:
        open_read_only(path)
    assert str(refused.value) == f"cannot open audit database {path}: unable to open database file"
