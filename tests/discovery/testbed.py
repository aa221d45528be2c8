"""An umockdev Testbed with USB serial devices that come and go, for the child processes the
discovery tests run under `umockdev-wrapper` (the Testbed must live in the process whose
libudev it fools). Each device is one fixtures/usb-*.umockdev file, optionally answered by a
reference simulator `Device` on the real pseudo-terminal umockdev makes for its tty node."""
from __future__ import annotations

import atexit
import errno
import os
import select
import shutil
import threading
import time
from pathlib import Path

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402

from station.sim.device import Device  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def new_testbed():
    """A Testbed holding the USB controller every fixture device hangs off."""
    testbed = UMockdev.Testbed.new()
    # The Testbed removes its directory when it is finalised, which a process ending with
    # devices still plugged in and threads around does not always reach.
    atexit.register(shutil.rmtree, testbed.get_root_dir(), True)
    testbed.add_from_file(str(FIXTURES / "usb-controller.umockdev"))
    return testbed


class MockedUsbDevice:
    """A simulated device behind one umockdev fixture: plug() adds it to the Testbed (udev
    `add`) and serves it on the node's pty; unplug() closes the pty and sends `remove`."""

    def __init__(self, testbed, fixture: str, device: Device | None = None):
        self.testbed, self.device = testbed, device
        self.text = (FIXTURES / fixture).read_text()
        first = self.text.split("\n\n", 1)[0].splitlines()
        self.syspath = "/sys" + first[0].removeprefix("P: ")
        self.devnode = "/dev/" + first[1].removeprefix("N: ")
        self.fd: int | None = None
        self._stop = threading.Event()
        self.silent = threading.Event()  # the firmware hangs: input is read and never answered
        self._thread: threading.Thread | None = None

    used_nodes: set[str] = set()  # every node name the Testbed has had

    def plug(self) -> None:
        """Add the device (udev `add`) and, if it has a simulator, serve it on the node's pty."""
        while self.devnode in self.used_nodes:
            self._renumber()
        self.used_nodes.add(self.devnode)
        self.testbed.add_from_string(self.text)
        self.fd = self.testbed.get_dev_fd(self.devnode)
        if self.device is None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _renumber(self) -> None:
        # umockdev 0.17 keeps a removed node's name in its table of ptys, so a replugged device
        # must come back under a new name (ttyACM0 -> ttyACM10), as Linux also does while the
        # old node is still held open. Its physical port (ID_PATH), and so its slot, is the same.
        old = self.devnode.removeprefix("/dev/")
        self.generation = getattr(self, "generation", 9) + 1  # new minors stay clear of the fixtures' 
        new = old.rstrip("0123456789") + str(self.generation)
        major = next(line for line in self.text.splitlines() if line.startswith("E: MAJOR=")).split("=")[1]
        minor = next(line for line in self.text.splitlines() if line.startswith("E: MINOR=")).split("=")[1]
        self.text = (self.text.replace(f"/{old}", f"/{new}").replace(f"N: {old}", f"N: {new}")
                     .replace(f"MINOR={minor}", f"MINOR={self.generation}")
                     .replace(f"dev={major}:{minor}", f"dev={major}:{self.generation}"))
        self.syspath = self.syspath.replace(f"/{old}", f"/{new}")
        self.devnode = f"/dev/{new}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 4096)
            except OSError as exc:
                if exc.errno == errno.EIO:  # the station has not opened the port (yet/again)
                    time.sleep(0.02)
                    continue
                return
            if self.silent.is_set():
                continue
            for answer in self.device.feed(data):
                if answer.work_s and self._stop.wait(answer.work_s):
                    return
                if answer.data:
                    os.write(self.fd, answer.data)

    def unplug(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        os.close(self.fd)  # the station's next read or write fails: the port vanished
        # Deepest first; remove_device alone sends no event (umockdev 0.17).
        self.testbed.uevent(self.syspath, "remove")
        for line in self.text.splitlines():
            if line.startswith("P: "):
                self.testbed.remove_device("/sys" + line[3:])
            elif line.startswith(("N: ", "S: ")):
                # umockdev 0.17 leaves device nodes and symlinks behind, and its map of ptys
                # (pty name -> major:minor): a replug whose new pty reuses the old number
                # aborts on "symlink(majmin, dest) == 0".
                node = Path(self.testbed.get_root_dir(), "dev", line[3:])
                if os.path.lexists(node):
                    node.unlink()
        majmin = next(line[len("A: dev="):] for line in self.text.splitlines() if line.startswith("A: dev="))
        for entry in Path(self.testbed.get_root_dir(), "dev", ".ptymap").iterdir():
            if os.readlink(entry) == majmin:
                entry.unlink()

    def power_cycle(self) -> None:
        """RAM state lost, flash kept (as a replugged board)."""
        old = self.device
        old.store.load()
        self.device = Device(old.identity, old.store, faults=old.faults, keygen_s=old.keygen_s)
