"""How the commands open the operator terminal, or say why not, when there is no terminal."""
from __future__ import annotations

from tests.cli_runner import assert_clean_failure, run_station


def test_demo_without_a_terminal_runs_headless_and_says_so(tmp_path):
    result = run_station("demo", "--devices", 2, "--slots", 2, "--keygen-ms", 20, "--workdir", tmp_path / "demo",
                         timeout=300)
    assert result.returncode == 0, result.stderr
    assert "station: not a terminal: running the demo headless (station demo --headless)" in result.stderr
    assert result.stdout.count("PASS") == 2


def test_station_and_run_without_a_terminal_refuse_with_usage_exit(tmp_path):
    for args in ((), ("run",)):
        result = run_station(*args, cwd=tmp_path)
        assert_clean_failure(result, 2, "the operator terminal needs a terminal", "station run --headless")


def test_headless_options_without_headless_are_refused(tmp_path):
    result = run_station("run", "--batch", "WO-1", cwd=tmp_path)
    assert_clean_failure(result, 2, "--batch is for --headless runs")
    result = run_station("run", "--headless", cwd=tmp_path)
    assert_clean_failure(result, 2, "--headless needs --batch")
