"""`station bench issue` runs on its own throwaway token and reports every figure (a smoke test
of the benchmark; the figures themselves are recorded in docs/performance.md, not asserted)."""
from __future__ import annotations

import json

from tests.cli_runner import run_station


def test_bench_issue_prints_the_figures_as_json(tmp_path):
    result = run_station("bench", "issue", "--count", "60", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("raw_signs_per_s", "issuances_per_s", "durable_issuances_per_s", "full_over_raw",
                "checks_floor_issuances_per_s", "machine"):
        assert key in figures
    assert figures["raw_signs_per_s"] > 0 and figures["issuances_per_s"] > 0
    # Three signature operations cannot take longer than the token's sign alone.
    assert 0 < figures["checks_floor_issuances_per_s"] < figures["raw_signs_per_s"]
    assert figures["full_over_raw"] == round(figures["issuances_per_s"] / figures["raw_signs_per_s"], 3)
    # Issue 10's target; met or not is the best figure against it.
    assert figures["target_issuances_per_s"] == 2000
    assert figures["meets_target"] == (figures["issuances_per_s"] >= 2000)
    assert list(tmp_path.iterdir()) == [], "the benchmark must leave nothing behind in the working directory"
