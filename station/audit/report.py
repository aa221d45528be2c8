"""The batch report: one self-contained HTML file (inline CSS and SVG, no script, no network)
with a batch's yield, failures, cycle times, throughput, operators, overrides and audit head
(docs/audit.md, "Batch report").

`write_batch_report(db, batch_id, path)` is the plain entry point the CLI and the operator UI's
batch-close screen call. Figures are computed from a read-only connection while streaming the
batch's events; every figure in the page carries a `data-figure` attribute so tests (and
scripts) can read it back.
"""
from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from station.audit.chain import utc_timestamp
from station.atomic_file import atomic_output
from station.audit.export import STEPS, device_rows
from station.audit.export_selection import Selection, reading, rows, selected_events
from station.errors import StationError


class UnknownBatch(StationError):
    """The batch is not in the audit (exit code 1)."""


@dataclass
class BatchFigures:
    batch: dict
    devices: int = 0
    passed: int = 0
    failed: int = 0
    other: int = 0
    attempts: int = 0
    failures: Counter = field(default_factory=Counter)  # (step, reason) -> attempts
    step_times: dict = field(default_factory=lambda: defaultdict(list))  # step -> seconds of successes
    per_hour: Counter = field(default_factory=Counter)  # "YYYY-MM-DDTHH" -> devices ended
    operators: Counter = field(default_factory=Counter)  # operator -> attempts ended
    overrides: list = field(default_factory=list)
    head: tuple = (0, "")
    last_checkpoint: int | None = None

    @property
    def yield_percent(self) -> float:
        return 100.0 * self.passed / self.devices if self.devices else 0.0


def batch_figures(conn, batch_id: str) -> BatchFigures:
    """Every figure of the report, from the audit database (streamed)."""
    batch = next(rows(conn, "SELECT * FROM batches WHERE batch_id = ?", (batch_id,)), None)
    if batch is None:
        raise UnknownBatch(f"no batch {batch_id!r} in the audit")
    figures = BatchFigures(batch=batch)
    selection = Selection(batch=batch_id)
    for device in device_rows(conn, selection):
        figures.devices += 1
        if device["result"] == "passed":
            figures.passed += 1
        elif device["result"] == "failed":
            figures.failed += 1
        else:
            figures.other += 1
    for event in selected_events(conn, selection):
        kind = event["kind"]
        if kind not in ("device-passed", "device-failed", "step-finished", "override-approved"):
            continue
        data = json.loads(event["data"])
        if kind == "step-finished" and data.get("ok") and data.get("step") in STEPS:
            figures.step_times[data["step"]].append(float(data["duration_s"]))
        elif kind == "override-approved":
            figures.overrides.append({"ts": event["ts"], "supervisor": event["operator"],
                                      "device_id": event["device_id"], "what": data.get("what", "")})
        elif kind in ("device-passed", "device-failed"):
            figures.attempts += 1
            figures.per_hour[event["ts"][:13]] += 1
            figures.operators[event["operator"] or "?"] += 1
            if kind == "device-failed":
                figures.failures[(data.get("step", "?"), data.get("reason", ""))] += 1
    head = conn.execute("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
    figures.head = tuple(head) if head else (0, "")
    checkpoint = conn.execute("SELECT MAX(id) FROM checkpoints").fetchone()
    figures.last_checkpoint = checkpoint[0] if checkpoint else None
    return figures


def write_batch_report(db, batch_id: str, path) -> BatchFigures:
    """Write the HTML report of `batch_id` to `path`. `db` is the audit database's path or an
    open AuditDB (its file is read through a read-only connection of its own).
    Returns the figures. Raises UnknownBatch, AuditUnreadable, EnvironmentProblem."""
    db_path = Path(getattr(db, "path", db))
    with reading(db_path) as conn:
        figures = batch_figures(conn, batch_id)
    with atomic_output(Path(path)) as out:
        out.write(render_html(figures))
    return figures


# ---------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:60em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.big{font-size:2em;font-weight:bold}
.pass{color:#1a7f37}.fail{color:#c62828}code{font-size:.85em;word-break:break-all}
svg text{font-size:11px;font-family:system-ui,sans-serif}
"""


def _figure(name: str, value, css: str = "") -> str:
    klass = f' class="{css}"' if css else ""
    return f'<span data-figure="{escape(name)}"{klass}>{escape(str(value))}</span>'


def _bars(items: list[tuple[str, float]], *, unit: str = "", name: str) -> str:
    """A horizontal bar chart as inline SVG."""
    if not items:
        return "<p>none</p>"
    top = max(v for _, v in items) or 1
    height = 22 * len(items) + 10
    parts = [f'<svg data-chart="{escape(name)}" width="640" height="{height}" role="img">']
    for i, (label, value) in enumerate(items):
        y = 5 + 22 * i
        width = 400 * value / top
        parts.append(f'<text x="0" y="{y + 14}">{escape(label[:28])}</text>'
                     f'<rect x="190" y="{y}" width="{width:.1f}" height="16" fill="#4a78c2"/>'
                     f'<text x="{195 + width:.1f}" y="{y + 14}">{escape(f"{value:g}{unit}")}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _boxes(step_times: dict) -> str:
    """Cycle time per step: whisker min..max, box p25..p75, tick at the median (inline SVG)."""
    steps = [s for s in STEPS if step_times.get(s)]
    if not steps:
        return "<p>none</p>"
    top = max(max(step_times[s]) for s in steps) or 1
    scale = 400 / top
    parts = [f'<svg data-chart="cycle-times" width="640" height="{26 * len(steps) + 24}" role="img">']
    for i, step in enumerate(steps):
        values = sorted(step_times[step])
        low, high = _quantile(values, 0.25), _quantile(values, 0.75)
        y = 5 + 26 * i
        x = lambda v: 90 + v * scale  # noqa: E731
        parts.append(f'<text x="0" y="{y + 14}">{escape(step)}</text>'
                     f'<line x1="{x(values[0]):.1f}" x2="{x(values[-1]):.1f}" y1="{y + 9}" y2="{y + 9}" stroke="#555"/>'
                     f'<rect x="{x(low):.1f}" y="{y + 2}" width="{max(x(high) - x(low), 1):.1f}" height="14" '
                     'fill="#9bb7e0" stroke="#333"/>'
                     f'<line x1="{x(statistics.median(values)):.1f}" x2="{x(statistics.median(values)):.1f}" '
                     f'y1="{y}" y2="{y + 18}" stroke="#c62828" stroke-width="2"/>')
    parts.append(f'<text x="90" y="{26 * len(steps) + 18}">0 s</text>'
                 f'<text x="450" y="{26 * len(steps) + 18}">{top:.3f} s</text></svg>')
    return "".join(parts)


def _quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def render_html(f: BatchFigures) -> str:
    b = f.batch
    title = f"Batch {b['batch_id']}"
    failures = "".join(
        f'<tr data-row="failure"><td>{escape(step)}</td><td>{escape(reason)}</td>'
        f'<td class="n">{_figure(f"failures:{step}", count)}</td></tr>'
        for (step, reason), count in f.failures.most_common())
    steps = "".join(
        f'<tr><td>{escape(s)}</td><td class="n">{_figure(f"step-count:{s}", len(v))}</td>'
        f'<td class="n">{min(v):.3f}</td><td class="n">{_figure(f"step-median:{s}", f"{statistics.median(v):.3f}")}</td>'
        f'<td class="n">{_quantile(sorted(v), 0.9):.3f}</td><td class="n">{max(v):.3f}</td></tr>'
        for s in STEPS if (v := f.step_times.get(s)))
    operators = "".join(f'<tr><td>{escape(op)}</td><td class="n">{_figure(f"operator:{op}", n)}</td></tr>'
                        for op, n in sorted(f.operators.items()))
    overrides = "".join(f'<tr data-row="override"><td>{escape(o["ts"])}</td><td>{escape(o["supervisor"] or "")}</td>'
                        f'<td>{escape(o["device_id"] or "")}</td><td>{escape(str(o["what"]))}</td></tr>'
                        for o in f.overrides) or '<tr><td colspan="4">none</td></tr>'
    failed_by_step = Counter()
    for (step, _reason), count in f.failures.items():
        failed_by_step[step] += count
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<p>Model {_figure("model", b["model"])}, opened by {_figure("batch-operator", b["operator"] or "?")} at
{escape(b["opened_at"] or "")}, {_figure("status", b["status"])}{escape(" at " + b["closed_at"] if b["closed_at"] else "")};
expected {_figure("expected", b["expected_count"] if b["expected_count"] is not None else "?")} devices.
Station {escape(b["station_id"])}; report written {escape(utc_timestamp())}.</p>

<h2>Yield</h2>
<p class="big">{_figure("yield", f"{f.yield_percent:.1f}%")}</p>
<table><tr><th>devices</th><th>passed</th><th>failed</th><th>not finished</th><th>attempts</th></tr>
<tr><td class="n">{_figure("devices", f.devices)}</td><td class="n pass">{_figure("passed", f.passed)}</td>
<td class="n fail">{_figure("failed", f.failed)}</td><td class="n">{_figure("not-finished", f.other)}</td>
<td class="n">{_figure("attempts", f.attempts)}</td></tr></table>
<p>A device counts once, by its last attempt in this batch; attempts counts every pass and failure.</p>

<h2>Failures by step and reason</h2>
{_bars([(s, float(n)) for s, n in failed_by_step.most_common()], name="failures-by-step")}
<table><tr><th>step</th><th>reason</th><th>attempts</th></tr>{failures or '<tr><td colspan="3">none</td></tr>'}</table>

<h2>Cycle time per step (successful steps, seconds)</h2>
{_boxes(f.step_times)}
<table><tr><th>step</th><th>n</th><th>min</th><th>median</th><th>p90</th><th>max</th></tr>{steps}</table>

<h2>Devices per hour (UTC)</h2>
{_bars([(h.replace("T", " ") + ":00", float(n)) for h, n in sorted(f.per_hour.items())], name="per-hour")}

<h2>Operators and overrides</h2>
<table><tr><th>operator</th><th>devices ended</th></tr>{operators}</table>
<table><tr><th>time</th><th>supervisor</th><th>device</th><th>what</th></tr>{overrides}</table>
<p>Overrides: {_figure("overrides", len(f.overrides))}</p>

<h2>Audit head</h2>
<p>Event {_figure("head-id", f.head[0])} <code>{_figure("head-hash", f.head[1])}</code>; last signed checkpoint
{_figure("last-checkpoint", f.last_checkpoint if f.last_checkpoint is not None else "none")}.
Write the head down off the station: <code>station audit verify --expect-head {f.head[0]}:{escape(f.head[1])}</code>
detects a truncated log.</p>
</body></html>
"""
