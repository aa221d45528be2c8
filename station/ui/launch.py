"""Opening the operator terminal: on the configured station (`station`, `station run`) or on
the demo's embedded defaults (`station demo`). One factory for the CLI, the tests and the
benchmark: `build_app` returns the app without running it."""
from __future__ import annotations

import sys
from pathlib import Path

from station.config import StationConfig
from station.errors import ExitCode, UsageError
from station.operator.fixture import PortWatcher, SimulatedFixture, SlotFeeder
from station.operator.i18n import _, use_language
from station.operator.model import LineModel
from station.operator.scan import ScanRouter, SerialScanner
from station.operator.session import Session


def demo_hint() -> str:
    return _("Demo: scan your badge OP-DEMO, then a work order such as WO-1 "
             "(type each and press Enter, as a scanner would).")


def build_app(cfg: StationConfig, fixture: SlotFeeder, *, hint: str = "", driver_opts: dict | None = None,
              clock=None) -> "StationApp":
    use_language(cfg.ui.language)
    # Imported after the language is chosen: key descriptions in class-level bindings are
    # translated when the class is created.
    from station.ui.app import StationApp

    extra = {"clock": clock} if clock is not None else {}
    model = LineModel(fixture.slots, lock=cfg.line.lock, override_allowed=cfg.line.reprovision == "supervisor",
                      **extra)
    session = Session(cfg, fixture, publish=lambda event: None, driver_opts=driver_opts)
    scanner = None
    if cfg.scan.serial_port:
        port, baud = cfg.scan.serial_port, cfg.scan.serial_baud
        scanner = lambda on_scan: SerialScanner(port, baud, on_scan).start()  # noqa: E731
    return StationApp(model, ScanRouter(cfg.scan), session, hint=hint, token=cfg.hsm.token_label,
                      serial_scanner=scanner)


def demo_app(cfg: StationConfig, workdir: Path, *, slots: int = 8, devices: int = 16, keygen_ms: int = 300,
             baud: int = 115200, **fixture_opts) -> "StationApp":
    fixture = SimulatedFixture(workdir, slots=slots, devices=devices, keygen_ms=keygen_ms, baud=baud, **fixture_opts)
    return build_app(cfg, fixture, hint=demo_hint())


def station_app(cfg: StationConfig) -> "StationApp":
    if not cfg.line.ports:
        raise UsageError("no fixture slots: set the [line] ports table in the configuration "
                         "(the operator UI watches those ports for devices)")
    return build_app(cfg, PortWatcher(cfg.line.ports))


def on_a_terminal() -> bool:
    """The UI draws on stdout and reads keys from stdin: both must be a terminal."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def run_app(app: "StationApp") -> int:
    """Run the terminal until the operator quits; the exit code follows docs/cli.md."""
    app.run()
    model = app.model
    if model.audit_head:
        print(f"station: operator terminal closed; audit head {model.audit_head}")
    if not model.station_ready and model.station_error:
        print(f"station: {model.station_error}", file=sys.stderr)
        return ExitCode.ENVIRONMENT
    return ExitCode.OK
