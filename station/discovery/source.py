"""The device source interface: what the engine's feeder (and `station devices`) need from
whatever finds devices - udev, the configured static ports, or the simulator. The engine and
the UI never learn which source they are fed by."""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Protocol

from station.discovery.matching import SerialDevice


class DeviceSink(Protocol):
    """Receives a source's reports, on the source's thread, in the order they happened."""

    def device_attached(self, device: SerialDevice) -> None: ...
    def device_detached(self, device: SerialDevice) -> None: ...


class DeviceSource(ABC):
    @abstractmethod
    def present(self) -> list[SerialDevice]:
        """Every serial device present now, the ignored ones included (with their reason)."""

    @abstractmethod
    def watch(self, sink: DeviceSink, stop: threading.Event) -> None:
        """Report every device present as attached, then each arrival and removal, until
        `stop` is set. Blocks; run it on its own thread. A device reported detached was
        reported attached before (same `ident`)."""


class Tracker:
    """What a source has reported attached, keyed by `SerialDevice.ident`: turns a fresh list
    of present devices (an enumeration) into the attach/detach reports that differ."""

    def __init__(self, sink: DeviceSink):
        self.sink = sink
        self.known: dict[str, SerialDevice] = {}

    def added(self, device: SerialDevice) -> None:
        if device.ident not in self.known:
            self.known[device.ident] = device
            self.sink.device_attached(device)

    def removed(self, ident: str) -> None:
        device = self.known.pop(ident, None)
        if device is not None:
            self.sink.device_detached(device)

    def sync(self, present: list[SerialDevice]) -> None:
        now = {device.ident: device for device in present}
        for ident in [i for i in self.known if i not in now]:
            self.removed(ident)
        for device in present:
            self.added(device)
