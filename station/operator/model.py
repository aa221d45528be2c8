"""What the operator screens show, folded from events: per slot (state, device, label, step
k of n, elapsed, result and reason) and per batch (counters, yield, devices per hour).

Plain Python, owned by one thread (the UI's loop): events reach it through the UI's
thread-safe post, never straight from an engine worker. Widgets only render it.
"""
from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable

from station.engine.events import (BatchCounterChanged, BatchFinished, BatchStarted, DeviceAttached, DeviceFailed,
                                   DeviceIdentified, DevicePassed, Event, IssuanceHalted, OverrideApproved,
                                   SlotStateChanged, StepStarted)
from station.operator.events import (BatchClosed, LineStopped, OperatorLoggedIn, ScanAccepted, ScanRefused,
                                     SlotEmptied, StationFailed, StationOpened)
from station.operator.i18n import _

def N_(message: str) -> str:
    """Marks a text for the catalogue where it is declared; `_()` translates it where shown."""
    return message


STEPS = (N_("identify"), N_("bind"), N_("keygen"), N_("issue"), N_("write"), N_("commit"), N_("prove"))
LOCK_STEP = N_("lock")  # the optional eighth step ([line] lock = true)
IN_FLIGHT = ("busy", "waiting-label")
# The refusal a supervisor can lift ([line] reprovision = "supervisor"): docs/engine.md.
OVERRIDABLE = "already-provisioned"
LOG_LINES = 500


@dataclass
class SlotView:
    name: str
    state: str = "empty"  # empty, busy, waiting-label, passed, failed
    device_id: str | None = None
    label: str | None = None
    port: str | None = None
    step: str | None = None
    step_index: int = 0
    step_count: int = len(STEPS)
    started: float | None = None
    duration_s: float | None = None  # set when the device ended
    result: str | None = None  # "PASS" / "FAIL"
    reason: str | None = None
    code: str | None = None
    needs_override: str | None = None  # what a supervisor must approve

    def elapsed(self, now: float) -> float | None:
        if self.duration_s is not None:
            return self.duration_s
        return None if self.started is None else max(0.0, now - self.started)

    @property
    def in_flight(self) -> bool:
        return self.state in IN_FLIGHT

    @property
    def progress(self) -> float:
        if self.result == "PASS":
            return 1.0
        return self.step_index / self.step_count if self.step_count else 0.0


@dataclass
class BatchView:
    batch_id: str
    model: str
    operator: str
    expected: int | None
    started: float
    passed: int = 0
    failed: int = 0
    ended: float | None = None
    closed: bool = False
    left_open: bool = False
    audit_head: str = ""
    report: str = ""  # the batch report written at close
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (step, code, reason)

    @property
    def done(self) -> int:
        return self.passed + self.failed

    @property
    def remaining(self) -> int | None:
        return None if self.expected is None else max(0, self.expected - self.done)

    @property
    def yield_pct(self) -> float | None:
        return None if not self.done else 100.0 * self.passed / self.done

    def elapsed(self, now: float) -> float:
        return max(0.0, (self.ended if self.ended is not None else now) - self.started)

    def devices_per_hour(self, now: float) -> float:
        elapsed = self.elapsed(now)
        return self.done * 3600 / elapsed if elapsed > 0 else 0.0

    def failures_by_cause(self) -> list[tuple[str, str, int]]:
        """(step, reason, count), most frequent first; failures of one step and one refusal
        code count together, shown with the first reason met."""
        counts: Counter = Counter((step, code or reason) for step, code, reason in self.failures)
        first: dict[tuple[str, str], str] = {}
        for step, code, reason in self.failures:
            first.setdefault((step, code or reason), reason)
        return [(step, first[(step, key)], n) for (step, key), n in counts.most_common()]


@dataclass
class LogEntry:
    seq: int  # 1, 2, ...: a view writes the entries newer than the last it wrote
    at: float
    level: str  # info, pass, fail, warn
    text: str


class LineModel:
    """Everything the operator sees, folded from events by `apply`."""

    def __init__(self, slots: list[str], *, lock: bool = False, override_allowed: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.step_count = len(STEPS) + (1 if lock else 0)
        self.override_allowed = override_allowed
        self.slots: dict[str, SlotView] = {}
        for name in slots:
            self._slot(name)
        self.station_id: str | None = None
        self.station_ready = False
        self.station_error: str | None = None
        self.wrong_pin = False
        self.operator: str | None = None
        self.batch: BatchView | None = None
        self.halted: str | None = None
        self.stopped = False
        self.audit_head = ""
        self.last_scan: tuple[bool, str] | None = None  # (accepted, message)
        self.log: deque[LogEntry] = deque(maxlen=LOG_LINES)
        self._seq = 0

    # -- queries -----------------------------------------------------------------------

    def in_flight(self) -> list[SlotView]:
        return [s for s in self.slots.values() if s.in_flight]

    def waiting_for_label(self) -> list[SlotView]:
        return [s for s in self.slots.values() if s.state == "waiting-label"]

    def waiting_for_override(self) -> list[SlotView]:
        return [s for s in self.slots.values() if s.needs_override]

    @property
    def batch_running(self) -> bool:
        return self.batch is not None and not self.batch.closed

    # -- folding -------------------------------------------------------------------------

    def _slot(self, name: str) -> SlotView:
        if name not in self.slots:
            self.slots[name] = SlotView(name, step_count=self.step_count)
        return self.slots[name]

    def _log(self, level: str, text: str) -> None:
        self._seq += 1
        self.log.append(LogEntry(self._seq, self.clock(), level, text))

    def apply(self, event: Event) -> None:
        handler = getattr(self, "_on_" + type(event).__name__, None)
        if handler is not None:
            handler(event)

    def _on_StationOpened(self, e: StationOpened) -> None:
        self.station_id, self.station_ready, self.audit_head = e.station_id, True, e.audit_head
        self.station_error, self.wrong_pin = None, False
        self._log("info", _("Station {station} ready.").format(station=e.station_id))

    def _on_StationFailed(self, e: StationFailed) -> None:
        self.station_error, self.wrong_pin = e.reason, e.wrong_pin
        self._log("fail", e.reason)

    def _on_OperatorLoggedIn(self, e: OperatorLoggedIn) -> None:
        self.operator = e.operator
        self._log("info", _("Operator {operator} logged in.").format(operator=e.operator))

    def _on_ScanAccepted(self, e: ScanAccepted) -> None:
        self.last_scan = (True, e.what)

    def _on_ScanRefused(self, e: ScanRefused) -> None:
        self.last_scan = (False, e.reason)
        self._log("warn", _("Scan {scan!r} refused: {reason}").format(scan=e.scan, reason=e.reason))

    def _on_BatchStarted(self, e: BatchStarted) -> None:
        self.batch = BatchView(e.batch_id, e.model, e.operator, e.expected, started=self.clock())
        self.stopped = False
        for slot in self.slots.values():
            if not slot.in_flight:
                self.slots[slot.name] = SlotView(slot.name, step_count=self.step_count)
        self._log("info", _("Batch {batch} opened ({model}, operator {operator}).").format(
            batch=e.batch_id, model=e.model, operator=e.operator))

    def _on_BatchCounterChanged(self, e: BatchCounterChanged) -> None:
        if self.batch is not None and self.batch.batch_id == e.batch_id:
            self.batch.passed, self.batch.failed, self.batch.expected = e.passed, e.failed, e.expected

    def _on_BatchFinished(self, e: BatchFinished) -> None:
        if self.batch is not None:
            self.batch.passed, self.batch.failed = e.passed, e.failed
            self.batch.ended = self.clock()

    def _on_BatchClosed(self, e: BatchClosed) -> None:
        self.audit_head = e.audit_head or self.audit_head
        if self.batch is not None:
            self.batch.closed, self.batch.left_open, self.batch.audit_head = True, e.left_open, e.audit_head
            self.batch.report = e.report
            if self.batch.ended is None:
                self.batch.ended = self.clock()
        text = _("Batch {batch} left open; audit head {head}.") if e.left_open else \
            _("Batch {batch} closed; audit head {head}.")
        self._log("info", text.format(batch=e.batch_id, head=e.audit_head))

    def _on_LineStopped(self, e: LineStopped) -> None:
        self.stopped = True
        self._log("warn", _("Line stopped: no new device is started."))

    def _on_DeviceAttached(self, e: DeviceAttached) -> None:
        self.slots[e.slot] = SlotView(e.slot, state="busy", port=e.port, started=self.clock(),
                                      step_count=self.step_count)

    def _on_SlotStateChanged(self, e: SlotStateChanged) -> None:
        slot = self._slot(e.slot)
        if e.state == "empty":
            self.slots[e.slot] = SlotView(e.slot, step_count=self.step_count)
            return
        slot.state = e.state
        slot.device_id = e.device_id or slot.device_id
        if e.state == "waiting-label":
            self._log("info", _("Slot {slot}: scan the label of device {device}.").format(
                slot=e.slot, device=e.device_id))

    def _on_SlotEmptied(self, e: SlotEmptied) -> None:
        self.slots[e.slot] = SlotView(e.slot, step_count=self.step_count)

    def _on_DeviceIdentified(self, e: DeviceIdentified) -> None:
        self._slot(e.slot).device_id = e.device_id

    def _on_StepStarted(self, e: StepStarted) -> None:
        slot = self._slot(e.slot)
        slot.step = e.step
        slot.step_index = STEPS.index(e.step) if e.step in STEPS else self.step_count - 1
        if slot.started is None:
            slot.started = self.clock()

    def _on_DevicePassed(self, e: DevicePassed) -> None:
        slot = self._slot(e.slot)
        slot.state, slot.result, slot.label, slot.device_id = "passed", "PASS", e.label, e.device_id
        slot.duration_s, slot.step_index, slot.needs_override = e.duration_s, slot.step_count, None
        self._log("pass", _("PASS slot {slot}: device {device}, label {label} ({seconds:.1f} s)").format(
            slot=e.slot, device=e.device_id, label=e.label, seconds=e.duration_s))

    def _on_DeviceFailed(self, e: DeviceFailed) -> None:
        slot = self._slot(e.slot)
        slot.state, slot.result, slot.step = "failed", "FAIL", e.step
        slot.reason, slot.code, slot.duration_s = e.reason, e.code, e.duration_s
        slot.device_id = e.device_id or slot.device_id
        slot.needs_override = e.reason if (self.override_allowed and e.code == OVERRIDABLE) else None
        if self.batch is not None:
            self.batch.failures.append((e.step, e.code, e.reason))
        self._log("fail", _("FAIL slot {slot}: device {device}, step {step}: {reason}").format(
            slot=e.slot, device=e.device_id or "-", step=e.step, reason=e.reason))
        if slot.needs_override:
            self._log("warn", _("Slot {slot} needs a supervisor: scan a supervisor badge to approve.").format(
                slot=e.slot))

    def _on_OverrideApproved(self, e: OverrideApproved) -> None:
        self._slot(e.slot).needs_override = None
        self._log("info", _("Slot {slot}: supervisor {supervisor} approved {what}.").format(
            slot=e.slot, supervisor=e.supervisor, what=e.what))

    def _on_IssuanceHalted(self, e: IssuanceHalted) -> None:
        self.halted = e.reason
        self._log("fail", _("ISSUANCE HALTED: {reason}").format(reason=e.reason))
