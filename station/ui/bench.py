"""`station bench ui`: what the operator terminal costs (figures in docs/performance.md).

- cold start: from starting a fresh Python process to the operator screen's first frame drawn
  (the demo station, headless terminal); the process is started anew for each run.
- UI overhead: the demo's devices per hour with the UI attached (the real app driven headless
  by Pilot: badge and work order scanned, every device through the real pipeline) against the
  headless runner, alternating in the same run, on the same throwaway station. Both rates come
  from the audit log (batch-opened to batch-closed), so both are measured the same way. A
  first run of each is not counted (it pays for the first imports and the first frame).

Runs on a throwaway development station in a temporary directory, never on a real CA.
"""
from __future__ import annotations

import asyncio
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

READY = "first-frame"


def _cold_start_child(workdir: Path) -> None:
    """Runs in the measured process: draw the first frame, say so, leave."""
    from station.config import load_config
    from station.ui.launch import demo_app

    app = demo_app(load_config(workdir / "station.toml"), workdir)
    app.session = None  # the first frame only: no token login, no line

    def drawn() -> None:
        print(READY, flush=True)
        app.exit()

    app.call_after_refresh(drawn)
    app.run(headless=True, size=(80, 24))


def cold_start_s(workdir: Path) -> float:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "station.ui.bench", "--cold-start-child", str(workdir)],
                         capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    if READY not in out.stdout:
        raise RuntimeError(f"the UI did not draw: {out.stderr.strip()[-500:]}")
    return elapsed


def _batch_rate(database: Path, batch_id: str, expected: int) -> float:
    """Devices per hour of `batch_id`, from its batch-opened and batch-closed events; a run
    in which not every device ended is an error, not a figure."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        stamps = dict(conn.execute("SELECT kind, ts FROM events WHERE batch_id = ? AND kind IN "
                                   "('batch-opened', 'batch-closed')", (batch_id,)).fetchall())
        done = conn.execute("SELECT COUNT(*) FROM events WHERE batch_id = ? AND kind IN "
                            "('device-passed', 'device-failed')", (batch_id,)).fetchone()[0]
    if done != expected or set(stamps) != {"batch-opened", "batch-closed"}:
        raise RuntimeError(f"batch {batch_id}: {done} of {expected} devices ended, events {sorted(stamps)}")
    parse = lambda ts: datetime.fromisoformat(ts.replace("Z", "+00:00"))  # noqa: E731
    elapsed = (parse(stamps["batch-closed"]) - parse(stamps["batch-opened"])).total_seconds()
    return done * 3600 / elapsed


def headless_rate(workdir: Path, devices: int, slots: int) -> float:
    from station.demo import run_demo

    summary = run_demo(workdir, devices=devices, slots=slots, out=open(os.devnull, "w"), say=lambda m: None)
    return _batch_rate(summary.database, summary.batch_id, devices)


def ui_rate(workdir: Path, devices: int, slots: int) -> float:
    from station.config import load_config
    from station.ui.launch import demo_app

    cfg = load_config(workdir / "station.toml")
    app = demo_app(cfg, workdir, slots=slots, devices=devices, faulty=None, hold_s=0, gap_s=0)

    async def drive() -> str:
        async with app.run_test(size=(120, 40)) as pilot:
            model = app.model
            for text, ready in (("", lambda: model.station_ready), ("OP-BENCH", lambda: model.operator),
                                ("WO-BENCH", lambda: model.batch is not None and model.batch.closed)):
                if text:
                    await pilot.press(*text, "enter")
                while not ready():
                    await asyncio.sleep(0.1)  # the app runs meanwhile; Pilot's pause would add work
            await pilot.press("q")  # as an operator leaves: the session and its devices are closed
            while app.return_code is None:
                await asyncio.sleep(0.05)
            return model.batch.batch_id

    batch_id = asyncio.run(drive())
    return _batch_rate(cfg.audit.database, batch_id, devices)


def bench_ui(*, runs: int = 3, devices: int = 32, slots: int = 8, progress=lambda m: None) -> dict:
    from station.demo import prepare_demo

    with tempfile.TemporaryDirectory(prefix="station-bench-ui-") as tmp:
        workdir = Path(tmp)
        progress("creating a throwaway demo station")
        prepare_demo(workdir, say=lambda m: None)
        progress(f"cold start, {runs + 1} fresh processes (the first warms the disk cache, not counted)")
        cold_start_s(workdir)
        cold = [cold_start_s(workdir) for _ in range(runs)]
        progress("warm-up line runs, headless and with the UI (not counted)")
        headless_rate(workdir, devices, slots)
        ui_rate(workdir, devices, slots)
        headless, ui = [], []
        for i in range(runs):
            # Alternate which goes first, so a trend in the machine's load favours neither.
            order = (("headless", headless_rate, headless), ("UI", ui_rate, ui))[::1 if i % 2 == 0 else -1]
            progress(f"line run {i + 1}/{runs}: {order[0][0]}, then {order[1][0]} ({devices} devices, {slots} slots)")
            for _name, measure, figures in order:
                figures.append(measure(workdir, devices, slots))
    h, u = statistics.median(headless), statistics.median(ui)
    return {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "cold_start_s_median": round(statistics.median(cold), 3),
        "cold_start_s_max": round(max(cold), 3),
        "headless_devices_per_hour_median": round(h),
        "ui_devices_per_hour_median": round(u),
        "ui_overhead_percent": round(100 * (h - u) / h, 1),
        "headless_runs": [round(x) for x in headless],
        "ui_runs": [round(x) for x in ui],
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--cold-start-child"]:
        _cold_start_child(Path(sys.argv[2]))
