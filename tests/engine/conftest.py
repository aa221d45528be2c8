"""Engine tests: the session's token and CA, a fresh audit database per test, and simulated
devices on real pseudo-terminals opened through pyserial."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from station.sim import SimulatedLine

# Protocol timeouts scaled down so that stalls and silences end quickly; the simulator's
# key generation (20 ms) stays far inside the scaled KEYGEN budget.
TIMEOUT_SCALE = 0.25
MODEL = "SIM-1"


@pytest.fixture
def engine_config(station_config, tmp_path):
    audit = dataclasses.replace(station_config.audit, database=tmp_path / "audit.db")
    line = dataclasses.replace(station_config.line, timeout_scale=TIMEOUT_SCALE)
    return dataclasses.replace(station_config, audit=audit, line=line)


def write_manifest(path: Path, line: SimulatedLine) -> Path:
    path.write_text("device_id,label\n" + "".join(
        f"{d.identity.device_id},L-{d.identity.device_id[-6:]}\n" for d in line.devices))
    return path


def slots_for(ports: list[str], slots: int) -> dict[str, list[str]]:
    by_slot: dict[str, list[str]] = {}
    for i, port in enumerate(ports):
        by_slot.setdefault(f"S{i % slots + 1}", []).append(port)
    return by_slot
