"""`station bench audit-write` and `station bench audit`: the real writer, a real database on
disk, every figure present and the chain verified (a smoke test: the figures themselves are
recorded in docs/performance.md, not asserted)."""
from __future__ import annotations

import json

import pytest

from tests.cli_runner import run_station


def last_json(result) -> dict:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_bench_audit_write_reports_durable_events_shared_commits_and_the_fsync_bound(tmp_path):
    figures = last_json(run_station("bench", "audit-write", "--events", "400", "--writers", "8",
                                    "--dir", tmp_path, "--json"))
    assert figures["events"] == 400 and figures["writers"] == 8
    assert figures["chain_verifies"] is True
    assert figures["durable_events_per_s"] > 0 and figures["fsync_ms_median"] > 0
    assert 1 <= figures["events_per_commit"] <= 8  # a caller waits: at most W records a COMMIT
    assert figures["commits"] * figures["events_per_commit"] == pytest.approx(400, abs=1)
    assert list(tmp_path.iterdir()) == [], "the throwaway database must be removed"


def test_bench_audit_times_verify_on_a_database_built_by_the_writer(tmp_path):
    figures = last_json(run_station("bench", "audit", "--events", "1000", "--dir", tmp_path,
                                    "--json"))
    assert figures["events"] == 1000 and figures["verify_ok"] is True
    assert figures["verify_events_per_s"] > 0 and figures["database_bytes"] > 0
    assert figures["verify_cpu_s"] >= 0 and "verify_events_per_cpu_s" in figures


def test_bench_audit_write_refuses_a_missing_directory_as_usage(tmp_path):
    result = run_station("bench", "audit-write", "--dir", tmp_path / "nowhere")
    assert result.returncode == 2 and "Traceback" not in result.stderr
