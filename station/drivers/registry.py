"""Device families by name: the engine opens a driver with `open_driver(family, port)`.

Adding a family is one module in this package and one line in `_FAMILIES`. Modules are
imported on first use, so a family's dependencies load only where that family is used.
"""
from __future__ import annotations

import importlib

from station.drivers.base import DeviceDriver
from station.errors import ConfigError

# family name -> "module:class". The class has a classmethod `open(port, **opts)`.
_FAMILIES: dict[str, str] = {
    "cip": "station.drivers.cip:CipDriver",  # docs/protocol.md
}


class UnknownDeviceFamily(ConfigError):
    def __init__(self, family: str):
        known = ", ".join(families()) or "none"
        super().__init__(f"unknown device family {family!r} (known: {known})")
        self.family = family


def families() -> list[str]:
    """The family names `open_driver` accepts, sorted."""
    return sorted(_FAMILIES)


def line_options(line) -> dict:
    """The driver options a line's configuration (`station.config.LineConfig`) sets: the same
    for the headless runner and the operator terminal, so both speak to a device alike."""
    return {"timeout_scale": line.timeout_scale, "baudrate": line.baud, "compact": line.compact,
            "fast_baud": line.fast_baud, "chain_root": line.chain_root}


def open_driver(family: str, port: str, **opts) -> DeviceDriver:
    """Open `port` (a path or a pyserial URL) with the driver for `family`.

    `opts` go to the driver's `open` (timeouts, frame limit, ...; see the driver module).
    Raises UnknownDeviceFamily for a name not in `families()`, and the link errors of
    `station.link.errors` (PortUnavailable when the port cannot be opened).
    The returned driver belongs to the caller's thread; close it when done.
    """
    try:
        target = _FAMILIES[family]
    except KeyError:
        raise UnknownDeviceFamily(family) from None
    module_name, _, class_name = target.partition(":")
    driver_class = getattr(importlib.import_module(module_name), class_name)
    return driver_class.open(port, **opts)
