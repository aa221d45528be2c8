"""Feeds the engine from a device source: a device in a slot is attached (hotplug), its
removal detaches it; an ignored device is reported once with its reason and never provisioned."""
from __future__ import annotations

import threading
from collections.abc import Callable

from station.discovery.matching import SerialDevice
from station.discovery.source import DeviceSource


class EngineFeed:
    """A `DeviceSink` for `engine` (anything with `attach(slot, port, hotplug=)` and
    `detach(slot)`). `ignored` receives each ignored device once per appearance."""

    def __init__(self, engine, *, ignored: Callable[[SerialDevice], None] = lambda device: None):
        self.engine = engine
        self.ignored = ignored

    def device_attached(self, device: SerialDevice) -> None:
        if device.slot is None:
            self.ignored(device)
        elif not (self.engine.stopping or self.engine.halted):
            self.engine.attach(device.slot, device.port, hotplug=True)

    def device_detached(self, device: SerialDevice) -> None:
        if device.slot is not None:
            self.engine.detach(device.slot)


def start_feed(source: DeviceSource, engine, stop: threading.Event, **kwargs) -> threading.Thread:
    """Run `source.watch` on its own thread, feeding `engine`, until `stop` is set."""
    thread = threading.Thread(target=source.watch, args=(EngineFeed(engine, **kwargs), stop),
                              name="device-source", daemon=True)
    thread.start()
    return thread
