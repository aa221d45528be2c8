"""`station demo` and `station run` as scripts use them: exit codes, summary lines, JSON."""
from __future__ import annotations

import json
import sqlite3

from tests.cli_runner import assert_clean_failure, run_station
from tests.engine.processes import simulated_devices, station_dir


def test_demo_runs_the_whole_product_and_can_run_again(tmp_path):
    workdir = tmp_path / "demo"
    for _ in range(2):
        result = run_station("demo", "--headless", "--devices", 4, "--slots", 2, "--workdir", workdir,
                             "--keygen-ms", 20, "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert (summary["passed"], summary["failed"], summary["halted"]) == (4, 0, None)
        assert summary["database"] == str(workdir.resolve() / "audit.db")
        assert summary["devices_per_hour"] > 0 and summary["batch_id"].startswith("DEMO-")
        assert result.stdout.count("PASS ") == 4
    assert len([p for p in (workdir / "devices").iterdir() if p.is_dir()]) == 8
    verified = run_station("audit", "verify", cwd=workdir)
    assert verified.returncode == 0, verified.stderr


def test_tampering_with_a_demo_audit_is_detected(tmp_path):
    workdir = tmp_path / "demo"
    assert run_station("demo", "--headless", "--devices", 2, "--slots", 2, "--workdir", workdir,
                       "--keygen-ms", 20).returncode == 0
    db = sqlite3.connect(workdir / "audit.db")
    row_id = db.execute("select id from events where kind = 'device-passed' order by id limit 1").fetchone()[0]
    # The append-only triggers stop mistakes, not an attacker with the file: drop them first.
    db.execute("drop trigger events_no_update")
    db.execute("update events set operator = 'mallory' where id = ?", (row_id,))
    db.commit()
    db.close()
    result = run_station("audit", "verify", cwd=workdir)
    assert_clean_failure(result, 1, f"event {row_id}")


def test_run_without_a_manifest_when_the_manifest_decides_is_a_usage_error(tmp_path):
    assert run_station("init", "--workdir", tmp_path).returncode == 0
    result = run_station("run", "--headless", "--batch", "WO", "--model", "SIM-1", "--port", "/dev/null",
                         cwd=tmp_path)
    assert_clean_failure(result, 2, "--manifest")


def test_run_on_a_missing_port_fails_that_device_with_the_reason(tmp_path):
    assert run_station("init", "--workdir", tmp_path).returncode == 0
    manifest = tmp_path / "m.csv"
    manifest.write_text("device_id,label\nAA,L1\n")
    result = run_station("run", "--headless", "--batch", "WO", "--model", "SIM-1", "--manifest", manifest,
                         "--port", "S4=/dev/ttyNOPE9", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL slot=S4 device=- step=open reason=cannot open /dev/ttyNOPE9" in result.stdout
    assert "0 passed, 1 failed" in result.stdout.splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_run_takes_model_and_ports_from_the_configuration(tmp_path):
    config = station_dir(tmp_path)
    with simulated_devices(tmp_path, 2) as ports:
        config.write_text(config.read_text().replace(
            "[line]\n", f'[line]\nmodel = "SIM-1"\nports = {{ A1 = "{ports[0]}", A2 = "{ports[1]}" }}\n'))
        result = run_station("run", "--headless", "--batch", "WO-CFG", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS slot=A1" in result.stdout and "PASS slot=A2" in result.stdout


def test_run_without_ports_anywhere_is_a_usage_error(tmp_path):
    assert run_station("init", "--workdir", tmp_path).returncode == 0
    manifest = tmp_path / "m.csv"
    manifest.write_text("label\nL1\n")
    result = run_station("run", "--headless", "--batch", "WO", "--model", "M", "--manifest", manifest, cwd=tmp_path)
    assert_clean_failure(result, 2, "no ports")


def test_the_head_printed_by_a_run_detects_truncation_after_the_last_checkpoint(tmp_path):
    workdir = tmp_path / "demo"
    result = run_station("demo", "--headless", "--devices", 2, "--slots", 2, "--workdir", workdir,
                         "--keygen-ms", 20, "--json")
    assert result.returncode == 0, result.stderr
    head = json.loads(result.stdout.strip().splitlines()[-1])["audit_head"]
    assert run_station("audit", "verify", "--expect-head", head, cwd=workdir).returncode == 0

    db = sqlite3.connect(workdir / "audit.db")
    db.execute("drop trigger events_no_delete")
    db.execute("delete from events where id = (select max(id) from events)")
    db.commit()
    db.close()
    # Alone, the file cannot show that its last, unsigned events are gone (docs/audit.md) ...
    assert run_station("audit", "verify", cwd=workdir).returncode == 0
    # ... the head written down at the end of the run can.
    result = run_station("audit", "verify", "--expect-head", head, cwd=workdir)
    assert_clean_failure(result, 1, f"event {head.split(':')[0]} recorded earlier is missing", "truncated")
