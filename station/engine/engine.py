"""The engine: runs every fixture slot concurrently, owns the batch, publishes events and takes
commands (bind a label, approve an override, stop).

Threads: one worker per busy slot does that slot's serial I/O; PKCS#11 calls serialise on
the token lock inside the CA; the audit database serialises its own writes. Events are
published on the worker's thread, in order per slot: the audit writer first (synchronously,
so a failed audit write stops the line), then the bus.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from station.config import LineConfig
from station.drivers.registry import open_driver
from station.engine.anchors import load_anchors
from station.engine.audit_writer import AuditWriter
from station.engine.batch import Batch
from station.engine.bus import EventBus
from station.engine.events import (BatchCounterChanged, BatchFinished, BatchStarted, DeviceAttached, DeviceFailed,
                                   DevicePassed, Event, IssuanceHalted, SlotStateChanged, StepStarted)
from station.engine.pipeline import DevicePipeline, Outcome, StepFailed
from station.engine.removal import DeviceRemoved, RemovalWatch
from station.errors import PolicyRefusal, StationError
from station.identifiers import LABEL


@dataclass
class _SlotCommands:
    """Commands waiting for a slot's worker (a scanned label, a supervisor's approval)."""

    label: str | None = None
    override: str | None = None
    changed: threading.Condition = field(default_factory=threading.Condition)


class Engine:
    LABEL_WAIT_S = 300.0  # how long a slot waits for its label to be scanned

    def __init__(self, station, batch: Batch, line: LineConfig, *, bus: EventBus | None = None,
                 driver_opts: dict | None = None, standing_override: str | None = None):
        self.station = station
        self.batch = batch
        self.line = line
        self.bus = bus or EventBus()
        self.driver_opts = dict(driver_opts or {})
        # A supervisor id given up front (scripted runs) approves every re-provisioning this
        # run meets; each use is still logged per device as an OverrideApproved event.
        self.standing_override = standing_override
        self._audit_writer = AuditWriter(station.audit, batch.batch_id, batch.operator)
        self._emit_lock = threading.Lock()
        self._halted: str | None = None
        self._stopping = threading.Event()
        self._commands: dict[str, _SlotCommands] = {}
        self._labels: dict[str, str] = {}  # label -> device id, for this run
        self._devices: dict[str, str] = {}  # device id -> slot, while its pipeline runs
        # Read once, before any device: a bad bundle stops the start, not a device mid-batch.
        self.anchors = load_anchors(line.anchors) if line.anchors else None
        self._threads: list[threading.Thread] = []
        self._presence = RemovalWatch()  # hotplug: which slot's device was pulled out, mid-which step
        self._lock = threading.Lock()
        self.outcomes: list[Outcome] = []

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> dict:
        """Recover from an earlier crash, open (or resume) the batch. Returns what recovery did."""
        audit = self.station.audit
        recovered = audit.recover_after_crash()
        manifest = self.batch.manifest
        audit.record_operator_login(self.batch.operator)
        audit.open_batch(self.batch.batch_id, model=self.batch.model, operator=self.batch.operator,
                         expected_count=self.batch.expected, manifest_sha256=manifest.sha256 if manifest else None)
        self.batch.passed_before = audit.devices_passed_in_batch(self.batch.batch_id)
        self.emit(BatchStarted(batch_id=self.batch.batch_id, model=self.batch.model, operator=self.batch.operator,
                               expected=self.batch.expected))
        return recovered

    def finish(self, *, close_batch: bool = True) -> None:
        """Wait for every slot, then close the batch (a signed checkpoint is written). A halted
        engine leaves the batch open (it can be resumed) and still reports the end."""
        self.wait()
        event = BatchFinished(batch_id=self.batch.batch_id, passed=self.batch.passed, failed=self.batch.failed)
        if self._halted is None:
            try:
                if close_batch and not self.stopping:  # a stopped batch stays open to resume
                    self.station.audit.close_batch(self.batch.batch_id)
                self.emit(event)
                return
            except StationError as exc:
                self.halt(str(exc))
        self.bus.publish(event)

    # -- events ----------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        if isinstance(event, StepStarted):
            self._presence.step_started(event.slot, event.step)
        self._audit_writer.record(event)  # raises AuditWriteFailed: callers halt
        self.bus.publish(event)

    def halt(self, reason: str) -> None:
        with self._lock:
            if self._halted is not None:
                return
            self._halted = reason
        self.bus.publish(IssuanceHalted(reason=reason))

    @property
    def halted(self) -> str | None:
        return self._halted

    def check_not_halted(self) -> None:
        if self._halted is not None:
            raise PolicyRefusal("issuance-halted", f"issuance is halted: {self._halted}")

    # -- commands --------------------------------------------------------------------

    def _slot(self, slot: str) -> _SlotCommands:
        with self._lock:
            return self._commands.setdefault(slot, _SlotCommands())

    def bind_label(self, slot: str, label: str) -> None:
        """A label was scanned for `slot`. A label outside the profile's alphabet is refused
        here (PolicyRefusal "label-invalid"), as the scan arrives, not later at keygen; the
        slot keeps waiting for a good one."""
        problem = LABEL.problem(label)
        if problem:
            raise PolicyRefusal("label-invalid", problem)
        commands = self._slot(slot)
        with commands.changed:
            commands.label = label
            commands.changed.notify_all()

    def approve_override(self, slot: str, supervisor: str) -> None:
        """A supervisor approved re-provisioning the device in `slot`."""
        commands = self._slot(slot)
        with commands.changed:
            commands.override = supervisor
            commands.changed.notify_all()

    def stop(self) -> None:
        """Stop the line gently: no new device is started, a slot waiting for a scan gives up,
        and devices already in flight run to the end of their pipeline (a device is never
        abandoned between issue and commit by choice)."""
        self._stopping.set()
        with self._lock:
            commands = list(self._commands.values())
        for slot_commands in commands:
            with slot_commands.changed:
                slot_commands.changed.notify_all()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def wait_for_label(self, slot: str, device_id: str) -> str:
        commands = self._slot(slot)
        # This device's own removal: a device pulled out while the slot waits for its scan ends
        # the wait at once (detach notifies), so a label scanned next is not taken for it.
        removed = self._presence.removal_of(slot)
        self.bus.publish(SlotStateChanged(slot=slot, state="waiting-label", device_id=device_id))
        with commands.changed:
            if not commands.changed.wait_for(lambda: commands.label is not None or self.stopping or removed.is_set(),
                                             timeout=self.LABEL_WAIT_S):
                raise PolicyRefusal("no-label", f"no label scanned for slot {slot} within {self.LABEL_WAIT_S:g} s")
            if removed.is_set():
                raise DeviceRemoved("bind")
            if commands.label is None:
                raise PolicyRefusal("station-stopping", f"the station is stopping; slot {slot} was not scanned")
            label, commands.label = commands.label, None
        self.bus.publish(SlotStateChanged(slot=slot, state="busy", device_id=device_id))
        return label

    def override_for(self, slot: str) -> str | None:
        """The supervisor approving a re-provisioning at `slot`: one scanned for the device
        now there (taken: it approves that device only), else the run's standing override."""
        commands = self._slot(slot)
        with commands.changed:
            supervisor, commands.override = commands.override, None
        return supervisor or self.standing_override

    def claim_device(self, device_id: str, slot: str) -> None:
        """Take `device_id` for `slot` until its pipeline ends; an id already in flight in
        another slot (a cloned board, a constant UID) is refused."""
        with self._lock:
            holder = self._devices.get(device_id)
            if holder is not None and holder != slot:
                raise PolicyRefusal("device-in-flight", f"device {device_id} is already in flight in slot "
                                                        f"{holder}; two boards report the same id (clone?)")
            self._devices[device_id] = slot

    def _release_device(self, device_id: str | None, slot: str) -> None:
        with self._lock:
            if device_id is not None and self._devices.get(device_id) == slot:
                del self._devices[device_id]

    def claim_label(self, label: str, device_id: str) -> None:
        """Bind `label` to this device for good: a label already bound to another device, in
        this run or in any earlier one the database knows, is refused."""
        for row in self.station.audit.devices_with_label(label):
            if row["device_id"] != device_id:
                raise PolicyRefusal("label-reused", f"label {label} is already bound to device {row['device_id']} "
                                                    f"(batch {row['batch_id']})")
        with self._lock:
            holder = self._labels.get(label)
            if holder is not None and holder != device_id:
                raise PolicyRefusal("label-reused", f"label {label} is already bound to device {holder} "
                                                    f"in batch {self.batch.batch_id}")
            self._labels[label] = device_id

    # -- devices ---------------------------------------------------------------------

    def provision_port(self, slot: str, port: str, *, hotplug: bool = False) -> Outcome:
        """Provision the device on `port` in this thread; never raises for a device problem.
        `hotplug`: a device source reports this device's removal (`detach`)."""
        self._presence.attached(slot, hotplug=hotplug)
        self.emit(DeviceAttached(slot=slot, port=port))  # which fixture port: chain of custody
        self.bus.publish(SlotStateChanged(slot=slot, state="busy"))
        try:
            driver = self._presence.wrap(slot, open_driver(self.line.family, port, **self.driver_opts))
        except StationError as exc:
            outcome = Outcome(slot=slot, port=port, passed=False, step="open", reason=str(exc))
            self.emit(DeviceFailed(slot=slot, device_id=None, step="open", reason=str(exc),
                                   code=type(exc).__name__))
        else:
            pipeline = DevicePipeline(self, slot, port, driver)
            try:
                outcome = pipeline.run()
            finally:
                driver.close()
                self._release_device(pipeline.device_id, slot)
        self._count(outcome)
        return outcome

    def attach(self, slot: str, port: str, *, hotplug: bool = False) -> threading.Thread:
        """A device appeared in `slot`: provision it on a worker thread. `hotplug`: its source
        will call `detach` when it is pulled out."""
        thread = threading.Thread(target=self._guarded, args=(slot, [port], hotplug), name=f"slot-{slot}",
                                  daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()
        return thread

    def run_slot_queue(self, slot: str, ports: list[str]) -> threading.Thread:
        """Provision `ports` one after another in `slot` (a scripted line: each port is the
        next device the operator puts into that fixture)."""
        thread = threading.Thread(target=self._guarded, args=(slot, ports), name=f"slot-{slot}", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()
        return thread

    def detach(self, slot: str) -> None:
        """The device in `slot` was pulled out: if it is mid-step, that slot ends in FAIL with
        "device removed during <step>" (station/engine/removal.py); other slots carry on."""
        self._presence.removed(slot)
        commands = self._slot(slot)
        with commands.changed:
            commands.changed.notify_all()  # a slot waiting for a label stops waiting

    def _guarded(self, slot: str, ports: list[str], hotplug: bool = False) -> None:
        for port in ports:
            if self.stopping or self.halted:
                # The device stays untouched in its fixture: nothing is started that the
                # station could not record or finish.
                return
            try:
                self.provision_port(slot, port, hotplug=hotplug)
            except StepFailed:
                raise
            except Exception as exc:  # an audit failure while reporting: halt, keep other slots going
                self.halt(f"slot {slot}: {type(exc).__name__}: {exc}")
                self._count(Outcome(slot=slot, port=port, passed=False, step="report", reason=str(exc)))

    def wait(self) -> None:
        while True:
            with self._lock:
                pending = [t for t in self._threads if t.is_alive()]
            if not pending:
                return
            for thread in pending:
                thread.join()

    def _count(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)
        passed, failed = self.batch.count(outcome.passed, took_unit=outcome.took_unit)
        state = "passed" if outcome.passed else "failed"
        try:
            self.emit(SlotStateChanged(slot=outcome.slot, state=state, device_id=outcome.device_id))
            self.emit(BatchCounterChanged(batch_id=self.batch.batch_id, passed=passed, failed=failed,
                                          expected=self.batch.expected))
        except StationError as exc:
            self.halt(str(exc))


__all__ = ["Engine", "DevicePassed", "DeviceFailed"]
