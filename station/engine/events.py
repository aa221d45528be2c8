"""What the engine publishes, named for what happened. Frozen dataclasses, safe to hand to any
thread; `kind` is the stable name the audit log and the JSON output use."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"


@dataclass(frozen=True)
class BatchStarted(Event):
    kind: ClassVar[str] = "batch-started"
    batch_id: str
    model: str
    operator: str
    expected: int | None


@dataclass(frozen=True)
class BatchFinished(Event):
    kind: ClassVar[str] = "batch-finished"
    batch_id: str
    passed: int
    failed: int


@dataclass(frozen=True)
class SlotStateChanged(Event):
    kind: ClassVar[str] = "slot-state-changed"
    slot: str
    state: str  # empty, busy, passed, failed, waiting-label, halted
    device_id: str | None = None


@dataclass(frozen=True)
class DeviceAttached(Event):
    kind: ClassVar[str] = "device-attached"
    slot: str
    port: str


@dataclass(frozen=True)
class DeviceIdentified(Event):
    kind: ClassVar[str] = "device-identified"
    slot: str
    device_id: str
    model: str
    hw_rev: str
    fw_version: str
    state: str


@dataclass(frozen=True)
class LineRate(Event):
    """The rate a device's line runs at after the compact extension's switch (docs/protocol.md
    9.4), or the rate it stayed at and why the switch failed."""

    kind: ClassVar[str] = "line-rate"
    slot: str
    device_id: str
    line: str


@dataclass(frozen=True)
class StepStarted(Event):
    kind: ClassVar[str] = "step-started"
    slot: str
    step: str
    device_id: str | None


@dataclass(frozen=True)
class StepFinished(Event):
    kind: ClassVar[str] = "step-finished"
    slot: str
    step: str
    device_id: str | None
    ok: bool
    duration_s: float
    detail: str = ""


@dataclass(frozen=True)
class DevicePassed(Event):
    kind: ClassVar[str] = "device-passed"
    slot: str
    device_id: str
    label: str
    serial_hex: str
    fingerprint_sha256: str
    duration_s: float


@dataclass(frozen=True)
class DeviceFailed(Event):
    kind: ClassVar[str] = "device-failed"
    slot: str
    device_id: str | None
    step: str
    reason: str
    code: str = ""
    duration_s: float = 0.0


@dataclass(frozen=True)
class OverrideApproved(Event):
    kind: ClassVar[str] = "override-approved"
    slot: str
    device_id: str
    supervisor: str
    what: str


@dataclass(frozen=True)
class BatchCounterChanged(Event):
    kind: ClassVar[str] = "batch-counter-changed"
    batch_id: str
    passed: int
    failed: int
    expected: int | None


@dataclass(frozen=True)
class IssuanceHalted(Event):
    """The station stopped issuing (the audit database cannot be written, the HSM failed)."""

    kind: ClassVar[str] = "issuance-halted"
    reason: str
    extra: dict = field(default_factory=dict)
