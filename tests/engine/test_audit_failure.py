"""When the audit cannot be written the station stops issuing and says why: no certificate
exists that the database does not know.

Two real failures: a read-only database file (made immutable with chattr, because the tests
run as root, for whom a 0444 mode does not stop writes) and a disk that fills up in the
middle of a batch (a small tmpfs in a private mount namespace). Each skips, with the reason,
where the machine lacks the means."""
from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from station.audit import AuditDB
from tests.cli_runner import assert_clean_failure, run_station
from tests.engine.processes import simulated_devices, station_dir


def _chattr_works(path: Path) -> bool:
    if not shutil.which("chattr"):
        return False
    ok = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    return ok


def test_read_only_audit_database_stops_the_line_before_any_issuance(tmp_path):
    station_dir(tmp_path)
    db = tmp_path / "audit.db"
    AuditDB.open(db, station_id="station-1").close()  # an existing station's database
    if not _chattr_works(db):
        pytest.skip("chattr +i not available on this filesystem")
    with simulated_devices(tmp_path, 2) as ports:
        subprocess.run(["chattr", "+i", str(db)], check=True)
        try:
            result = run_station("run", "--headless", "--batch", "WO-RO", "--model", "SIM-1",
                                 *[f"--port={p}" for p in ports], cwd=tmp_path)
        finally:
            subprocess.run(["chattr", "-i", str(db)], check=True)
    assert_clean_failure(result, 3, "read-only", str(db))
    assert "PASS" not in result.stdout
    for folder in (tmp_path / "devices").iterdir():
        if folder.is_dir():
            assert not (folder / "cert.pem").exists(), "no device may receive a certificate"


def _can_mount_tmpfs() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs unshare -m and mount (CAP_SYS_ADMIN)")
def test_disk_full_mid_batch_halts_issuance_and_loses_nothing(tmp_path):
    config = station_dir(tmp_path)
    config.write_text(config.read_text().replace('database = "audit.db"', 'database = "auditfs/audit.db"'))
    (tmp_path / "auditfs").mkdir()
    (tmp_path / "saved").mkdir()
    with simulated_devices(tmp_path, 12) as ports:
        station = f"{sys.executable} -m station run --headless --batch WO-FULL --model SIM-1 " + " ".join(
            f"--port=S{i % 2 + 1}={p}" for i, p in enumerate(ports))
        # The database lives on a 640 KiB tmpfs that exists only in this namespace; once the
        # run ends its files are copied out so the test can read what the station left.
        shell = (f"mount -t tmpfs -o size=640k tmpfs {tmp_path}/auditfs && cd {tmp_path} && "
                 f"{station}; rc=$?; cp {tmp_path}/auditfs/* {tmp_path}/saved/; exit $rc")
        result = subprocess.run(["unshare", "-m", "sh", "-c", shell], capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "HALT" in result.stdout and "disk full" in result.stdout, result.stdout
    assert "HALTED" in result.stdout.splitlines()[-1]

    db = sqlite3.connect(tmp_path / "saved" / "audit.db")
    known = {r[0] for r in db.execute("select cert_pem from certificates where cert_pem is not null")}
    known_serials = {x509.load_pem_x509_certificate(p.encode()).serial_number for p in known}
    delivered = 0
    for folder in (tmp_path / "devices").iterdir():
        cert_path = folder / "cert.pem"
        if cert_path.exists():
            delivered += 1
            serial = x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number
            assert serial in known_serials, f"device {folder.name} holds a certificate the audit does not know"
    assert 0 < delivered < 12, "the disk must fill in the middle of the batch"
    passes = result.stdout.count("PASS ")
    assert passes <= delivered
