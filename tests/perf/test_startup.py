"""Start-up: `station --version` and `station --help` import no command module (they are
loaded when their command runs), the help they print is each command's own, and the version
is the installed package's."""
from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys

import click
import pytest

from station.cli.commands import COMMANDS
from tests.cli_runner import run_station

PROBE = """
import json, sys
from station.cli.main import main
try:
    main([{arg!r}])
except SystemExit:
    pass
heavy = ("station.cli.", "station.audit", "station.engine", "hsm.ca", "sqlite_utils",
         "cryptography", "pkcs11", "serial")
print(json.dumps(sorted(m for m in sys.modules if m.startswith(heavy))), file=sys.stderr)
"""


@pytest.mark.parametrize("arg", ["--version", "--help"])
def test_version_and_help_import_no_command_module(arg):
    out = subprocess.run([sys.executable, "-c", PROBE.format(arg=arg)], capture_output=True,
                         text=True, timeout=60)
    loaded = json.loads(out.stderr.strip().splitlines()[-1])
    assert loaded == ["station.cli.commands", "station.cli.context", "station.cli.main"]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_table_names_each_command_and_shows_its_own_help(name):
    target, shown = COMMANDS[name]
    module, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module), attribute)
    assert isinstance(command, click.Command) and command.name == name
    assert command.get_short_help_str(limit=10**6) == shown


def test_help_lists_every_command_and_a_lazy_command_still_runs(tmp_path):
    listed = run_station("--help", cwd=tmp_path)
    assert listed.returncode == 0
    commands = listed.stdout.split("Commands:")[1].split()
    assert all(name in commands for name in COMMANDS)
    result = run_station("bench", "manifest", "--lines", "10", "--json", cwd=tmp_path)
    assert result.returncode == 0 and json.loads(result.stdout.splitlines()[-1])["lines"] == 10


def test_version_is_the_installed_package_version():
    result = run_station("--version")
    version = importlib.metadata.version("certificate-injection-station")
    assert result.returncode == 0 and result.stdout.strip() == f"station, version {version}"
