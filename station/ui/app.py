"""The operator terminal app: lays out the main screen, folds events into the model on its
own loop, routes scans, and runs every blocking session call in a thread worker.

Attributes down, messages up: engine workers never touch a widget; they publish events,
which arrive here as `EventArrived` messages (post_message is thread-safe).
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Callable, Iterable

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from hsm.errors import HSMError
from station.engine.events import (BatchCounterChanged, DeviceAttached, DeviceIdentified, Event, IssuanceHalted,
                                   SlotStateChanged, StepFinished, StepStarted)
from station.errors import StationError
from station.operator.events import BatchClosed, ScanAccepted, ScanRefused, StationFailed
from station.operator.i18n import _
from station.operator.model import LineModel
from station.operator.scan import Refusal, ScanRouter
from station.operator.session import Session
from station.ui.messages import EventArrived, Scanned
from station.ui.screens.confirm_quit import ConfirmQuit
from station.ui.screens.help import HelpScreen
from station.ui.screens.pin import PinScreen
from station.ui.screens.summary import BatchSummary
from station.ui.widgets.batch_panel import BatchPanel
from station.ui.widgets.event_log import EventLog
from station.ui.widgets.scan_field import ScanField
from station.ui.widgets.slots import SlotGrid

REFRESH_S = 1.0  # while devices are in flight the screen redraws this often (docs/performance.md)
# The line's threads wait on serial I/O and need the GIL for a moment when data arrives; with
# the default 5 ms switch interval a frame being drawn on the UI loop makes each of them wait
# up to 5 ms per wake-up, which adds up over a device's hundred exchanges. 1 ms keeps the line
# at its headless pace (docs/performance.md).
SWITCH_INTERVAL_S = 0.001


# Events shown at the next redraw tick rather than at once: the steps of devices in flight.
_PACED = (StepStarted, StepFinished, SlotStateChanged, DeviceIdentified, DeviceAttached, BatchCounterChanged)


class StationApp(App):
    CSS_PATH = Path(__file__).with_name("station.tcss")
    TITLE = "Certificate injection station"
    BINDINGS = [
        Binding("q", "request_quit", _("Quit")),
        Binding("question_mark,f1", "help", _("Help"), key_display="?"),
        Binding("ctrl+p", "command_palette", _("Commands")),
    ]

    def __init__(self, model: LineModel, router: ScanRouter, session: Session | None = None, *,
                 hint: str = "", token: str = "", serial_scanner: Callable | None = None) -> None:
        super().__init__()
        self.model, self.router, self.session = model, router, session
        self.hint, self.token = hint, token
        self._serial_scanner_factory = serial_scanner
        self._serial_scanner = None
        self._busy: str | None = None  # a login or batch change under way: scans wait
        self._quitting = False
        self._dirty = True
        self._shown: tuple = ()
        self._pending: list[Event] = []
        self._pending_lock = threading.Lock()
        if session is not None:
            session.publish = self.publish

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="▣")
        yield Static(id="banner")
        yield Static(id="status")
        with Horizontal(id="body"):
            yield SlotGrid(list(self.model.slots.values()), id="slots")
            yield BatchPanel(id="batch")
        yield EventLog(id="log")
        yield ScanField(id="scan")
        yield Footer()

    def on_mount(self) -> None:
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._views = (self.query_one(SlotGrid), self.query_one(BatchPanel), self.query_one(EventLog),
                       self.query_one("#banner", Static), self.query_one("#status", Static))
        self.query_one("#scan", ScanField).focus()
        self.set_interval(REFRESH_S, self._tick)
        self._redraw()
        if self.session is not None:
            if self.session.pin_needed():
                self._ask_pin()
            else:
                self._work(self.session.open)
            if self._serial_scanner_factory is not None:
                self._start_serial_scanner()

    # -- events from any thread ---------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """The session's and the engine's subscriber: thread-safe, never blocks the line.
        Events queue up. What the operator must see at once (a scan's answer, a halt, a batch
        or station change) wakes the loop with one message; a device's step events wait for
        the next redraw tick, so two dozen events a device cost the line no wake-up at all."""
        with self._pending_lock:
            self._pending.append(event)
        if not isinstance(event, _PACED):
            self.post_message(EventArrived())

    def on_event_arrived(self, message: EventArrived) -> None:
        with self._pending_lock:
            events, self._pending = self._pending, []
        if not events:
            return
        for event in events:
            self._fold(event)
        # A scan's answer is shown at once; so is everything while no device is in flight.
        # Otherwise the redraw timer paces the screen (a busy screen must not slow the line).
        if not self.model.in_flight() or any(isinstance(e, (ScanRefused, ScanAccepted)) for e in events):
            self._redraw()

    def _fold(self, event: Event) -> None:
        self.model.apply(event)
        self._dirty = True
        if isinstance(event, StationFailed) and event.wrong_pin:
            self._ask_pin(event.reason)
        elif isinstance(event, IssuanceHalted):
            self.bell()
        elif isinstance(event, BatchClosed) and not self._quitting and self.model.batch is not None:
            self.push_screen(BatchSummary(self.model.batch, self.model.clock()))

    def _tick(self) -> None:
        self.on_event_arrived(EventArrived())
        self._redraw()

    def _redraw(self) -> None:
        if not self._dirty and not self.model.in_flight() and not self.model.batch_running:
            return
        self._dirty = False
        now = self.model.clock()
        # The main screen's widgets, held from mount: a dialog on top does not hide them.
        grid, panel, log, banner, status = self._views
        grid.show(self.model.slots, now)
        panel.show(self.model, now)
        log.show(self.model)
        halted = (_("⛔ ISSUANCE HALTED: the line is stopped. {reason}").format(reason=self.model.halted)
                  if self.model.halted else "")
        accepted, text = self._status_text()
        if (halted, accepted, text) != self._shown:  # a Static's update re-lays out the screen
            self._shown = (halted, accepted, text)
            banner.display = bool(halted)
            banner.update(halted)
            status.set_class(not accepted, "-refused")
            status.update(text)
        self.title = self.model.station_id or self.TITLE
        self.sub_title = " · ".join(filter(None, [self.model.operator,
                                                   self.model.batch.batch_id if self.model.batch else None]))

    def _status_text(self) -> tuple[bool, str]:
        """(the last scan was accepted, the line telling the operator what to do now)."""
        accepted, message = self.model.last_scan or (True, "")
        if not accepted:
            return accepted, "✘ " + message
        if self._busy:
            return accepted, "… " + self._busy
        if self.model.halted:
            return accepted, _("Issuance halted: fix the cause, then restart the station; the batch stays open to resume.")
        if self.model.station_error:
            return accepted, "✘ " + self.model.station_error
        if not self.model.station_ready:
            return accepted, _("Opening the station (HSM login)…")
        if self.model.stopped:
            return accepted, _("Line stopped.")
        if self.model.operator is None:
            return accepted, self.hint or _("Scan your operator badge.")
        if not self.model.batch_running:
            return accepted, self.hint or _("Scan a work order to open a batch.")
        waiting = self.model.waiting_for_override() or self.model.waiting_for_label()
        if waiting:
            return accepted, _("Slot {slot} is waiting for a scan.").format(slot=waiting[0].name)
        return accepted, _("Running. Put devices in the slots.") if not message else "✔ " + message

    # -- scans ---------------------------------------------------------------------------------

    def on_scanned(self, message: Scanned) -> None:
        self.handle_scan(message.text)

    def handle_scan(self, text: str) -> None:
        if self._busy:
            return self._refuse(text, _("please wait: {what}").format(what=self._busy))
        if self.session is None:
            return self._refuse(text, _("no line is attached"))
        route = self.router.route(text, self.model)
        if isinstance(route, Refusal):
            return self._refuse(text, route.reason)
        if route.kind == "operator":
            self._busy = _("logging in {operator}").format(operator=route.value)
            self._work(self.session.login, route.value, scan=text)
        elif route.kind == "work-order":
            self._busy = _("opening work order {wo}").format(wo=route.value)
            self._work(self.session.open_batch, route.value, scan=text)
        elif route.kind == "label":
            try:
                self.session.bind_label(route.slot, route.value)
            except StationError as exc:  # no batch any more, or a label outside the alphabet
                return self._refuse(text, str(exc))
            self._accept(text, _("label {label} for slot {slot}").format(label=route.value, slot=route.slot))
        elif route.kind == "supervisor":
            try:
                self.session.approve_override(route.slot, route.value)
            except StationError as exc:  # the batch ended while the slot waited
                return self._refuse(text, str(exc))
            self._accept(text, _("supervisor {supervisor} approved slot {slot}").format(
                supervisor=route.value, slot=route.slot))

    def _refuse(self, text: str, reason: str) -> None:
        self.publish(ScanRefused(scan=text, reason=reason))
        self.bell()

    def _accept(self, text: str, what: str) -> None:
        self.publish(ScanAccepted(scan=text, what=what))

    def _work(self, call: Callable, *args, scan: str | None = None) -> None:
        """Run a blocking session call on a thread; its failure is a refusal, not a crash."""
        def run() -> None:
            try:
                call(*args)
            except (StationError, HSMError) as exc:
                self.publish(ScanRefused(scan=scan or "", reason=str(exc)) if scan else StationFailed(reason=str(exc)))
                self.call_from_thread(self.bell)
            except Exception as exc:  # a bug: one line, the line keeps its state
                self.publish(StationFailed(reason=_("internal error ({kind}: {detail})").format(
                    kind=type(exc).__name__, detail=exc)))
            finally:
                self.call_from_thread(self._done)

        self.run_worker(run, thread=True, group="session", exit_on_error=False)

    def _done(self) -> None:
        self._busy = None
        self._dirty = True

    # -- serial scanner -------------------------------------------------------------------------

    def _start_serial_scanner(self) -> None:
        try:
            self._serial_scanner = self._serial_scanner_factory(lambda text: self.post_message(Scanned(text)))
        except (OSError, ValueError) as exc:
            self.publish(StationFailed(reason=_("serial scanner: {detail}").format(detail=exc)))

    # -- PIN ------------------------------------------------------------------------------------

    def _ask_pin(self, error: str | None = None) -> None:
        def entered(pin: str | None) -> None:
            if pin:
                self._work(self.session.open, pin)

        self.push_screen(PinScreen(self.token, error), entered)

    # -- actions --------------------------------------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.hint))

    async def action_quit(self) -> None:
        # Ctrl+Q and the palette's built-in quit go the same way as q: never exit with devices
        # abandoned mid-pipeline.
        self.action_request_quit()

    def action_request_quit(self) -> None:
        # Asked while devices are in flight, and while a batch runs at all: between two devices
        # the line is still running, and quitting stops it.
        in_flight = len(self.model.in_flight())
        if in_flight or (self.session is not None and self.session.in_flight):
            self.push_screen(ConfirmQuit(in_flight), lambda yes: self._quit() if yes else None)
        else:
            self._quit()

    def _quit(self) -> None:
        if self._quitting:
            return
        self._quitting = True
        self._busy = _("stopping: the devices in flight finish, nothing new starts")
        self._dirty = True
        session = self.session

        def stop() -> None:
            if session is not None:
                if session.in_flight:
                    session.stop()
                session.close()
            if self._serial_scanner is not None:
                self._serial_scanner.close()
            self.call_from_thread(self._leave)

        self.run_worker(stop, thread=True, group="quit", exit_on_error=False)

    def _leave(self) -> None:
        # What the stop published is folded before the app ends: the model tells the last story.
        self.on_event_arrived(EventArrived())
        self.exit()

    def action_close_batch(self) -> None:
        if self.session is not None and self.session.in_flight:
            self._busy = _("closing the batch once the devices in flight finish")
            self._work(self.session.close_batch)

    def action_stop_line(self) -> None:
        if self.session is not None and self.session.in_flight:
            self._busy = _("stopping the line")
            self._work(self.session.stop)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand(_("Close batch"), _("Finish the devices in flight, close the batch, show the summary"),
                            self.action_close_batch)
        yield SystemCommand(_("Stop line"), _("Devices in flight finish, nothing new starts, the batch stays open"),
                            self.action_stop_line)
        yield SystemCommand(_("Help"), _("What to scan and which key does what"), self.action_help)
        yield SystemCommand(_("Quit"), _("Leave the station (asks first while devices are in flight)"),
                            self.action_request_quit)
