"""UI tests: the session's real token and CA, a fresh audit database per test, simulated
devices on real pseudo-terminals, the app driven headless by Textual's Pilot."""
from __future__ import annotations

import dataclasses
import html
import json
import re
import sqlite3
import time

import pytest

TIMEOUT_SCALE = 0.25
SIZE = (100, 32)


_APPS: list = []


def track(app):
    """Remember `app` so its line is stopped and its devices closed after the test."""
    _APPS.append(app)
    return app


@pytest.fixture(autouse=True)
def _close_sessions():
    # A test may end mid-batch: stop the line gently and close the simulated devices and the
    # station, so ptys and threads do not pile up over the session.
    yield
    while _APPS:
        session = _APPS.pop().session
        if session is not None:
            if session.in_flight:
                session.stop()
            session.close()


@pytest.fixture
def ui_config(station_config, tmp_path):
    audit = dataclasses.replace(station_config.audit, database=tmp_path / "audit.db")
    line = dataclasses.replace(station_config.line, timeout_scale=TIMEOUT_SCALE)
    return dataclasses.replace(station_config, audit=audit, line=line)


async def wait_for(pilot, predicate, timeout: float = 30.0, what: str = "condition") -> None:
    """Let the app run until `predicate()` holds (the line works on real threads)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
    await pilot.pause(1.1)  # one redraw tick (station/ui/app.py REFRESH_S)


async def scan(pilot, text: str) -> None:
    """Type as a barcode scanner does: the characters, then Enter."""
    await pilot.press(*text, "enter")
    await pilot.pause(0.05)


def audit_events(path, kind: str) -> list[dict]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM events WHERE kind = ? ORDER BY id", (kind,)).fetchall()
    return [dict(row, data=json.loads(row["data"])) for row in rows]


def screen_text(app) -> str:
    """What the terminal shows, one line of text per screen row (from the app's SVG export)."""
    svg = app.export_screenshot()
    rows: dict[int, list[str]] = {}
    for line, text in re.findall(r'<text [^>]*clip-path="url\(#terminal-\d+-line-(\d+)\)">([^<]*)</text>', svg):
        rows.setdefault(int(line), []).append(html.unescape(text).replace("\xa0", " "))
    return "\n".join("".join(rows[i]) for i in sorted(rows))
