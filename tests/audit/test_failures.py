"""When the audit cannot be written, the station is told why and nothing is half-recorded.

Read-only is reproduced honestly two ways, because the tests usually run as root (for whom
chmod does not stop writes): a file mode 0444 opened by an unprivileged process (setpriv to
nobody), and a read-only bind mount in a private mount namespace (unshare -m). Disk full is a
real 256 KiB tmpfs in such a namespace. Each skips, with the reason, where the system lacks
the means.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from station.audit import AuditDB, AuditUnreadable, AuditWriteFailed
from station.errors import EnvironmentProblem, ExitCode

from tests.audit.conftest import STATION

CHILD = Path(__file__).with_name("child.py")


def can_unshare() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


needs_namespace = pytest.mark.skipif(not can_unshare(),
                                     reason="needs unshare -m and mount (CAP_SYS_ADMIN)")


def in_namespace(setup: str, mode: str, directory: Path) -> list[str]:
    shell = f"{setup} && exec {sys.executable} {CHILD} {mode} {directory}"
    out = subprocess.run(["unshare", "-m", "sh", "-c", shell], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def make_db(directory: Path) -> Path:
    path = directory / "audit.db"
    with AuditDB.open(path, station_id=STATION) as db:
        db.log_event("scan")
    return path


def test_audit_write_failed_is_an_environment_problem():
    assert issubclass(AuditWriteFailed, EnvironmentProblem)
    assert AuditWriteFailed("x").exit_code == ExitCode.ENVIRONMENT


@needs_namespace
def test_read_only_mount_is_refused_at_open(tmp_path):
    path = make_db(tmp_path)
    lines = in_namespace(f"mount --bind {tmp_path} {tmp_path} && "
                         f"mount -o remount,bind,ro {tmp_path}", "open", tmp_path)
    assert lines == [f"AuditWriteFailed audit database is read-only: {path} "
                     "(its directory is not writable)"]


@needs_namespace
def test_verify_reads_a_copy_on_read_only_media(tmp_path):
    make_db(tmp_path)
    lines = in_namespace(f"mount --bind {tmp_path} {tmp_path} && "
                         f"mount -o remount,bind,ro {tmp_path}", "verify", tmp_path)
    assert lines == ["ok 1"]


@needs_namespace
def test_verify_refuses_a_stale_read_on_read_only_media(tmp_path):
    db = AuditDB.open(make_db(tmp_path), station_id=STATION)
    db.log_event("only-in-the-wal")
    # Freeze the files while the writer still holds recent events in the -wal.
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    for name in ("audit.db", "audit.db-wal"):
        (frozen / name).write_bytes((tmp_path / name).read_bytes())
    db.close()
    lines = in_namespace(f"mount --bind {frozen} {frozen} && "
                         f"mount -o remount,bind,ro {frozen}", "verify", frozen)
    assert len(lines) == 1 and lines[0].startswith("AuditUnreadable ")
    assert "holds recent events and the directory is not writable" in lines[0]


@pytest.fixture
def shared_dir():
    # pytest's tmp_path sits under a 0700 root directory an unprivileged user cannot enter.
    directory = Path(tempfile.mkdtemp(prefix="audit-ro-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


def test_read_only_file_is_refused_at_open(shared_dir):
    path = make_db(shared_dir)
    path.chmod(0o444)
    shared_dir.chmod(0o777)  # the directory is writable: only the file is read-only
    if os.geteuid() != 0:
        with pytest.raises(AuditWriteFailed) as failed:
            AuditDB.open(path, station_id=STATION)
        assert str(failed.value) == f"audit database is read-only: {path}"
        return
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: chmod cannot make a file read-only")
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          sys.executable, str(CHILD), "open", str(shared_dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"AuditWriteFailed audit database is read-only: {path}"]


@needs_namespace
def test_disk_full_stops_writes_with_the_reason_and_keeps_what_was_committed(tmp_path):
    lines = in_namespace(f"mount -t tmpfs -o size=256k tmpfs {tmp_path}", "fill", tmp_path)
    assert lines[0] == f"AuditWriteFailed disk full writing {tmp_path / 'audit.db'}"
    _, written, _, ok, checked = lines[1].split()
    assert ok == "True" and int(written) > 0
    assert int(checked) == int(written), "the failed event must not be half-recorded"


def test_locked_database_times_out_with_the_reason(db_path):
    db = AuditDB.open(db_path, station_id=STATION, busy_timeout=0.05)
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(AuditWriteFailed) as failed:
            db.log_event("scan")
        assert str(failed.value) == f"audit database is locked by another process: {db_path}"
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert db.log_event("scan") == 1  # nothing of the failed call was recorded
    db.close()


def test_reservation_is_committed_before_reserve_returns(audit_db, db_path):
    audit_db.reserve_certificate(serial=0x51, spki_sha256="12" * 32, subject="CN=a",
                                 device_id="a")
    # A separate connection (another process would see the same) already has it on disk.
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT status FROM certificates WHERE serial = '51'").fetchone() \
            == ("reserved",)


def test_a_file_that_is_not_sqlite_is_unreadable(tmp_path):
    path = tmp_path / "audit.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(AuditUnreadable, match="is not a readable audit database"):
        AuditDB.open(path, station_id=STATION)


def test_closed_database_refuses_writes(db_path):
    db = AuditDB.open(db_path, station_id=STATION)
    db.close()
    with pytest.raises(AuditWriteFailed, match="closed"):
        db.log_event("late")


def test_missing_directory_is_named(tmp_path):
    path = tmp_path / "no-such-dir" / "audit.db"
    with pytest.raises(AuditWriteFailed) as failed:
        AuditDB.open(path, station_id=STATION)
    assert str(failed.value) == (f"cannot create audit database {path}: the directory "
                                 f"{path.parent} does not exist")
