"""The batch report, opened in a real headless browser (the distribution's Chromium driven by
Playwright): the figures it shows are the database's, and it loads nothing from anywhere."""
from __future__ import annotations

import json
import sqlite3
import statistics
from collections import Counter
from pathlib import Path

import pytest

from station.audit.report import write_batch_report
from tests.cli_runner import assert_clean_failure, run_station

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (bootstrap.py "
                                                               "installs it)")


def _expected(db_path: Path, batch: str) -> dict:
    """The report's figures, computed here straight from the tables with SQL."""
    db = sqlite3.connect(db_path)
    last = {}
    for device, kind in db.execute("select device_id, kind from events where batch_id = ? and kind in "
                                   "('device-passed', 'device-failed') order by id", (batch,)):
        last[device] = kind
    devices = {d for (d,) in db.execute("select distinct device_id from events where batch_id = ? and device_id "
                                        "is not null", (batch,))}
    failures = Counter(json.loads(d)["step"] for (d,) in db.execute(
        "select data from events where batch_id = ? and kind = 'device-failed'", (batch,)))
    steps: dict[str, list[float]] = {}
    for (data,) in db.execute("select data from events where batch_id = ? and kind = 'step-finished'", (batch,)):
        step = json.loads(data)
        if step["ok"]:
            steps.setdefault(step["step"], []).append(step["duration_s"])
    operators = Counter(op for (op,) in db.execute("select operator from events where batch_id = ? and kind in "
                                                   "('device-passed', 'device-failed')", (batch,)))
    head = db.execute("select id, hash from events order by id desc limit 1").fetchone()
    passed = sum(1 for d in devices if last.get(d) == "device-passed")
    return {"devices": len(devices), "passed": passed,
            "failed": sum(1 for d in devices if last.get(d) == "device-failed"),
            "yield": f"{100 * passed / len(devices):.1f}%", "failures": failures, "steps": steps,
            "operators": operators, "head": head,
            "overrides": db.execute("select count(*) from events where batch_id = ? and kind = 'override-approved'",
                                    (batch,)).fetchone()[0]}


@pytest.mark.parametrize("batch, outcome", [("WO-QA-1", (4, 2, 0)), ("WO-QA-2", (0, 2, 1))])
def test_report_in_chromium_shows_the_database_figures(qa_line, tmp_path, batch, outcome):
    from playwright.sync_api import sync_playwright

    out = tmp_path / f"{batch}.html"
    result = run_station("--config", qa_line.config_path, "audit", "report", "--batch", batch, "--out", out)
    assert result.returncode == 0, result.stderr
    want = _expected(qa_line.db, batch)
    assert (want["failed"], want["passed"], want["overrides"]) == outcome  # the runs the fixture made

    requests = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page()
        page.on("request", lambda request: requests.append(request.url))
        page.goto(out.as_uri())

        def shown(name: str) -> str:
            return page.locator(f'[data-figure="{name}"]').inner_text()

        assert shown("yield") == want["yield"]
        assert (int(shown("devices")), int(shown("passed")), int(shown("failed"))) == (
            want["devices"], want["passed"], want["failed"])
        failure_rows = page.locator('tr[data-row="failure"]')
        by_step = Counter()
        for i in range(failure_rows.count()):
            step, _reason, count = failure_rows.nth(i).locator("td").all_inner_texts()
            by_step[step] += int(count)
        assert by_step == want["failures"]
        for step, values in want["steps"].items():
            assert int(shown(f"step-count:{step}")) == len(values)
            assert shown(f"step-median:{step}") == f"{statistics.median(values):.3f}"
        for operator, count in want["operators"].items():
            assert int(shown(f"operator:{operator}")) == count
        assert int(shown("overrides")) == want["overrides"] == page.locator('tr[data-row="override"]').count()
        assert (int(shown("head-id")), shown("head-hash")) == want["head"]
        charts = page.locator("svg[data-chart]")
        assert charts.count() == 2 + bool(want["failures"]) and page.locator("svg[data-chart] rect").count() > 0
        assert page.locator("script").count() == 0
        browser.close()
    assert requests == [out.as_uri()], requests  # nothing fetched: no CDN, no network


def test_write_batch_report_is_a_plain_function_and_unknown_batches_are_refused(qa_line, tmp_path):
    figures = write_batch_report(qa_line.db, "WO-QA-2", tmp_path / "r.html")
    assert (figures.devices, figures.passed, len(figures.overrides)) == (2, 2, 1)
    assert figures.overrides[0]["supervisor"] == "sup-7"
    assert "<script" not in (tmp_path / "r.html").read_text()
    assert_clean_failure(run_station("--config", qa_line.config_path, "audit", "report", "--batch", "WO-NOPE",
                                     "--out", tmp_path / "x.html"), 1, "no batch 'WO-NOPE'")
    assert not (tmp_path / "x.html").exists()
