"""The removal watch on its own: which link failures become "device removed during <step>"."""
from __future__ import annotations

import time

import pytest

from station.engine.removal import DeviceRemoved, RemovalWatch
from station.link.errors import DeviceDisconnected, DeviceTimeout


class _Board:
    """A driver whose port vanished: every call fails as the transport reports it."""

    def __init__(self, exc):
        self.exc = exc

    def write_object(self, kind, data):
        raise self.exc


def _watched(watch, slot, exc, *, hotplug=True):
    watch.attached(slot, hotplug=hotplug)
    watch.step_started(slot, "write")
    return watch.wrap(slot, _Board(exc))


def test_a_pulled_device_fails_with_the_step_it_was_in():
    watch = RemovalWatch()
    driver = _watched(watch, "S1", DeviceTimeout("PUT", 0.5, port="/dev/ttyACM0"))
    watch.removed("S1")
    with pytest.raises(DeviceRemoved, match="^device removed during write$") as err:
        driver.write_object("cert", b"x")
    assert isinstance(err.value, DeviceDisconnected) and err.value.code == "device-removed"


def test_a_replug_does_not_hide_the_old_device_s_removal():
    watch = RemovalWatch()
    old = _watched(watch, "S1", DeviceDisconnected("PUT", port="/dev/ttyACM0"))
    watch.removed("S1")
    watch.attached("S1", hotplug=True)  # the board is back in its slot before the old worker noticed
    start = time.monotonic()
    with pytest.raises(DeviceRemoved):
        old.write_object("cert", b"x")
    assert time.monotonic() - start < 0.5


def test_static_ports_and_other_slots_keep_their_own_reasons():
    watch = RemovalWatch()
    static = _watched(watch, "S1", DeviceDisconnected("PUT", port="/dev/ttyUSB0"), hotplug=False)
    other = _watched(watch, "S2", DeviceTimeout("PUT", 0.5, port="/dev/ttyACM1"))
    watch.removed("S1")
    with pytest.raises(DeviceDisconnected) as err:
        static.write_object("cert", b"x")
    assert not isinstance(err.value, DeviceRemoved)
    with pytest.raises(DeviceTimeout):
        other.write_object("cert", b"x")
