"""Routing a barcode scan by its content ([scan] patterns) and by what the line expects now.

A scanner types like a keyboard and ends with Enter; a scanner in serial (CDC) mode sends the
same text over a port (`SerialScanner`). Either way the text comes here, and the answer is a
`Route` (what to do) or a `Refusal` (why not; the caller bells and changes nothing).
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Callable

from station.config import ScanConfig
from station.identifiers import LABEL
from station.operator.i18n import _
from station.operator.model import LineModel


@dataclass(frozen=True)
class Route:
    kind: str  # operator, work-order, label, supervisor
    value: str
    slot: str | None = None


@dataclass(frozen=True)
class Refusal:
    reason: str


class ScanRouter:
    def __init__(self, patterns: ScanConfig):
        self.patterns = patterns
        self._kinds = [(kind, re.compile(getattr(patterns, attr))) for kind, attr in
                       (("operator", "operator"), ("supervisor", "supervisor"),
                        ("work-order", "work_order"), ("label", "label"))]

    def classify(self, text: str) -> tuple[str | None, str, str | None]:
        """(kind or None, value, slot named by a prefix or None)."""
        slot, sep, rest = text.partition(self.patterns.slot_prefix)
        candidates = [(None, text)]
        if sep and slot and rest:
            candidates.insert(0, (slot, rest))
        for slot_name, value in candidates:
            for kind, pattern in self._kinds:
                if pattern.fullmatch(value):
                    return kind, value, slot_name
        return None, text, None

    def route(self, text: str, model: LineModel) -> Route | Refusal:
        text = text.strip()
        if not text:
            return Refusal(_("empty scan"))
        kind, value, slot = self.classify(text)
        if slot is not None and slot not in model.slots:
            return Refusal(_("there is no slot {slot}").format(slot=slot))
        if kind is None:
            return Refusal(_("not a badge, work order or label this station knows"))
        if not model.station_ready:
            return Refusal(_("the station is not ready yet"))
        if kind == "operator":
            return self._operator(value, model)
        if kind == "work-order":
            return self._work_order(value, model)
        if kind == "supervisor":
            return self._waiting(value, slot, model.waiting_for_override(), "supervisor",
                                 _("no slot is waiting for a supervisor"))
        # The one label validator (the profile's alphabet): a scan the certificate subject could
        # not carry is refused here, not first at the engine.
        if problem := LABEL.problem(value):
            return Refusal(problem)
        return self._waiting(value, slot, model.waiting_for_label(), "label",
                             _("no slot is waiting for a label"))

    @staticmethod
    def _operator(value: str, model: LineModel) -> Route | Refusal:
        if value == model.operator:
            return Refusal(_("operator {operator} is already logged in").format(operator=value))
        if model.batch_running:
            return Refusal(_("batch {batch} is running: close or stop it before another operator logs in").format(
                batch=model.batch.batch_id))
        return Route("operator", value)

    @staticmethod
    def _work_order(value: str, model: LineModel) -> Route | Refusal:
        if model.operator is None:
            return Refusal(_("scan your operator badge first"))
        if model.halted:
            return Refusal(_("issuance is halted; no batch can be opened"))
        if model.batch_running:
            return Refusal(_("batch {batch} is still open").format(batch=model.batch.batch_id))
        return Route("work-order", value)

    @staticmethod
    def _waiting(value: str, slot: str | None, waiting: list, kind: str, none_waiting: str) -> Route | Refusal:
        names = [s.name for s in waiting]
        if slot is not None:
            if slot not in names:
                return Refusal(_("slot {slot} is not waiting for this scan").format(slot=slot))
            return Route(kind, value, slot)
        if not names:
            return Refusal(none_waiting)
        if len(names) > 1:
            return Refusal(_("slots {slots} are waiting: scan the slot prefix first, e.g. {example}").format(
                slots=", ".join(names), example=f"{names[0]}:{value}"))
        return Route(kind, value, names[0])


class SerialScanner:
    """A barcode scanner in serial (USB CDC) mode: each line it sends is one scan, handed to
    `on_scan` on this reader's thread (the UI posts it to its own loop)."""

    def __init__(self, port: str, baud: int, on_scan: Callable[[str], None]):
        import serial  # pyserial; only when a serial scanner is configured

        self._serial = serial.serial_for_url(port, baudrate=baud, timeout=0.2)
        self._on_scan = on_scan
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="scanner", daemon=True)

    def start(self) -> "SerialScanner":
        self._thread.start()
        return self

    def _read(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            try:
                buffer += self._serial.read(256)
            except OSError:
                return  # unplugged: the keyboard wedge still works
            *lines, buffer = re.split(rb"\r\n|\r|\n", buffer)
            for line in lines:
                text = line.decode("utf-8", "replace").strip()
                if text:
                    self._on_scan(text)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        self._serial.close()
