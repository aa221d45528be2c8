"""The simulator source: simulated devices on pseudo-terminals, plugged into and pulled out of
slots on command (the demo, the UI's development mode, tests). Pulling a device closes its pty,
so the station's reads fail exactly as when a USB cable is pulled, and the source then reports
the removal - the same order of events a real unplug gives."""
from __future__ import annotations

import queue
import threading

from station.discovery.matching import SerialDevice
from station.discovery.source import DeviceSink, DeviceSource, Tracker
from station.sim import SimulatedLine


class SimulatorSource(DeviceSource):
    """Device i of `line` sits in slot `slots[i]` (default S1, S2, ...; None: a port that is no
    slot, so the device is ignored). `plug(i)` starts it (a replug comes back on a new pty with
    its flash kept), `unplug(i)` pulls it out."""

    def __init__(self, line: SimulatedLine, slots: list[str | None] | None = None, *, plugged: bool = True):
        self.line = line
        self.slots = slots or [f"S{i + 1}" for i in range(len(line.devices))]
        self._plugged: dict[int, str] = {}  # index -> pty path while plugged
        self._events: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        if plugged:
            line.start()
            for i, port in enumerate(line.ports):
                self._plugged[i] = port

    def _device(self, index: int, port: str) -> SerialDevice:
        slot = self.slots[index]
        return SerialDevice(port=port, key=f"sim-{index}-{port}", slot=slot,
                            serial=self.line.devices[index].identity.device_id,
                            ignored=None if slot else "no slot")

    def present(self) -> list[SerialDevice]:
        with self._lock:
            return [self._device(i, port) for i, port in sorted(self._plugged.items())]

    def plug(self, index: int) -> str:
        with self._lock:
            if index in self._plugged:
                return self._plugged[index]
            self.line.start()
            port = self._plugged[index] = self.line.ports[index]
            self._events.put(None)
            return port

    def unplug(self, index: int) -> None:
        with self._lock:
            if self._plugged.pop(index, None) is not None:
                # The old pty closes (the station's reads fail); the device waits, flash kept,
                # on a new pty that no one is told of until plug().
                self.line.restart(index)
                self._events.put(None)

    def watch(self, sink: DeviceSink, stop: threading.Event) -> None:
        tracker = Tracker(sink)
        while not stop.is_set():
            tracker.sync(self.present())
            try:
                self._events.get(timeout=0.1)
            except queue.Empty:
                pass
