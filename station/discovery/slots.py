"""The slot map: slot name -> physical USB port (udev ID_PATH), kept in station.toml's
[discovery] slots table. `learn_slots` walks the operator through plugging one device into
each slot in turn; `write_slot_map` stores the result with tomlkit, so the file's comments and
layout survive."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import tomlkit

from station.atomic_file import atomic_output
from station.config import DiscoveryConfig
from station.discovery.matching import SerialDevice, allowlisted
from station.errors import ConfigError, StationError


class SlotNotLearned(StationError):
    """No allowlisted device showed up in a slot in time."""


def write_slot_map(config_path: Path, slots: dict[str, str]) -> None:
    """Replace [discovery] slots in `config_path` (atomically; everything else kept)."""
    try:
        doc = tomlkit.parse(config_path.read_text())
    except (OSError, tomlkit.exceptions.ParseError) as exc:
        raise ConfigError(f"{config_path}: cannot update the slot map ({exc})") from None
    if "discovery" not in doc:
        doc["discovery"] = tomlkit.table()
    table = tomlkit.inline_table()
    table.update(slots)
    doc["discovery"]["slots"] = table
    with atomic_output(config_path, permissions=config_path.stat().st_mode & 0o7777) as out:
        out.write(tomlkit.dumps(doc))


def _candidates(present: list[SerialDevice], config: DiscoveryConfig) -> dict[str, SerialDevice]:
    """Allowlisted devices with a physical port, by port (whatever the current slot map says)."""
    return {d.id_path: d for d in present
            if d.id_path and allowlisted(config, d.vendor_id, d.product_id, d.serial) is None}


def learn_slots(present: Callable[[], list[SerialDevice]], config: DiscoveryConfig, names: list[str], *,
                tell: Callable[[str], None], timeout_s: float = 120.0) -> dict[str, str]:
    """Ask for a device in each slot of `names` in turn and return slot -> ID_PATH. `present`
    lists the devices now (a source's `present`); it is polled, so this works with or without
    a udev daemon. Devices already plugged in when learning starts are not taken."""
    learned: dict[str, str] = {}
    before = set(_candidates(present(), config))
    for name in names:
        tell(f"plug a device into {name} (allowlisted: {', '.join(config.allow) or 'nothing'})")
        deadline = time.monotonic() + timeout_s
        while True:
            new = {p: d for p, d in _candidates(present(), config).items()
                   if p not in before and p not in learned.values()}
            if new:
                id_path, device = sorted(new.items())[0]
                learned[name] = id_path
                tell(f"{name} = {id_path} ({device.port}, {device.usb_id}, serial {device.serial or '-'}); "
                     f"unplug it")
                break
            if time.monotonic() > deadline:
                raise SlotNotLearned(f"no new allowlisted device was plugged into {name} within {timeout_s:g} s")
            time.sleep(config.poll_interval / 4)
        while id_path in _candidates(present(), config):
            if time.monotonic() > deadline + timeout_s:
                raise SlotNotLearned(f"the device in {name} was not unplugged within {timeout_s:g} s")
            time.sleep(config.poll_interval / 4)
    return learned
