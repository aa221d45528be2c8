"""Entry point of the `station` command: global options, command registration, and the one
place where errors become exit codes (docs/cli.md). No command prints a traceback."""
from __future__ import annotations

import importlib
import os
import sys

import click
from click.utils import make_default_short_help

from hsm.errors import HSMError
from station import __version__
from station.errors import ExitCode, StationError
from station.cli.commands import ALL, COMMANDS
from station.cli.context import CliContext
from station.text import printable


class LazyGroup(click.Group):
    """A click group whose commands (station/cli/commands.py) are imported when one is run,
    not up front; `--help` lists them from the table without importing any."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy if lazy is not None else {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in self.lazy:
            module, _, attribute = self.lazy[name][0].partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names), default=0)
        rows = []
        for name in names:
            if name in self.commands:
                if self.commands[name].hidden:
                    continue
                rows.append((name, self.commands[name].get_short_help_str(limit)))
            else:
                rows.append((name, make_default_short_help(self.lazy[name][1], limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]},
             invoke_without_command=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="station.toml to use (default: $STATION_CONFIG, then ./station.toml).")
# The version from the package itself: asking importlib.metadata scans every installed
# distribution and cost `station --version` 40-100 ms.
@click.version_option(version=__version__, prog_name="station")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Certificate injection station: HSM-backed identities for devices on the line.

    With no command, opens the operator terminal on the configured station."""
    ctx.obj = CliContext(config_path)
    if ctx.invoked_subcommand is None:
        from station.cli.run import open_operator_ui

        ctx.exit(open_operator_ui(ctx))


def _register() -> None:
    # Commands handed over already imported; the table's are loaded when used.
    for command in ALL:
        cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        rc = cli.main(args=argv, prog_name="station", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("station: aborted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except click.ClickException as exc:
        # Click repeats some of the operator's words raw (an unexpected extra argument); every
        # subclass builds its text from `message`.
        exc.message = printable(exc.message)
        exc.show()
        sys.exit(ExitCode.USAGE)
    except (StationError, HSMError) as exc:
        click.echo(f"station: {printable(str(exc))}", err=True)
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
