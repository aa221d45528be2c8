"""Entry point of the `station` command: global options, command registration, and the one
place where errors become exit codes (docs/cli.md). No command prints a traceback."""
from __future__ import annotations

import os
import sys

import click

from hsm.errors import HSMError
from station.errors import ExitCode, StationError
from station.cli.context import CliContext


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="station.toml to use (default: $STATION_CONFIG, then ./station.toml).")
@click.version_option(package_name="certificate-injection-station", prog_name="station")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Certificate injection station: HSM-backed identities for devices on the line.

    With no command, opens the operator terminal on the configured station."""
    ctx.obj = CliContext(config_path)
    if ctx.invoked_subcommand is None:
        from station.cli.run import open_operator_ui

        ctx.exit(open_operator_ui(ctx))


def _register() -> None:
    # One line per command module; each module owns its commands.
    from station.cli import commands  # noqa: F401  (imports every command module)

    for command in commands.ALL:
        cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        rc = cli.main(args=argv, prog_name="station", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("station: aborted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.USAGE)
    except (StationError, HSMError) as exc:
        click.echo(f"station: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("station: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except Exception as exc:  # a bug: one line for the operator, the traceback on request
        if os.environ.get("STATION_DEBUG"):
            raise
        click.echo(f"station: internal error ({type(exc).__name__}); rerun with STATION_DEBUG=1 for details",
                   err=True)
        sys.exit(ExitCode.INTERNAL)
    sys.exit(rc if isinstance(rc, int) else ExitCode.OK)
