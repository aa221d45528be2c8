"""The static source: slots and ports written in the configuration ([line] ports, or --port),
for machines without udev and for pyserial URLs (socket://, rfc2217://). No hotplug: every
configured port is reported attached once, whether or not a device answers on it."""
from __future__ import annotations

import threading

from station.discovery.matching import SerialDevice
from station.discovery.source import DeviceSink, DeviceSource


class StaticSource(DeviceSource):
    def __init__(self, ports: dict[str, str]):
        self.ports = dict(ports)

    def present(self) -> list[SerialDevice]:
        return [SerialDevice(port=port, slot=slot) for slot, port in self.ports.items()]

    def watch(self, sink: DeviceSink, stop: threading.Event) -> None:
        for device in self.present():
            sink.device_attached(device)
        stop.wait()
