"""`station demo`: the whole product on embedded defaults (headless here; the operator UI's
demo is station/ui/launch.py on the same station).

Creates a development station in the work directory if there is none, starts N simulated
devices on pseudo-terminals (their flash kept in DIR/devices/), writes a manifest for them,
and runs one batch through S slots. Each run adds N new devices (a fresh batch and fresh
device ids), so the demo can be run again and again in the same directory.
"""
from __future__ import annotations

import datetime as dt
import secrets
import sys
from pathlib import Path
from typing import TextIO

from station.config import StationConfig, load_config
from station.engine.batch import Manifest
from station.headless import RunSummary, run_batch
from station.sim import SimulatedLine
from station.text import printable
from station.workdir import init_station

DEMO_MODEL = "SIM-1"


def prepare_demo(workdir: Path, *, say=print) -> StationConfig:
    """The demo's station: created in `workdir` on first use (the operator UI demo uses it too)."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "station.toml"
    if not config_path.exists():
        say(f"creating a development station in {printable(str(workdir))}")
        init_station(workdir, station_id="demo-station")
    return load_config(config_path)


def run_demo(workdir: Path, *, devices: int, slots: int, keygen_ms: int = 300, baud: int = 115200,
             out: TextIO = sys.stdout, say=print) -> RunSummary:
    workdir = Path(workdir).resolve()
    cfg = prepare_demo(workdir, say=say)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    batch_id = f"DEMO-{stamp}-{secrets.token_hex(2)}"
    with SimulatedLine(devices, store=workdir / "devices", baud=baud, keygen_ms=keygen_ms,
                       seed=batch_id, model=DEMO_MODEL) as line:
        manifest = workdir / "manifests" / f"{batch_id}.csv"
        manifest.parent.mkdir(exist_ok=True)
        Manifest.write(manifest, ((d.identity.device_id, f"LBL-{batch_id[-4:]}-{i:04d}")
                                  for i, d in enumerate(line.devices, start=1)))
        by_slot: dict[str, list[str]] = {}
        for i, port in enumerate(line.ports):
            by_slot.setdefault(f"S{i % slots + 1}", []).append(port)
        say(f"batch {batch_id}: {devices} simulated devices in {len(by_slot)} slots")
        return run_batch(cfg, batch_id=batch_id, model=DEMO_MODEL, operator="demo", slots=by_slot,
                         manifest=manifest, expected=devices, out=out)
