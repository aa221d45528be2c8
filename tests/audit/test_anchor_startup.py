"""The station refuses to start when `[audit] certificate` certifies another key than the
token's audit key: checkpoints signed from then on could never verify under the trust anchor."""
from __future__ import annotations

from tests.cli_runner import assert_clean_failure, run_station
from tests.engine.processes import simulated_devices, station_dir


def test_a_station_whose_audit_certificate_is_for_another_key_does_not_start(tmp_path):
    station_dir(tmp_path)
    audit_pem, chain_pem = tmp_path / "ca" / "audit.pem", tmp_path / "ca" / "chain.pem"
    # A genuine certificate of this PKI, but not for the audit key: the issuing CA's own.
    audit_pem.write_bytes(chain_pem.read_bytes())
    with simulated_devices(tmp_path, 1) as ports:
        result = run_station("run", "--headless", "--batch", "WO-1", "--model", "SIM-1", f"--port={ports[0]}",
                             cwd=tmp_path)
    assert_clean_failure(result, 2, "[audit] certificate", "another key than the token's audit key")
    # Nothing was provisioned: the check runs before any batch opens.
    assert not (tmp_path / "devices").exists() or not any(
        (d / "cert.pem").exists() for d in (tmp_path / "devices").iterdir() if d.is_dir())


def test_an_honest_station_starts(tmp_path):
    station_dir(tmp_path)
    with simulated_devices(tmp_path, 1) as ports:
        result = run_station("run", "--headless", "--batch", "WO-1", "--model", "SIM-1", f"--port={ports[0]}",
                             cwd=tmp_path)
    assert result.returncode == 0, result.stderr
