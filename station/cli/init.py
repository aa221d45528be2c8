"""`station init`: create a development station in a work directory."""
from __future__ import annotations

from pathlib import Path

import click

from station.errors import EnvironmentProblem
from station.workdir import init_station


@click.command("init")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Directory to create the station in.")
@click.option("--force", is_flag=True, help="Move an existing station in DIR aside and create a new CA.")
@click.option("--station-id", default="station-1", show_default=True, help="This station's id in the audit: 1-32 letters, digits, '.', '_', '-'.")
@click.option("--organization", default="Example Devices Ltd", show_default=True, help="O of the CA and devices.")
@click.option("--key-type", type=click.Choice(["ec-p256", "ec-p384", "rsa-3072"]), default="ec-p256",
              show_default=True, help="CA key type.")
def init_command(workdir: Path, force: bool, station_id: str, organization: str, key_type: str) -> None:
    """Create a working development station: private SoftHSM2 token, CA keys, station.toml."""
    try:
        config = init_station(workdir, force=force, station_id=station_id, organization=organization,
                              key_type=key_type, warn=lambda msg: click.secho(msg, err=True, fg="red", bold=True))
    except OSError as exc:
        raise EnvironmentProblem(f"cannot create the station in {workdir}: "
                                 f"{exc.strerror or exc} ({exc.filename or workdir})") from None
    click.echo(f"station created: {config}")
    click.echo(f"use it with: station --config {config} ca show")
