"""`station bench ...`: benchmarks (figures are recorded in docs/performance.md)."""
from __future__ import annotations

import json

import click

from station.benchmark import bench_issue, bench_manifest


@click.group("bench")
def bench_group() -> None:
    """Benchmarks."""


@bench_group.command("issue")
@click.option("--count", default=2000, show_default=True, type=click.IntRange(10, 10**6), help="Certificates to issue for the in-memory figure.")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64), help="Issuing threads for the threaded figure.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object on the last line.")
def bench_issue_command(count: int, threads: int, as_json: bool) -> None:
    """Raw PKCS#11 signs/s and full issuances/s, on a throwaway SoftHSM2 station."""
    figures = bench_issue(count=count, threads=threads, progress=_progress)
    _print_figures(figures, as_json)


@bench_group.command("manifest")
@click.option("--lines", default=1_000_000, show_default=True, type=click.IntRange(1, 10**8),
              help="Devices in the generated manifest.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object on the last line.")
def bench_manifest_command(lines: int, as_json: bool) -> None:
    """Seconds to load (parse, validate, check for duplicates) a generated batch manifest."""
    _print_figures(bench_manifest(lines=lines, progress=_progress), as_json)


@bench_group.command("export")
@click.option("--devices", default=10_000, show_default=True, type=click.IntRange(1, 10**6),
              help="Devices in the generated batch.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object on the last line.")
def bench_export_command(devices: int, as_json: bool) -> None:
    """Seconds and peak memory of the CSV, JSON Lines and bundle exports of one large batch."""
    from station.audit.export_bench import bench_export

    _print_figures(bench_export(devices=devices, progress=_progress), as_json)


@bench_group.command("audit-write")
@click.option("--events", default=20_000, show_default=True, type=click.IntRange(1, 10**8),
              help="Events to log.")
@click.option("--writers", default=16, show_default=True, type=click.IntRange(1, 1024),
              help="Threads logging at once (each waits for its own record to be durable).")
@click.option("--dir", "directory", type=click.Path(file_okay=False, exists=True), default=None,
              help="Put the throwaway database here (default: the temporary directory).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object on the last line.")
def bench_audit_write_command(events: int, writers: int, directory: str | None,
                              as_json: bool) -> None:
    """Durable audit events per second with concurrent writers (group commit)."""
    from station.benchmark_audit import bench_audit_write

    _print_figures(bench_audit_write(events=events, writers=writers, directory=directory,
                                     progress=_progress), as_json)


@bench_group.command("audit")
@click.option("--events", default=200_000, show_default=True, type=click.IntRange(1, 10**8),
              help="Events in the database that is built and then verified.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, exists=True), default=None,
              help="Put the throwaway database here (default: the temporary directory).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object on the last line.")
def bench_audit_command(events: int, directory: str | None, as_json: bool) -> None:
    """Build an audit database of N events through the real writer and time `audit verify`."""
    from station.benchmark_audit import bench_audit_verify

    _print_figures(bench_audit_verify(events=events, directory=directory, progress=_progress),
                   as_json)


@bench_group.command("line")
@click.option("--slots", default=16, show_default=True, type=click.IntRange(1, 1024), help="Fixture slots.")
@click.option("--devices", default=64, show_default=True, type=click.IntRange(1, 10000),
              help="Simulated devices to provision.")
@click.option("--baud", default=115200, show_default=True, type=click.IntRange(1200, 4000000),
              help="Line speed the simulated devices pace both directions at.")
@click.option("--keygen-ms", default=300, show_default=True, type=click.IntRange(0, 60000),
              help="Simulated on-device key-generation time.")
@click.option("--compact", is_flag=True,
              help="Devices announce the compact extension (docs/protocol.md section 9).")
@click.option("--fast-baud", default=0, show_default=True, type=click.IntRange(0, 4000000),
              help="With --compact: switch each device's line up to this rate (0: stay at --baud).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object on the last line.")
def bench_line_command(slots: int, devices: int, baud: int, keygen_ms: int, compact: bool,
                       fast_baud: int, as_json: bool) -> None:
    """The whole line on a throwaway station against the wire bound (real ptys, token, audit)."""
    from station.benchmark_line import bench_line

    _print_figures(bench_line(slots=slots, devices=devices, baud=baud, keygen_ms=keygen_ms,
                              compact=compact, fast_baud=fast_baud, progress=_progress), as_json)


def _progress(message: str) -> None:
    click.echo(f"... {message}", err=True)


def _print_figures(figures: dict, as_json: bool) -> None:
    for key, value in figures.items():
        click.echo(f"{key:32} {value}")
    if as_json:
        click.echo(json.dumps(figures, sort_keys=True))


@bench_group.command("ui")
@click.option("--runs", default=3, show_default=True, type=click.IntRange(1, 20), help="Runs of each measurement.")
@click.option("--devices", default=32, show_default=True, type=click.IntRange(1, 256), help="Demo devices per line run.")
@click.option("--slots", default=8, show_default=True, type=click.IntRange(1, 64), help="Fixture slots.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object on the last line.")
def bench_ui_command(runs: int, devices: int, slots: int, as_json: bool) -> None:
    """Operator UI: cold start to the first screen, and devices/h with the UI against headless."""
    from station.ui.bench import bench_ui  # the UI benchmark needs Textual; the core does not

    figures = bench_ui(runs=runs, devices=devices, slots=slots, progress=lambda m: click.echo(f"... {m}", err=True))
    for key, value in figures.items():
        click.echo(f"{key:34} {value}")
    if as_json:
        click.echo(json.dumps(figures, sort_keys=True))
