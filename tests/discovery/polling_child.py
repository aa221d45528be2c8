"""Run under `umockdev-wrapper` by test_polling.py: the udev source without hotplug events
(as on a machine with no udev daemon) still sees devices come and go, by enumeration.

    umockdev-wrapper python tests/discovery/polling_child.py

Prints one JSON object with the notices and the reports the sink received, in order."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

from station.config import DiscoveryConfig  # noqa: E402
from station.discovery.udev import UdevSource  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
TTY = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/tty/ttyACM0"


class Sink:
    def __init__(self):
        self.reports = []

    def device_attached(self, device):
        self.reports.append(["attached", device.port, device.slot])

    def device_detached(self, device):
        self.reports.append(["detached", device.port, device.slot])


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)


def main() -> None:
    testbed = UMockdev.Testbed.new()
    testbed.add_from_file(str(FIXTURES / "usb-controller.umockdev"))
    testbed.add_from_file(str(FIXTURES / "usb-espressif-slot2.umockdev"))  # present from the start
    config = DiscoveryConfig(allow=("1915:521f", "303a:1001"), poll_interval=0.1,
                             slots={"slot1": "pci-0000:00:14.0-usb-0:1:1.0", "slot2": "pci-0000:00:14.0-usb-0:2:1.0"})
    notices, sink, stop = [], Sink(), threading.Event()
    source = UdevSource(config, say=notices.append, events=False)
    thread = threading.Thread(target=source.watch, args=(sink, stop))
    thread.start()
    wait_for(lambda: len(sink.reports) >= 1)
    testbed.add_from_file(str(FIXTURES / "usb-nordic-slot1.umockdev"))
    wait_for(lambda: len(sink.reports) >= 2)
    testbed.remove_device(TTY)  # no event is sent; only enumeration can notice
    wait_for(lambda: len(sink.reports) >= 3)
    stop.set()
    thread.join()
    print(json.dumps({"notices": notices, "reports": sink.reports}))


if __name__ == "__main__":
    main()
