"""QA export of the audit as CSV (one row per device) and JSON Lines (every selected event
with its hash-chain fields); docs/audit.md, "QA export".

Both stream: events come from a cursor ordered by device (CSV) or id (JSONL), and at most one
device's figures are held at a time.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path

from station.atomic_file import atomic_output
from station.audit.export_selection import EVENT_COLUMNS, Selection, reading, selected_events

# The pipeline's steps in the order a device goes through them (station/engine/pipeline.py);
# `lock` only when [line] lock is set.
STEPS = ("identify", "bind", "keygen", "issue", "write", "commit", "prove", "lock")

CSV_COLUMNS = (
    "device_id", "label", "model", "batch_id", "operator", "station_id", "slot", "port",
    "started_at", "ended_at", "duration_s", *(f"{step}_s" for step in STEPS), "result",
    "failure_step", "failure_reason", "failure_code", "certificate_serial", "certificate_sha256",
    "key_spki_sha256", "certificate_status",
)

# A spreadsheet runs a cell that starts with one of these as a formula; a reason text from a
# device must never do that on QA's machine.
_FORMULA_START = ("=", "+", "@", "\t", "\r")


def device_rows(conn, selection: Selection):
    """One dict per device of the selection (CSV_COLUMNS), from its last attempt."""
    events = selected_events(conn, selection, order="device_id, id")
    for device_id, group in itertools.groupby(events, key=lambda e: e["device_id"]):
        if device_id is None:
            continue
        yield _device_row(conn, device_id, group)


def _device_row(conn, device_id: str, events) -> dict:
    row = dict.fromkeys(CSV_COLUMNS, "")
    row["device_id"] = device_id
    serial = None
    for event in events:
        data = json.loads(event["data"])
        kind = event["kind"]
        if kind == "device-identified":
            # A new attempt: the figures of an earlier one (failed, then retried) are replaced.
            for key in ("started_at", "ended_at", "duration_s", "result", "failure_step", "failure_reason",
                        "failure_code", *(f"{step}_s" for step in STEPS)):
                row[key] = ""
            serial = None
            row["started_at"], row["port"] = _attached(conn, event)
        row["started_at"] = row["started_at"] or event["ts"]
        row["ended_at"] = event["ts"]
        for key in ("batch_id", "slot", "station_id"):
            row[key] = event[key] or row[key]
        if event["operator"] and kind not in ("override-approved",):
            row["operator"] = event["operator"]
        if kind in ("device-identified", "device-recorded"):
            row["model"] = data.get("model") or row["model"]
            row["label"] = data.get("label") or row["label"]
        elif kind == "step-finished" and data.get("step") in STEPS:
            row[f"{data['step']}_s"] = _seconds(data.get("duration_s"))
        elif kind == "certificate-reserved":
            serial = data.get("serial")
        elif kind == "device-passed":
            row.update(result="passed", label=data.get("label") or row["label"],
                       duration_s=_seconds(data.get("duration_s")))
            serial = data.get("serial_hex") or serial
        elif kind == "device-failed":
            row.update(result="failed", failure_step=data.get("step", ""), failure_reason=data.get("reason", ""),
                       failure_code=data.get("code") or "", duration_s=_seconds(data.get("duration_s")))
    if not row["result"]:
        state = conn.execute("SELECT state FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        row["result"] = state[0] if state and state[0] in ("interrupted", "in-flight") else "incomplete"
    if serial:
        cert = conn.execute("SELECT fingerprint_sha256, spki_sha256, status FROM certificates WHERE serial = ?",
                            (serial,)).fetchone()
        row["certificate_serial"] = serial
        if cert:
            row["certificate_sha256"], row["key_spki_sha256"], row["certificate_status"] = (c or "" for c in cert)
    return row


def _attached(conn, identified: dict) -> tuple[str, str]:
    """When and on which port the device of this attempt was taken up: `device-attached` is
    logged before the device is known, so it names the slot, not the device."""
    found = conn.execute("SELECT ts, data FROM events WHERE kind = 'device-attached' AND slot = ? AND id < ? "
                         "ORDER BY id DESC LIMIT 1", (identified["slot"], identified["id"])).fetchone()
    if found is None:
        return identified["ts"], ""
    return found[0], json.loads(found[1]).get("port", "")


def _seconds(value) -> str:
    return "" if value is None else f"{float(value):.3f}"


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_csv(db_path: Path, selection: Selection, out_path: Path) -> int:
    """Write the per-device CSV; returns the number of devices."""
    count = 0
    with reading(db_path) as conn, atomic_output(out_path) as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for row in device_rows(conn, selection):
            writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
            count += 1
    return count


def event_line(event: dict) -> str:
    """One event as a JSON line: every column as stored (`data` as its stored text, so the hash
    can be recomputed from the line alone)."""
    return json.dumps({c: event[c] for c in EVENT_COLUMNS}, ensure_ascii=False, separators=(",", ":")) + "\n"


def write_jsonl(db_path: Path, selection: Selection, out_path: Path) -> int:
    """Write every selected event as JSON Lines; returns the number of events."""
    count = 0
    with reading(db_path) as conn, atomic_output(out_path) as out:
        for event in selected_events(conn, selection):
            out.write(event_line(event))
            count += 1
    return count


def csv_text(rows) -> str:
    """CSV of dicts (used for small listings such as the revocations)."""
    rows = list(rows)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in r.items()} for r in rows)
    return buffer.getvalue()
