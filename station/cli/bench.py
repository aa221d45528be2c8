"""`station bench ...`: benchmarks (figures are recorded in docs/performance.md)."""
from __future__ import annotations

import json

import click

from station.benchmark import bench_issue


@click.group("bench")
def bench_group() -> None:
    """Benchmarks."""


@bench_group.command("issue")
@click.option("--count", default=2000, show_default=True, type=click.IntRange(10, 10**6), help="Certificates to issue for the in-memory figure.")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64), help="Issuing threads for the threaded figure.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object on the last line.")
def bench_issue_command(count: int, threads: int, as_json: bool) -> None:
    """Raw PKCS#11 signs/s and full issuances/s, on a throwaway SoftHSM2 station."""
    figures = bench_issue(count=count, threads=threads, progress=lambda m: click.echo(f"... {m}", err=True))
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
