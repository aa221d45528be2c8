"""`station sim`: simulated devices on pseudo-terminals, for machines without hardware
(docs/simulator.md). Prints one port path per line once they listen, then serves until
SIGINT or SIGTERM."""
from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from station.errors import UsageError
from station.link.codec import MAX_FRAME, MIN_MTU
from station.sim.faults import parse_indexed_fault
from station.sim.pty_server import SimulatedLine


@click.command("sim")
@click.option("--devices", "count", type=click.IntRange(1, 10000), default=1, show_default=True,
              help="How many devices.")
@click.option("--store", type=click.Path(file_okay=False, path_type=Path), default=Path("sim-devices"),
              show_default=True, help="Folder holding each device's flash (one folder per device id).")
@click.option("--seed", help="Derive device ids from this instead of the store's own seed.")
@click.option("--baud", type=click.IntRange(min=1), default=115200, show_default=True,
              help="Line speed the devices emulate.")
@click.option("--keygen-ms", type=click.IntRange(min=0), default=300, show_default=True,
              help="Key-generation time the devices emulate.")
@click.option("--model", default="SIM-1", show_default=True, help="Model the devices report.")
@click.option("--mtu", type=click.IntRange(MIN_MTU, MAX_FRAME), default=MAX_FRAME, show_default=True,
              help="Longest frame the devices accept (announced in HELLO).")
@click.option("--compact", is_flag=True,
              help="Announce the compact extension (docs/protocol.md section 9); off: version 1 only.")
@click.option("--bauds", default="230400,460800,921600,2000000,4000000", show_default=True,
              help="With --compact: the rates the devices offer to switch to, comma-separated.")
@click.option("--fault", "faults", multiple=True, metavar="INDEX:SPEC",
              help="Fault for device INDEX (from 0), e.g. 2:stall@COMMIT; repeatable.")
def sim_command(count, store, seed, baud, keygen_ms, model, mtu, compact, bauds, faults):
    """Run simulated devices on pseudo-terminals; one port path per line on stdout."""
    try:
        rates = tuple(int(b) for b in bauds.split(",") if b)
    except ValueError:
        rates = ()
    if not rates or min(rates) < 1:
        raise UsageError(f"--bauds {bauds!r}: positive decimal rates, comma-separated")
    plan: dict[int, list] = {}
    for text in faults:
        try:
            index, spec = parse_indexed_fault(text)
        except ValueError as exc:
            raise UsageError(f"--fault: {exc}") from None
        if index >= count:
            raise UsageError(f"--fault {text!r}: devices are numbered 0..{count - 1}")
        plan.setdefault(index, []).append(spec)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with SimulatedLine(count, store, baud=baud, keygen_ms=keygen_ms, faults=plan, seed=seed,
                       model=model, mtu=mtu, compact=compact, bauds=rates) as line:
        for port in line.ports:
            click.echo(port)
        click.get_text_stream("stdout").flush()
        while not stop.wait(3600):
            pass
