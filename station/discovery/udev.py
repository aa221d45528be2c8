"""The udev source: USB serial devices as libudev sees them (pyudev), hotplug through a udev
monitor, or - without a running udev daemon - through periodic enumeration.

Why the fallback: a udev monitor listens for the daemon's processed events; with no udevd
(a container, a minimal system) it receives nothing at all, and a station would silently see
no device. Enumeration still works there, so the source says once that it polls, and polls.
Under umockdev the test bed plays the daemon's part (it sends the events), so it counts as one.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pyudev

from station.config import DiscoveryConfig
from station.discovery.matching import SerialDevice, classify
from station.discovery.source import DeviceSink, DeviceSource, Tracker
from station.errors import EnvironmentProblem

UDEVD_CONTROL = Path("/run/udev/control")  # the daemon's control socket: present while it runs


def udev_daemon_running() -> bool:
    # umockdev-run exports UMOCKDEV_DIR; an in-process Testbed (umockdev-wrapper) sets it in
    # the C environment only, where Python's os.environ does not see it, hence the preload check.
    return (UDEVD_CONTROL.exists() or bool(os.environ.get("UMOCKDEV_DIR"))
            or "umockdev-preload" in os.environ.get("LD_PRELOAD", ""))


def _is_usb_tty(device: pyudev.Device) -> bool:
    props = device.properties
    return props.get("ID_BUS") == "usb" or "ID_USB_DRIVER" in props or "ID_VENDOR_ID" in props


class UdevSource(DeviceSource):
    """`say` receives the one-time notice that the source fell back to polling; `events`
    forces hotplug events on or off (None: on when a udev daemon runs)."""

    def __init__(self, config: DiscoveryConfig, *, say: Callable[[str], None] = lambda message: None,
                 context: pyudev.Context | None = None, events: bool | None = None):
        self.config = config
        self.say = say
        try:
            self.context = context or pyudev.Context()
        except (ImportError, OSError) as exc:  # pyudev raises ImportError when libudev is missing
            raise EnvironmentProblem(f"cannot use libudev to find USB serial devices ({exc})") from None
        self.polling = not (udev_daemon_running() if events is None else events)

    def _describe(self, device: pyudev.Device) -> SerialDevice:
        return classify(dict(device.properties), self.config)

    def present(self) -> list[SerialDevice]:
        found = [self._describe(d) for d in self.context.list_devices(subsystem="tty") if _is_usb_tty(d)]
        return sorted(found, key=lambda d: d.port)

    def watch(self, sink: DeviceSink, stop: threading.Event) -> None:
        tracker = Tracker(sink)
        if self.polling:
            self.say(f"no udev hotplug events (no udev daemon: {UDEVD_CONTROL} is missing): USB serial devices "
                     f"are found by enumerating every {self.config.poll_interval:g} s")
            while not stop.is_set():
                tracker.sync(self.present())
                stop.wait(self.config.poll_interval)
            return
        monitor = pyudev.Monitor.from_netlink(self.context)
        monitor.filter_by("tty")
        monitor.start()  # before enumerating: a device plugged in between is not missed
        tracker.sync(self.present())
        while not stop.is_set():
            device = monitor.poll(timeout=0.2)
            if device is None:
                continue
            if device.action == "remove":
                tracker.removed(device.device_path)
            elif device.action == "add" and _is_usb_tty(device):
                tracker.added(self._describe(device))
