"""One operator session on one station: the token login (PIN), the operator who is logged in,
the batch that is open and the engine that runs it, and the fixture that feeds it devices.

Every method here may block (PKCS#11 login, SQLite, waiting for devices in flight): the UI
calls them from worker threads, never from its loop. What happens is published as events
(the engine's and station.operator.events) to `publish`, which the UI makes thread-safe by
posting to its own loop.
"""
from __future__ import annotations

import threading
from typing import Callable

from typing import TYPE_CHECKING

from hsm.errors import HSMError, PinIncorrect
from station.config import StationConfig
from station.drivers.registry import line_options
from station.engine.events import BatchCounterChanged, Event
from station.errors import StationError
from station.operator.events import (BatchClosed, LineStopped, OperatorLoggedIn, StationFailed, StationOpened)
from station.operator.fixture import SlotFeeder
from station.operator.i18n import _
from station.pin import configured_pin

if TYPE_CHECKING:
    from station.engine.engine import Engine


class Session:
    def __init__(self, cfg: StationConfig, fixture: SlotFeeder, publish: Callable[[Event], None],
                 *, driver_opts: dict | None = None):
        self.cfg = cfg
        self.fixture = fixture
        self.publish = publish
        self.driver_opts = {**line_options(cfg.line), **(driver_opts or {})}
        self.station = None
        self.engine: "Engine | None" = None
        self.operator: str | None = None
        self._lock = threading.Lock()  # one batch transition at a time (open, close, stop)

    @property
    def slots(self) -> list[str]:
        return self.fixture.slots

    def pin_needed(self) -> bool:
        """True when neither the PIN variable nor the PIN file gives the PIN: the UI asks."""
        try:
            return configured_pin(self.cfg.hsm) is None
        except StationError:
            return False  # a bad PIN file: open() reports it

    # -- station -------------------------------------------------------------------------

    def open(self, pin: str | None = None) -> bool:
        """Log in to the token and open the audit database. A wrong PIN is reported, never
        retried: a real HSM locks the token after a few."""
        from station.boot import open_station

        try:
            self.station = open_station(self.cfg, pin=pin)
            head_id, head_hash = self.station.audit.head()
        except PinIncorrect as exc:
            self.publish(StationFailed(reason=_("Wrong PIN: {detail}").format(detail=exc), wrong_pin=True))
            return False
        except (StationError, HSMError) as exc:
            self.publish(StationFailed(reason=str(exc)))
            return False
        self.publish(StationOpened(station_id=self.cfg.station_id, audit_head=f"{head_id}:{head_hash}"))
        return True

    def login(self, operator: str) -> None:
        self.station.audit.record_operator_login(operator)
        self.operator = operator
        self.publish(OperatorLoggedIn(operator=operator))

    # -- batch ---------------------------------------------------------------------------

    def open_batch(self, work_order: str) -> None:
        """Open (or resume) the batch for `work_order` and start feeding devices. Raises
        StationError with an operator-readable reason (no manifest, batch held elsewhere)."""
        # The engine (and the audit and drivers it brings) is imported when the first batch
        # opens, not when the terminal starts: the first screen comes sooner.
        from station.engine.batch import Batch, Manifest
        from station.engine.bus import EventBus
        from station.engine.engine import Engine

        with self._lock:
            plan = self.fixture.plan(work_order, self.cfg)
            batch = Batch(batch_id=plan.batch_id, model=plan.model, operator=self.operator, expected=plan.expected,
                          manifest=Manifest.load(plan.manifest) if plan.manifest else None)
            bus = EventBus()
            bus.subscribe(self.publish)
            bus.subscribe(self._watch_counters)
            engine = Engine(self.station, batch, self.cfg.line, bus=bus, driver_opts=self.driver_opts)
            engine.start()
            self.engine = engine
            self.fixture.start(engine, self.publish, on_done=lambda: self.close_batch(engine))

    def _watch_counters(self, event: Event) -> None:
        # A work order with an expected count is complete when that many devices passed.
        engine = self.engine
        if (isinstance(event, BatchCounterChanged) and engine is not None and event.expected is not None
                and engine.batch.passed_before + event.passed >= event.expected):
            self.fixture.stop()
            threading.Thread(target=self.close_batch, args=(engine,), name="batch-close", daemon=True).start()

    def _running_engine(self) -> "Engine":
        # Read once: a worker thread clears self.engine when the batch ends.
        engine = self.engine
        if engine is None:
            raise StationError(_("no batch is running"))
        return engine

    def bind_label(self, slot: str, label: str) -> None:
        """Raises StationError (no batch running) or PolicyRefusal (label outside the alphabet)."""
        self._running_engine().bind_label(slot, label)

    def approve_override(self, slot: str, supervisor: str) -> None:
        """Both identities end in the audit: the batch's operator, and the supervisor in the
        `override-approved` event the pipeline writes when it provisions the device again.
        Raises StationError when no batch is running."""
        self._running_engine().approve_override(slot, supervisor)
        self.fixture.approved(slot)

    def close_batch(self, engine: "Engine | None" = None) -> None:
        """Close the batch once its devices in flight finished (a signed checkpoint)."""
        with self._lock:
            engine = engine or self.engine
            if engine is None or engine is not self.engine:
                return  # already closed
            self.fixture.stop()
            engine.finish()
            self._ended(engine, left_open=bool(engine.halted))

    def stop(self) -> None:
        """Stop the line as SIGINT does: devices in flight finish, nothing new starts, the
        batch stays open to be resumed."""
        with self._lock:
            engine = self.engine
            self.fixture.stop()
            if engine is not None:
                engine.stop()
                engine.finish(close_batch=False)
                self._ended(engine, left_open=True)
            self.publish(LineStopped())

    def _ended(self, engine: "Engine", *, left_open: bool) -> None:
        self.engine = None
        try:
            head_id, head_hash = self.station.audit.head()
            head = f"{head_id}:{head_hash}"
        except StationError:
            head = ""  # the database is what failed; the halt banner says why
        report = self._write_report(engine.batch.batch_id) if not left_open else ""
        self.publish(BatchClosed(batch_id=engine.batch.batch_id, audit_head=head, left_open=left_open,
                                 report=report))

    def _write_report(self, batch_id: str) -> str:
        """The batch report (station.audit.report) beside the station, for QA and the shift
        lead: its path, or "" when it could not be written (the batch is closed all the same;
        `station audit report` can write it later)."""
        from station.audit.report import write_batch_report

        path = self.cfg.base_dir / "reports" / f"{batch_id}.html"
        try:
            path.parent.mkdir(exist_ok=True)
            write_batch_report(self.station.audit, batch_id, path)
        except (StationError, OSError):
            return ""
        return str(path)

    @property
    def in_flight(self) -> bool:
        return self.engine is not None

    def close(self) -> None:
        self.fixture.close()
        if self.station is not None:
            self.station.close()
            self.station = None
