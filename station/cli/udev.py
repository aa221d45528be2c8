"""`station udev rules|install`: the udev rules generated from [discovery] (allowlist, serial
patterns, slot map), printed, or written and reloaded (udev/README.md)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import click

from station.atomic_file import atomic_output
from station.config import load_config
from station.discovery.rules import RULES_DIR, RULES_NAME, render_rules
from station.discovery.udev import udev_daemon_running
from station.errors import EnvironmentProblem


@click.group("udev")
def udev_group() -> None:
    """udev rules for the allowlisted devices (ModemManager off, slot symlinks, group)."""


@udev_group.command("rules")
@click.pass_context
def udev_rules(ctx: click.Context) -> None:
    """Print the rules file generated from the configuration."""
    path = ctx.obj.config_path()
    click.echo(render_rules(load_config(path).discovery, source=path.name), nl=False)


@udev_group.command("install")
@click.option("--rules-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(RULES_DIR),
              show_default=True, help="Where the rules file goes.")
@click.option("--no-reload", is_flag=True, help="Only write the file; do not ask udevd to reload and re-run it.")
@click.pass_context
def udev_install(ctx: click.Context, rules_dir: Path, no_reload: bool) -> None:
    """Write the rules file, then have udevd reload its rules and re-run them on tty devices."""
    path = ctx.obj.config_path()
    text = render_rules(load_config(path).discovery, source=path.name)
    target = rules_dir / RULES_NAME
    try:
        rules_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write {target}: {exc.strerror} (installing rules needs root)") from None
    try:
        with atomic_output(target) as out:  # udevd never reads half a file
            out.write(text)
    except EnvironmentProblem as exc:
        raise EnvironmentProblem(f"{exc} (installing rules needs root)") from None
    click.echo(f"wrote {target}")
    if no_reload:
        return
    if not udev_daemon_running() or not shutil.which("udevadm"):
        click.echo("no udev daemon is running: the rules apply when it starts (or at the next boot)")
        return
    for command in (["udevadm", "control", "--reload"],
                    ["udevadm", "trigger", "--action=change", "--subsystem-match=tty"]):
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise EnvironmentProblem(f"`{' '.join(command)}` failed: {result.stderr.strip() or result.returncode}")
    click.echo("udev rules reloaded and applied to the tty devices present")
