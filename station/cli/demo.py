"""`station demo`: the operator terminal on embedded defaults (simulated devices, a local
development station); with --headless, or when not on a terminal, one batch run headless
(exit 0 if all passed)."""
from __future__ import annotations

from pathlib import Path

import click

from station.cli.run import report
from station.demo import prepare_demo, run_demo


@click.command("demo")
@click.option("--headless", is_flag=True, help="Run one batch without the operator terminal (implied when "
                                                "stdin/stdout are not a terminal).")
@click.option("--devices", default=16, show_default=True, type=click.IntRange(1, 10000), help="Simulated devices.")
@click.option("--slots", default=8, show_default=True, type=click.IntRange(1, 1024), help="Fixture slots.")
@click.option("--workdir", default=Path("station-demo"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Station work directory.")
@click.option("--keygen-ms", default=300, show_default=True, type=click.IntRange(0, 60000),
              help="Simulated key-generation time.")
@click.option("--baud", default=115200, show_default=True, type=click.IntRange(1200, 4000000),
              help="Simulated line speed.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on the last line.")
@click.pass_context
def demo_command(ctx, headless, devices, slots, workdir, keygen_ms, baud, as_json):
    """Run the whole product on embedded defaults: SoftHSM2 token, simulated devices, local SQLite."""
    if not headless:
        from station.ui.launch import demo_app, on_a_terminal, run_app

        if on_a_terminal():
            cfg = prepare_demo(workdir, say=lambda m: click.echo(m, err=True))
            ctx.exit(run_app(demo_app(cfg, workdir, slots=slots, devices=devices, keygen_ms=keygen_ms, baud=baud)))
        click.echo("station: not a terminal: running the demo headless (station demo --headless)", err=True)
    summary = run_demo(workdir, devices=devices, slots=slots, keygen_ms=keygen_ms, baud=baud,
                       say=lambda m: click.echo(m, err=True))
    ctx.exit(report(summary, as_json))
