"""`station run`: the operator terminal on the configured line, or with --headless a batch
run without a UI."""
from __future__ import annotations

from pathlib import Path

import click

from station.cli.params import Identifier
from station.config import load_config
from station.errors import ExitCode, UsageError
from station.headless import run_batch
from station.identifiers import BATCH_ID, MODEL, OPERATOR_ID, SLOT
from station.text import shown


def parse_ports(values: tuple[str, ...]) -> dict[str, list[str]]:
    """`[SLOT=]PORT` values -> slot -> ports in order. Unnamed ports get slots S1, S2, ..."""
    slots: dict[str, list[str]] = {}
    for position, value in enumerate(values, start=1):
        slot, sep, port = value.partition("=")
        if not sep or "://" in slot:
            slot, port = f"S{position}", value
        if not port:
            raise UsageError(f"--port {shown(value)}: expected [SLOT=]PORT")
        if problem := SLOT.problem(slot):
            raise UsageError(f"--port {shown(value)}: {problem}")
        slots.setdefault(slot, []).append(port)
    return slots


def configured_slots(ports: dict[str, str]) -> dict[str, list[str]]:
    """The [line] ports table as slot -> [port], every slot name checked."""
    for slot in ports:
        if problem := SLOT.problem(slot):
            raise UsageError(f"[line] ports: {problem}")
    return {slot: [port] for slot, port in ports.items()}


def report(summary, as_json: bool) -> int:
    """Print the summary line (or JSON) and return the run's exit code."""
    click.echo(summary.json() if as_json else summary.line())
    if summary.halted:
        return ExitCode.ENVIRONMENT
    if summary.stopped:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if summary.failed == 0 and summary.passed > 0 else ExitCode.REFUSED


def open_operator_ui(ctx) -> int:
    """`station` and `station run` without --headless: the operator terminal (docs/ui.md)."""
    from station.ui.launch import on_a_terminal, run_app, station_app

    if not on_a_terminal():
        raise UsageError("the operator terminal needs a terminal; for scripts use `station run --headless ...`")
    return run_app(station_app(load_config(ctx.obj.config_path())))


HEADLESS_ONLY = ("batch_id", "model", "manifest", "expected", "ports", "supervisor_override", "discover",
                 "as_json")


@click.command("run")
@click.option("--headless", is_flag=True, help="Run one batch without the operator terminal (scripts, CI).")
@click.option("--batch", "batch_id", type=Identifier(BATCH_ID), help="Work order id (--headless; required there).")
@click.option("--model", type=Identifier(MODEL), help="The product/model the work order is for (default: [line] model).")
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV of expected devices (columns: label[, device_id]).")
@click.option("--operator", default="headless", show_default=True, type=Identifier(OPERATOR_ID),
              help="Operator id recorded in the audit.")
@click.option("--expected", type=click.IntRange(min=1), help="Expected device count (1 or more).")
@click.option("--port", "ports", multiple=True,
              help="[SLOT=]PORT of a device (path or pyserial URL); repeat; a slot may be named twice "
                   "(default: the [line] ports table).")
@click.option("--supervisor-override", metavar="ID", type=Identifier(OPERATOR_ID),
              help="Supervisor approving re-provisioning of already provisioned devices in this run.")
@click.option("--discover", is_flag=True,
              help="Take devices as they are plugged into the [discovery] slots (udev; --headless), until "
                   "--expected devices passed or SIGINT/SIGTERM.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on the last line.")
@click.pass_context
def run_command(ctx, headless, batch_id, model, manifest, operator, expected, ports, supervisor_override, discover,
                as_json):
    """Open the operator terminal on the configured line; with --headless, provision the devices
    on the given ports as one batch: one line per device, then a summary."""
    if not headless:
        given = [p.opts[0] for p in ctx.command.params
                 if p.name in HEADLESS_ONLY and ctx.params.get(p.name) not in (None, False, ())]
        if given:
            raise UsageError(f"{given[0]} is for --headless runs; the operator terminal takes work orders by scan")
        ctx.exit(open_operator_ui(ctx))
    if not batch_id:
        raise UsageError("--headless needs --batch WORK_ORDER")
    cfg = load_config(ctx.obj.config_path())
    if cfg.line.label_source == "manifest" and manifest is None:
        raise UsageError("[line] label_source is \"manifest\": give --manifest FILE")
    if cfg.line.label_source == "scan":
        raise UsageError("[line] label_source is \"scan\": headless runs cannot scan labels; use a manifest")
    model = model or cfg.line.model
    if not model:
        raise UsageError("no model: give --model, or set [line] model in the configuration")
    if problem := MODEL.problem(model):
        raise UsageError(f"[line] model: {problem}")
    source = None
    if discover:
        if ports:
            raise UsageError("--discover takes devices from the [discovery] slots; give no --port")
        if not cfg.discovery.slots or not cfg.discovery.allow:
            raise UsageError("--discover needs [discovery] allow and slots in the configuration "
                             "(`station slots learn` writes the slots)")
        from station.discovery.udev import UdevSource

        source = UdevSource(cfg.discovery, say=lambda message: click.echo(f"station: {message}", err=True))
        slots = {}
    else:
        slots = parse_ports(ports) if ports else configured_slots(cfg.line.ports)
        if not slots:
            raise UsageError("no ports: give --port [SLOT=]PORT, --discover, or set the [line] ports table in "
                             "the configuration")
    summary = run_batch(cfg, batch_id=batch_id, model=model, operator=operator, slots=slots,
                        manifest=manifest, expected=expected, supervisor_override=supervisor_override,
                        source=source)
    ctx.exit(report(summary, as_json))
