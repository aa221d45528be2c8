"""Every issue-10 benchmark in one run, each through the real `station bench` command, with a
table of the figures against the targets (docs/performance.md records its output).

    .venv/bin/python tools/bench_line_targets.py            # about 3-4 minutes on 2 cores
    .venv/bin/python tools/bench_line_targets.py --json     # the raw figures as one JSON object

Each benchmark runs in its own `station` process, one after the other, so they do not share the
machine with each other; the load average before each is recorded, because on a shared machine
it is the first thing that moves the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

STATION = [sys.executable, "-m", "station"]
ROOT = Path(__file__).resolve().parents[1]

# name -> (bench arguments, what it is for)
RUNS = {
    "line_16": (["line", "--slots", "16", "--devices", "64"], "version 1, 115200 baud, 300 ms keygen, 16 slots"),
    "line_16_compact": (["line", "--slots", "16", "--devices", "64", "--compact"],
                        "compact extension, 115200 baud, 300 ms keygen, 16 slots"),
    "line_64": (["line", "--slots", "64", "--devices", "256"], "version 1, 115200 baud, 300 ms keygen, 64 slots"),
    "line_64_compact": (["line", "--slots", "64", "--devices", "256", "--compact"],
                        "compact extension, 115200 baud, 300 ms keygen, 64 slots"),
    "fast_compact": (["line", "--slots", "16", "--devices", "64", "--compact", "--fast-baud", "921600"],
                     "compact extension switched to 921600 baud, 300 ms keygen, 16 slots"),
    "alone": (["line", "--slots", "16", "--devices", "512", "--baud", "4000000", "--keygen-ms", "0"],
              "station alone: fast line, no key generation"),
    "line_1000": (["line", "--slots", "256", "--devices", "1000"], "1,000 devices through 256 slots"),
    "audit_write": (["audit-write"], "durable audit events, 16 writers"),
    "audit_verify": (["audit", "--events", "200000"], "audit verify on 200,000 events"),
    "issue": (["issue"], "full issuances per process"),
}


def run(args: list[str]) -> dict:
    out = subprocess.run([*STATION, "bench", *args, "--json"], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"station bench {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(figures: dict) -> str:
    v1, compact, fast, alone = figures["line_16"], figures["line_16_compact"], figures["fast_compact"], figures["alone"]
    v1_64, compact_64 = figures["line_64"], figures["line_64_compact"]
    big, write, verify, issue = (figures["line_1000"], figures["audit_write"], figures["audit_verify"],
                                 figures["issue"])

    def both(key: str, fmt: str = "{:.3f}") -> str:
        return f"v1 {fmt.format(v1[key])}, compact {fmt.format(compact[key])}"

    wire = compact["bytes_to_device"] + compact["bytes_from_device"]
    rows = [
        ("efficiency >= 0.95, 16 slots", both("efficiency"), max(v1["efficiency"], compact["efficiency"]) >= 0.95),
        ("efficiency >= 0.90, 64 slots", f"v1 {v1_64['efficiency']:.3f}, compact {compact_64['efficiency']:.3f}",
         max(v1_64["efficiency"], compact_64["efficiency"]) >= 0.90),
        ("station-added p99 <= 50 ms, 16 slots",
         f"p50 / p99: v1 {v1['station_added_ms_p50']} / {v1['station_added_ms_p99']} ms, "
         f"compact {compact['station_added_ms_p50']} / {compact['station_added_ms_p99']} ms",
         min(v1["station_added_ms_p99"], compact["station_added_ms_p99"]) <= 50),
        ("station alone >= 100 devices/s", f"{alone['devices_per_s']}", alone["devices_per_s"] >= 100),
        ("station CPU <= 8 ms a device (alone)", f"{alone['cpu_ms_per_device']} ms", alone["cpu_ms_per_device"] <= 8),
        ("1,000 devices through 256 slots all pass", f"{big['passed']} passed, {big['failed']} failed",
         big["passed"] == 1000),
        (">= 20,000 durable audit events/s, 16 writers", f"{write['durable_events_per_s']:,.0f}",
         write["durable_events_per_s"] >= 20000),
        ("audit verify >= 200,000 events/s", f"{verify['verify_events_per_s']:,.0f}",
         verify["verify_events_per_s"] >= 200000),
        ("bench issue >= 2,000 full issuances/s", f"{issue['issuances_per_s']:,.0f}", issue["issuances_per_s"] >= 2000),
        ("wire bytes a device <= 2,500 (compact, 115200)", f"{wire:,.0f} (v1: "
         f"{v1['bytes_to_device'] + v1['bytes_from_device']:,.0f})", wire <= 2500),
        ("fast line: key generation >= 90% of a device's time (compact, 921600)",
         f"{fast['keygen_share']:.2f} measured, {fast['keygen_share_of_bound']:.2f} of the bound",
         fast["keygen_share"] >= 0.90),
    ]
    lines = ["| target | measured | met? |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {'yes' if met else 'no'} |" for name, value, met in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    options = parser.parse_args()
    figures: dict = {"machine": f"{platform.machine()} {os.cpu_count()} cores, CPython {platform.python_version()}, "
                                f"Linux {platform.release()}",
                     "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for name, (args, what) in RUNS.items():
        load = round(os.getloadavg()[0], 2)
        print(f"{name}: {what} (load {load})", file=sys.stderr, flush=True)
        figures[name] = run(args) | {"load_before": load}
    print(json.dumps(figures) if options.json else table(figures) + "\n\nload average before each: " + ", ".join(
        f"{name} {figures[name]['load_before']}" for name in RUNS))


if __name__ == "__main__":
    main()
