"""Simulated devices on real pseudo-terminals: the station opens each slave path with
pyserial exactly as it opens a USB serial port.

One thread per device, blocked in poll() on the pty master and a stop pipe: no busy
polling, so a line of 16 devices costs nothing while idle. Both directions are paced at the
configured baud rate (10 bits a byte, as on a UART): what the device sends leaves in blocks
on a schedule, and what the station sends is handed to the device only once it would have
arrived over the wire. KEYGEN answers wait the configured key-generation time. So the
station's timeouts meet realistic delays, and the demo's and benchmarks' figures are ones a
real line could reach.
"""
from __future__ import annotations

import errno
import os
import secrets
import select
import threading
import time
import tty
from pathlib import Path

from station.link.codec import LINE_CONFIRM_S, MAX_FRAME, MIN_MTU, KeyType
from station.link.transport import ensure_open_files
from station.sim.device import DEFAULT_BAUDS, Device, Identity, derive_device_id
from station.sim.faults import FaultKind, FaultPlan, FaultSpec
from station.sim.store import DeviceStore

SEED_FILE = "line-seed"
# A device holds the pty master and slave and its stop pipe's two ends open.
DESCRIPTORS_PER_DEVICE = 4
# Bytes written per pacing step: 20 ms worth of the line (230 bytes at 115200 baud), at least
# 64. Each block appears when its last byte would have arrived, never earlier; smaller steps
# cost a wake-up every few ms per device, and a line of a thousand devices in one simulator
# process then spent its time waking threads (answers came late under load).
_PACE_BLOCK = 64
_PACE_STEP_S = 0.02


class _PortServer:
    """One device on one pty, served by one thread until stopped or disconnected."""

    def __init__(self, device: Device, baud: int):
        self.device = device
        self.line_baud = baud  # the rate the device starts at (and reverts to)
        self._set_baud(baud)
        # After LINE's OK: (the rate to revert to, when, whether the UART failed to switch).
        self._switch: tuple[int, float, bool] | None = None
        self._rx_clock = 0.0  # when the last byte read so far has arrived over the wire
        self._master, self._slave = os.openpty()
        # Raw from the start: no echo or CR/LF translation before the station configures it.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name=f"sim-{device.identity.device_id}",
                                        daemon=True)
        self.connected = True
        self._close_lock = threading.Lock()  # the thread (disconnect) and stop() both close

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=10)
        self._close_pty()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def _close_pty(self) -> None:
        # Closing the master makes the station's reads fail with EIO: the port vanished.
        with self._close_lock:
            if self.connected:
                self.connected = False
                os.close(self._master)
                os.close(self._slave)

    def _set_baud(self, baud: int) -> None:
        self.baud = baud
        self._byte_s = 10 / baud  # start bit, 8 data bits, stop bit
        self._block = max(_PACE_BLOCK, int(_PACE_STEP_S / self._byte_s))

    def _poll_timeout_ms(self) -> int | None:
        if self._switch is None:
            return None
        return max(0, int((self._switch[1] - time.monotonic()) * 1000) + 1)

    def _settle_switch(self, heard: bool) -> None:
        """The confirmation window of docs/protocol.md 9.3: a valid frame at the new rate
        keeps it; none before the window closes puts the UART back on the old rate."""
        old, deadline, _ = self._switch
        if heard:
            self._switch = None
        elif time.monotonic() >= deadline:
            self._set_baud(old)
            self._switch = None

    def _serve(self) -> None:
        # We hold the slave open ourselves, so the master never reads EIO while the station
        # has the port closed (that would make select() spin).
        # poll, not select: a line of a few hundred devices has descriptors above
        # FD_SETSIZE (1024), which select() cannot watch.
        poller = select.poll()
        poller.register(self._master, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stop.is_set():
            ready = {fd for fd, _ in poller.poll(self._poll_timeout_ms())}
            if self._wake_r in ready:
                return
            if self._switch is not None and self._master not in ready:
                self._settle_switch(heard=False)
                continue
            try:
                data = os.read(self._master, 4096)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return
                raise
            if not self._arrive(len(data)):
                return
            if self._switch is not None:
                if self._switch[2]:
                    # The UART did not come up at the new rate: what arrives is noise to it.
                    self._settle_switch(heard=False)
                    continue
                frames_before = self.device.frames_read
            computed = time.monotonic()
            answers = self.device.feed(data)
            if self._switch is not None:
                self._settle_switch(heard=self.device.frames_read > frames_before)
            computed = time.monotonic() - computed
            for answer in answers:
                # `keygen_ms` is the device's whole key generation: the simulator's own
                # computing of the key and CSR counts towards it, not on top of it.
                if answer.work_s and self._stop.wait(max(0.0, answer.work_s - computed)):
                    return
                if answer.data and not self._send(answer.data):
                    return
                if answer.then == "disconnect":
                    self._close_pty()
                    return
                if answer.then == "baud":
                    # Switched once the OK is out; the window starts now.
                    deaf = self.device.faults.fire(FaultKind.NO_SWITCH)
                    self._switch = (self.baud, time.monotonic() + LINE_CONFIRM_S, deaf)
                    self._set_baud(answer.baud)

    def _arrive(self, count: int) -> bool:
        """Wait until `count` bytes just read from the pty would have crossed the wire: the
        pty hands the station's frame over at once, a UART at 10 bits a byte. False if the
        server was stopped meanwhile."""
        now = time.monotonic()
        self._rx_clock = max(now, self._rx_clock) + count * self._byte_s
        return not self._stop.wait(self._rx_clock - now)

    def _send(self, data: bytes) -> bool:
        """Put `data` on the line block by block, each block only once its last byte would
        have arrived: the station never sees a byte before its wire time. A schedule, not a
        sleep per block, so the sleeps' own overshoot does not add up. False if stopped."""
        pos = 0
        due = time.monotonic()
        poller = select.poll()
        poller.register(self._master, select.POLLOUT)
        poller.register(self._wake_r, select.POLLIN)
        while pos < len(data):
            block = data[pos:pos + self._block]
            # Late by more than a block (the station stopped reading): do not burst to catch up.
            due = max(due, time.monotonic() - self._block * self._byte_s) + len(block) * self._byte_s
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return False
            while block:
                ready = dict(poller.poll(1000))
                if self._stop.is_set():
                    return False
                if not ready.get(self._master, 0) & select.POLLOUT:
                    continue  # the station is not reading; the pty buffer is full
                try:
                    n = os.write(self._master, block)
                except BlockingIOError:
                    continue
                block = block[n:]
                pos += n
        return True


class SimulatedLine:
    """`count` simulated devices, each on its own pty, their flash under `store` (one folder
    per device id).

        with SimulatedLine(4, tmp_path, keygen_ms=50, faults={2: ["stall@COMMIT"]}) as line:
            serial.Serial(line.ports[0], timeout=1)

    Device i's id derives from the line's seed and i: the same store (its `line-seed` file)
    or the same `seed` gives the same ids, so devices keep their identity and flash across
    restarts. `faults` maps a device index to FaultSpec objects or strings.
    """

    def __init__(self, count: int, store: str | os.PathLike, *, baud: int = 115200,
                 keygen_ms: float = 300, faults: dict[int, list] | None = None,
                 seed: str | None = None, model: str = "SIM-1",
                 key_types: tuple[KeyType, ...] = tuple(KeyType), mtu: int = MAX_FRAME,
                 compact: bool = False, bauds: tuple[int, ...] = DEFAULT_BAUDS):
        if count < 1:
            raise ValueError("a line needs at least one device")
        if baud <= 0 or keygen_ms < 0:
            raise ValueError("baud must be positive and keygen_ms not negative")
        if not MIN_MTU <= mtu <= MAX_FRAME:
            raise ValueError(f"mtu must be {MIN_MTU}..{MAX_FRAME} (docs/protocol.md)")
        faults = faults or {}
        bad = [i for i in faults if not 0 <= i < count]
        if bad:
            raise ValueError(f"fault for device {bad[0]}, but devices are numbered 0..{count - 1}")
        self.store_dir = Path(store)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.seed = seed if seed is not None else self._stored_seed()
        self.baud = baud
        self.devices: list[Device] = []
        for i in range(count):
            identity = Identity(derive_device_id(self.seed, i), model=model)
            plan = FaultPlan([f if isinstance(f, FaultSpec) else FaultSpec.parse(f)
                              for f in faults.get(i, [])])
            self.devices.append(Device(identity, DeviceStore(self.store_dir / identity.device_id),
                                       faults=plan, keygen_s=keygen_ms / 1000,
                                       key_types=key_types, mtu=mtu, compact=compact,
                                       bauds=bauds))
        self._servers: list[_PortServer] = []

    def _stored_seed(self) -> str:
        path = self.store_dir / SEED_FILE
        if not path.exists():
            path.write_text(secrets.token_hex(8) + "\n")
        return path.read_text().strip()

    @property
    def ports(self) -> list[str]:
        return [server.path for server in self._servers]

    def start(self) -> SimulatedLine:
        if not self._servers:
            ensure_open_files(len(self.devices) * DESCRIPTORS_PER_DEVICE)
            self._servers = [_PortServer(device, self.baud) for device in self.devices]
            for server in self._servers:
                server.start()
        return self

    def stop(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.stop()

    def restart(self, index: int) -> str:
        """Power-cycle device `index`: its RAM state is lost, its flash reloaded, and it comes
        back on a new pty (as a replugged USB device gets a new node). Returns the new path."""
        self._servers[index].stop()
        old = self.devices[index]
        old.store.load()
        device = Device(old.identity, old.store, faults=old.faults, keygen_s=old.keygen_s,
                        mtu=old.mtu, key_types=old.key_types, compact=old.compact,
                        xmtu=old.xmtu, bauds=old.bauds)
        self.devices[index] = device
        self._servers[index] = _PortServer(device, self.baud)
        self._servers[index].start()
        return self._servers[index].path

    def __enter__(self) -> SimulatedLine:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
