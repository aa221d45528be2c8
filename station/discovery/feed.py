"""Feeds the engine from a device source: a device in a slot is attached (hotplug), its
removal detaches it; an ignored device is published once per appearance (`DeviceIgnored` on
the engine's bus, for the printer and the UI; not an audit event: it never reached the station)
and never provisioned."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from station.discovery.matching import SerialDevice
from station.discovery.source import DeviceSource
from station.engine.events import Event


@dataclass(frozen=True)
class DeviceIgnored(Event):
    kind: ClassVar[str] = "device-ignored"
    port: str
    physical_port: str | None
    usb_id: str | None
    reason: str


class EngineFeed:
    """A `DeviceSink` for `engine` (anything with `attach(slot, port, hotplug=)`, `detach(slot)`
    and a `bus`). `ignored` also receives each ignored device."""

    def __init__(self, engine, *, ignored: Callable[[SerialDevice], None] = lambda device: None):
        self.engine = engine
        self.ignored = ignored

    def device_attached(self, device: SerialDevice) -> None:
        if device.slot is None:
            self.engine.bus.publish(DeviceIgnored(port=device.port, physical_port=device.id_path,
                                                  usb_id=device.usb_id, reason=device.ignored or "no slot"))
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


def feed_until_done(engine, source: DeviceSource, *, poll_s: float = 0.1) -> None:
    """A hotplug run: provision devices as `source` reports them in slots, until the batch's
    expected count has passed (earlier runs of the batch included), a signal stops the line
    (`engine.stop()`), or issuance halts. Without an expected count only a stop ends it. The
    caller then calls `engine.finish()`, which waits for the devices in flight."""
    stop = threading.Event()
    feeder = start_feed(source, engine, stop)
    batch = engine.batch

    def done() -> bool:
        return batch.expected is not None and batch.passed_before + batch.passed >= batch.expected
    try:
        while not (engine.stopping or engine.halted or done()):
            time.sleep(poll_s)  # the main thread stays free for the signal handlers that stop the line
    finally:
        stop.set()
        feeder.join(timeout=5)
