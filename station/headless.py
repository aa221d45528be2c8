"""Running the line without a UI: a printer for engine events and the batch runner that the
`station run --headless` and `station demo --headless` commands share."""
from __future__ import annotations

import json
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from station.boot import open_station
from station.config import StationConfig
from station.engine.batch import Batch, Manifest
from station.errors import StationError
from station.drivers.registry import line_options
from station.engine.engine import Engine
from station.engine.events import DeviceFailed, DevicePassed, Event, IssuanceHalted
from station.link.transport import DESCRIPTORS_PER_PORT, ensure_open_files
from station.text import printable


@contextmanager
def _stop_on_signals(engine: Engine):
    """SIGINT/SIGTERM stop the line gently (devices in flight finish, nothing new starts);
    a second signal is not special: the in-flight devices still finish."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        print(f"STOP {signal.Signals(signum).name}: finishing the devices in flight", flush=True)
        engine.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class HeadlessPrinter:
    """One line per device (PASS/FAIL), one per halt; thread-safe."""

    def __init__(self, out: TextIO = sys.stdout):
        self.out = out
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        if isinstance(event, DevicePassed):
            line = (f"PASS slot={event.slot} device={event.device_id} label={event.label} "
                    f"serial={event.serial_hex} time={event.duration_s:.2f}s")
        elif isinstance(event, DeviceFailed):
            line = (f"FAIL slot={event.slot} device={event.device_id or '-'} step={event.step} "
                    f"reason={event.reason}")
        elif isinstance(event, IssuanceHalted):
            line = f"HALT {event.reason}"
        elif getattr(event, "kind", None) == "device-ignored":  # station.discovery.feed.DeviceIgnored
            line = f"IGNORED port={event.port} reason={event.reason}"
        else:
            return
        with self._lock:
            # Device ids, labels and reasons come from devices and manifests: never raw.
            print(printable(line), file=self.out, flush=True)


@dataclass
class RunSummary:
    batch_id: str
    passed: int
    failed: int
    database: str
    elapsed_s: float
    halted: str | None = None
    stopped: bool = False
    audit_head: str = ""  # "ID:HASH" of the newest audit event when the run ended

    @property
    def devices_per_hour(self) -> float:
        done = self.passed + self.failed
        return round(done * 3600 / self.elapsed_s, 1) if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        text = (f"batch {self.batch_id}: {self.passed} passed, {self.failed} failed in {self.elapsed_s:.1f} s "
                f"({self.devices_per_hour:g} devices/h); audit {self.database}")
        text += f"; head {self.audit_head}" if self.audit_head else ""
        text += "; STOPPED before the end" if self.stopped else ""
        return printable(text + (f"; HALTED: {self.halted}" if self.halted else ""))

    def json(self) -> str:
        return json.dumps({"batch_id": self.batch_id, "passed": self.passed, "failed": self.failed,
                           "database": self.database, "devices_per_hour": self.devices_per_hour,
                           "elapsed_s": round(self.elapsed_s, 3), "halted": self.halted,
                           "stopped": self.stopped, "audit_head": self.audit_head}, sort_keys=True)


def run_batch(cfg: StationConfig, *, batch_id: str, model: str, operator: str, slots: dict[str, list[str]],
              manifest: Path | None = None, expected: int | None = None, driver_opts: dict | None = None,
              supervisor_override: str | None = None, out: TextIO = sys.stdout,
              observers: tuple = (), source=None) -> RunSummary:
    """Provision every port in `slots` (slot -> the ports of the devices it will see, in order)
    and, with a device `source` (station.discovery: udev, static, simulator), every device it
    reports in a slot, until the batch's expected count has passed or a signal stops the line.
    `observers` are subscribed to the engine's events beside the printer (a benchmark's
    counters)."""
    batch = Batch(batch_id=batch_id, model=model, operator=operator, expected=expected,
                  manifest=Manifest.load(manifest) if manifest else None)
    start = time.monotonic()
    # Each slot holds one port open (a discovered line: one per configured slot).
    ensure_open_files(max(len(slots), len(cfg.discovery.slots) if source is not None else 0) * DESCRIPTORS_PER_PORT)
    with open_station(cfg) as station:
        opts = {**line_options(cfg.line), **(driver_opts or {})}
        engine = Engine(station, batch, cfg.line, driver_opts=opts, standing_override=supervisor_override)
        engine.bus.subscribe(HeadlessPrinter(out))
        for observer in observers:
            engine.bus.subscribe(observer)
        engine.start()
        with _stop_on_signals(engine):
            for slot, ports in slots.items():
                engine.run_slot_queue(slot, ports)
            if source is not None:
                from station.discovery.feed import feed_until_done

                feed_until_done(engine, source)
            engine.finish()
        try:
            head_id, head_hash = station.audit.head()
            head = f"{head_id}:{head_hash}"
        except StationError:
            head = ""  # the database is what failed; the HALT line says why
        return RunSummary(batch_id=batch_id, passed=batch.passed, failed=batch.failed,
                          database=str(cfg.audit.database), elapsed_s=time.monotonic() - start,
                          halted=engine.halted, stopped=engine.stopping, audit_head=head)
