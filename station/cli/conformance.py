"""`station conformance PORT`: run the device conformance suite (docs/conformance.md)."""
from __future__ import annotations

import click

from station.conformance import report
from station.conformance.cases import SUITE
from station.conformance.runner import Bench, CaseResult, run_cases
from station.errors import ExitCode
from station.link.transport import DEFAULT_BAUDRATE


@click.command("conformance")
@click.argument("port")
@click.option("--json", "as_json", is_flag=True,
              help="End the output with one JSON object holding every result.")
@click.option("--timeout-scale", type=click.FloatRange(min=0.01, max=100.0), default=1.0,
              show_default=True, help="Multiply every protocol timeout (slow boards: 2, 5).")
@click.option("--baud", type=click.IntRange(min=1), default=DEFAULT_BAUDRATE, show_default=True,
              help="Line speed of the port; the protocol timeouts add the line time at it.")
@click.option("--include-lock", is_flag=True,
              help="Also run the LOCK case. Irreversible: the board cannot be provisioned again.")
def conformance(port: str, as_json: bool, timeout_scale: float, baud: int,
                include_lock: bool) -> int:
    """Check the device on PORT (a path or a pyserial URL such as socket://host:4000)
    against the provisioning protocol.

    Exit status: 0 every case passed, 1 some case failed, 3 nothing could be tested (the
    port cannot be opened, or the board is locked).
    """
    def progress(result: CaseResult) -> None:
        click.echo(f"  {result.case}: {result.outcome.upper()}", err=True)

    bench = Bench(port, timeout_scale=timeout_scale, baud=baud)
    results = run_cases(bench, SUITE, include_irreversible=include_lock, on_result=progress)
    click.echo(report.table(results))
    if as_json:
        click.echo(report.as_json(port, results))
    return ExitCode.OK if all(r.passed for r in results) else ExitCode.REFUSED
