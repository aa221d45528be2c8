"""Where devices come from in the operator terminal: a device appears in a fixture slot, is
provisioned, stays there showing its result until it is taken out, and the slot is empty
again. Two sources share that life cycle (`SlotFeeder`):

- `SimulatedFixture` (the demo): simulated devices on pseudo-terminals, plugged into the slots
  one after another, one of them with a fault so a FAIL is seen too;
- `PortWatcher` (a configured station): the [line] ports; a port whose node appears holds a
  device (a USB serial adapter's by-path link exists only while plugged in), until its node
  goes away. A pyserial URL is always present: one device per batch.

A device refused because it is already provisioned waits in its slot for a supervisor
(`approved`); once approved it is provisioned again on the same port.
"""
from __future__ import annotations

import datetime as dt
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from station.engine.events import DeviceFailed, Event
from station.operator.events import SlotEmptied
from station.operator.model import OVERRIDABLE

DEMO_MODEL = "SIM-1"
DEMO_FAULT = "weak-key"  # a device whose key the policy refuses: FAIL at issue, nothing signed


@dataclass(frozen=True)
class BatchPlan:
    batch_id: str
    model: str
    manifest: Path | None
    expected: int | None


class SlotFeeder:
    """One thread per slot: attach the slot's next device, wait for its end, let it be taken
    out. `ports_for(slot)` yields the ports of the devices that slot will see."""

    HOLD_S = 1.5  # a finished device stays in its slot this long (the operator takes it out)
    GAP_S = 0.5  # an empty slot stays empty this long (the operator puts the next one in)
    OVERRIDE_WAIT_S = 120.0  # a device waiting for a supervisor is taken out after this

    def __init__(self, slots: list[str], *, hold_s: float | None = None, gap_s: float | None = None):
        self.slots = list(slots)
        self.hold_s = self.HOLD_S if hold_s is None else hold_s
        self.gap_s = self.GAP_S if gap_s is None else gap_s
        self._stop = threading.Event()
        self._approved: dict[str, threading.Event] = {s: threading.Event() for s in self.slots}
        self._last_failure: dict[str, str] = {}
        self._threads: list[threading.Thread] = []
        self.engine = None
        self.publish: Callable[[Event], None] = lambda event: None

    # what a source defines
    def plan(self, work_order: str, cfg) -> BatchPlan:
        raise NotImplementedError

    def ports_for(self, slot: str):
        raise NotImplementedError

    def present(self, port: str) -> bool:
        return True

    # the life cycle
    def start(self, engine, publish: Callable[[Event], None], on_done: Callable[[], None]) -> None:
        self.engine, self.publish = engine, publish
        self._stop.clear()
        engine.bus.subscribe(self._watch)
        self._threads = [threading.Thread(target=self._feed, args=(slot,), name=f"fixture-{slot}", daemon=True)
                         for slot in self.slots]
        for thread in self._threads:
            thread.start()
        threading.Thread(target=self._join, args=(on_done,), name="fixture-done", daemon=True).start()

    def _join(self, on_done) -> None:
        for thread in self._threads:
            thread.join()
        if not self._stop.is_set():
            on_done()

    def stop(self) -> None:
        self._stop.set()
        for event in self._approved.values():
            event.set()

    def approved(self, slot: str) -> None:
        """A supervisor approved re-provisioning the device waiting in `slot`."""
        self._approved[slot].set()

    def _watch(self, event: Event) -> None:
        if isinstance(event, DeviceFailed):
            self._last_failure[event.slot] = event.code

    def _feed(self, slot: str) -> None:
        for port in self.ports_for(slot):
            while not self.present(port):
                if self._stop.wait(0.25):
                    return
            if self._stop.is_set() or self.engine.halted:
                return
            self._last_failure.pop(slot, None)
            self._approved[slot].clear()
            self.engine.attach(slot, port).join()
            if self._last_failure.get(slot) == OVERRIDABLE and self.engine.line.reprovision == "supervisor":
                if self._approved[slot].wait(self.OVERRIDE_WAIT_S) and not self._stop.is_set():
                    self.engine.attach(slot, port).join()
            if self._stop.wait(self.hold_s):
                return
            self.publish(SlotEmptied(slot=slot))
            if self._stop.wait(self.gap_s):
                return

    def close(self) -> None:
        self.stop()


class SimulatedFixture(SlotFeeder):
    """The demo's fixture: `devices` simulated devices per batch, dealt to the slots in turn;
    device number `faulty` (if any) has a fault the policy refuses."""

    def __init__(self, workdir: Path, slots: int = 8, devices: int = 16, *, keygen_ms: int = 300,
                 baud: int = 115200, faulty: int | None = 3, hold_s: float | None = None,
                 gap_s: float | None = None):
        super().__init__([f"S{i}" for i in range(1, slots + 1)], hold_s=hold_s, gap_s=gap_s)
        self.workdir = Path(workdir)
        self.devices, self.keygen_ms, self.baud = devices, keygen_ms, baud
        self.faulty = faulty if faulty is not None and faulty < devices else None
        self.line = None
        self._by_slot: dict[str, list[str]] = {}

    def plan(self, work_order: str, cfg) -> BatchPlan:
        from station.sim import SimulatedLine

        self.close_line()
        # Every demo batch is new devices: the work order scanned plus a stamp keeps ids and
        # batch ids fresh when WO-1 is scanned again in the same work directory.
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%y%m%d-%H%M%S")
        batch_id = f"{work_order}-{stamp}"
        lot = secrets.token_hex(3)  # labels are unique for good: a random lot per batch
        faults = {self.faulty: [DEMO_FAULT]} if self.faulty is not None else None
        self.line = SimulatedLine(self.devices, store=self.workdir / "devices", baud=self.baud,
                                  keygen_ms=self.keygen_ms, seed=batch_id, model=DEMO_MODEL, faults=faults).start()
        manifest = self.workdir / "manifests" / f"{batch_id}.csv"
        manifest.parent.mkdir(exist_ok=True)
        manifest.write_text("device_id,label\n" + "".join(
            f"{d.identity.device_id},LBL-{lot}-{i:04d}\n" for i, d in enumerate(self.line.devices, start=1)))
        self._by_slot = {slot: [] for slot in self.slots}
        for i, port in enumerate(self.line.ports):
            self._by_slot[self.slots[i % len(self.slots)]].append(port)
        return BatchPlan(batch_id=batch_id, model=DEMO_MODEL, manifest=manifest, expected=self.devices)

    def ports_for(self, slot: str):
        return list(self._by_slot.get(slot, []))

    def close_line(self) -> None:
        if self.line is not None:
            self.line.stop()
            self.line = None

    def close(self) -> None:
        super().close()
        self.close_line()


class PortWatcher(SlotFeeder):
    """The configured [line] ports: a device is in a slot while its port's node exists."""

    POLL_S = 0.25

    def __init__(self, ports: dict[str, str], *, hold_s: float | None = None, gap_s: float | None = None):
        super().__init__(list(ports), hold_s=hold_s, gap_s=gap_s)
        self.ports = dict(ports)
        self._once: dict[str, bool] = {}

    def plan(self, work_order: str, cfg) -> BatchPlan:
        from station.errors import UsageError

        if not cfg.line.model:
            raise UsageError("no model: set [line] model in the configuration")
        manifest = None
        if cfg.ui.manifests is not None:
            candidate = cfg.ui.manifests / f"{work_order}.csv"
            manifest = candidate if candidate.exists() else None
        if manifest is None and cfg.line.label_source == "manifest":
            where = cfg.ui.manifests or "([ui] manifests is not set)"
            raise UsageError(f"no manifest {work_order}.csv in {where}")
        return BatchPlan(batch_id=work_order, model=cfg.line.model, manifest=manifest, expected=None)

    def present(self, port: str) -> bool:
        return "://" in port or os.path.exists(port)

    def ports_for(self, slot: str):
        port = self.ports[slot]
        while not self._stop.is_set():
            yield port
            if "://" in port:
                return  # a URL never goes away: one device per batch
            while os.path.exists(port) and not self._stop.is_set():
                self._stop.wait(self.POLL_S)  # the device is still plugged in
