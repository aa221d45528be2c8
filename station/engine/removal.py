"""Hotplug removal: a device pulled out of its slot mid-step ends that slot in FAIL with
"device removed during <step>", and only that slot.

A pulled USB cable reaches the station twice: the slot's next read or write fails (EIO: the
port vanished), and a little later the device source reports the removal (`Engine.detach`).
Either may come first. The slot's driver is wrapped so that a link failure on a slot whose
device was reported removed - or is reported removed within `GRACE_S` of a vanished port -
becomes `DeviceRemoved`, named after the pipeline step that was running. `DeviceRemoved` is a
`DeviceDisconnected`, so the pipeline's rules for a lost port hold unchanged (a COMMIT cut
short leaves the certificate `unknown` until the device's next contact; a certificate signed
but not committed is `undelivered`).
"""
from __future__ import annotations

import threading

from station.link.errors import DeviceDisconnected, DeviceLinkError, PortUnavailable

# How long a vanished port waits for the source's removal report before it counts as a plain
# disconnect. udev reports a removal within milliseconds; polling sources within their interval.
GRACE_S = 1.5


class DeviceRemoved(DeviceDisconnected):
    """The device was unplugged from its slot while `step` (a pipeline step) ran."""

    def __init__(self, step: str, *, port: str | None = None):
        DeviceLinkError.__init__(self, f"device removed during {step}", step=step, port=port)
        self.detail = "unplugged"
        self.code = "device-removed"


class _SlotPresence:
    def __init__(self, hotplug: bool):
        self.hotplug = hotplug  # a source reports this slot's removals (not a static port)
        self.removed = threading.Event()
        self.step = "open"


class RemovalWatch:
    """Per slot: is its device still plugged in, and which step is it in."""

    def __init__(self):
        self._lock = threading.Lock()
        self._slots: dict[str, _SlotPresence] = {}

    def attached(self, slot: str, *, hotplug: bool) -> None:
        with self._lock:
            self._slots[slot] = _SlotPresence(hotplug)

    def removed(self, slot: str) -> None:
        with self._lock:
            presence = self._slots.get(slot)
        if presence is not None:
            presence.removed.set()

    def removal_of(self, slot: str) -> threading.Event:
        """Set once the device attached last in `slot` is reported removed (never, for a slot
        no device source watches)."""
        with self._lock:
            presence = self._slots.get(slot)
        return presence.removed if presence is not None else threading.Event()

    def step_started(self, slot: str, step: str) -> None:
        presence = self._slots.get(slot)
        if presence is not None:
            presence.step = step

    @staticmethod
    def was_removed(presence: _SlotPresence, exc: Exception) -> str | None:
        """The step the device was removed in, if `exc` came from its removal."""
        if not presence.hotplug or not isinstance(exc, DeviceLinkError):
            return None
        if presence.removed.is_set():
            return presence.step
        if isinstance(exc, (DeviceDisconnected, PortUnavailable)) and presence.removed.wait(GRACE_S):
            return presence.step
        return None

    def wrap(self, slot: str, driver):
        """`driver` for the device attached last in `slot` (a replug gets its own presence, so
        the old device's late failure is still judged by the old device's removal)."""
        with self._lock:
            return _WatchedDriver(self._slots[slot], driver)


class _WatchedDriver:
    """The slot's driver, its link failures translated by `RemovalWatch.was_removed`."""

    def __init__(self, presence: _SlotPresence, driver):
        self._presence, self._driver = presence, driver

    def __getattr__(self, name: str):
        attr = getattr(self._driver, name)
        if not callable(attr) or name == "close":
            return attr

        def call(*args, **kwargs):
            try:
                return attr(*args, **kwargs)
            except DeviceLinkError as exc:
                step = RemovalWatch.was_removed(self._presence, exc)
                if step is None:
                    raise
                raise DeviceRemoved(step, port=exc.port) from exc
        return call
