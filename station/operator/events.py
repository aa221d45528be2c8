"""What the operator session publishes beside the engine's events (station/engine/events.py),
named for what happened. The UI folds both into the same model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from station.engine.events import Event


@dataclass(frozen=True)
class StationOpened(Event):
    """The token is logged in and the audit database open: the line can start."""

    kind: ClassVar[str] = "station-opened"
    station_id: str
    audit_head: str


@dataclass(frozen=True)
class StationFailed(Event):
    """The station could not be opened (wrong PIN, token missing, bad configuration)."""

    kind: ClassVar[str] = "station-failed"
    reason: str
    wrong_pin: bool = False


@dataclass(frozen=True)
class OperatorLoggedIn(Event):
    kind: ClassVar[str] = "operator-logged-in"
    operator: str


@dataclass(frozen=True)
class ScanRefused(Event):
    kind: ClassVar[str] = "scan-refused"
    scan: str
    reason: str


@dataclass(frozen=True)
class ScanAccepted(Event):
    kind: ClassVar[str] = "scan-accepted"
    scan: str
    what: str


@dataclass(frozen=True)
class SlotEmptied(Event):
    """The device was taken out of its fixture slot."""

    kind: ClassVar[str] = "slot-emptied"
    slot: str


@dataclass(frozen=True)
class BatchClosed(Event):
    """The batch ended (closed with a checkpoint, or left open when stopped or halted)."""

    kind: ClassVar[str] = "batch-closed"
    batch_id: str
    audit_head: str
    left_open: bool = False
    report: str = ""  # path of the batch report written at close (docs/audit.md), "" if none


@dataclass(frozen=True)
class LineStopped(Event):
    """The line stopped gently: devices in flight finished, nothing new started."""

    kind: ClassVar[str] = "line-stopped"
