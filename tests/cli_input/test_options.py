"""Bad identifiers and counts on the command line: exit 2 naming the option, before anything
is opened; whatever the operator typed is echoed escaped, never raw to the terminal."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.cli_runner import assert_clean_failure, run_station

ANSI_RED = "\x1b[31m"


def assert_usage_error(result, *fragments: str) -> None:
    """Click's usage error: exit 2, no traceback, `Error: ...` naming the problem, no raw
    control character anywhere in the output."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "\x1b" not in output, output
    error = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1, result.stderr
    for fragment in fragments:
        assert fragment in error[0], (fragment, error[0])


def _run(workdir, tmp_path, *options):
    manifest = tmp_path / "m.csv"
    manifest.write_text("device_id,label\nAA01,L1\n")
    return run_station("run", "--headless", "--model", "SIM-1", "--manifest", manifest,
                       "--port", "/dev/ttyNOPE9", *options, cwd=workdir)


@pytest.mark.parametrize("options,fragments", [
    (["--batch", ""], ["'--batch'", "batch id is empty"]),
    (["--batch", "WO 1"], ["'--batch'", "batch id 'WO 1' is not 1-64 characters"]),
    (["--batch", "-WO"], ["'--batch'", "starting with a letter or digit"]),
    (["--batch", f"{ANSI_RED}WO"], ["'--batch'", r"batch id '\x1b[31mWO' is not"]),
    (["--batch", "WO", "--operator", "op\nFAIL forged line"], ["'--operator'", r"'op\nFAIL forged line'"]),
    (["--batch", "WO", "--supervisor-override", "a b"], ["'--supervisor-override'", "operator id 'a b'"]),
    (["--batch", "WO", "--model", "SIM 1"], ["'--model'", "model 'SIM 1' is not"]),
    (["--batch", "WO", "--expected", "0"], ["'--expected'", "0 is not in the range x>=1"]),
    (["--batch", "WO", "--expected", "-5"], ["'--expected'", "-5 is not in the range x>=1"]),
])
def test_bad_run_options_are_usage_errors(workdir, tmp_path, options, fragments):
    assert_usage_error(_run(workdir, tmp_path, *options), *fragments)


def test_a_bad_slot_name_is_a_usage_error(workdir, tmp_path):
    result = _run(workdir, tmp_path, "--batch", "WO", "--port", f"S{ANSI_RED}1=/dev/ttyNOPE8")
    assert_clean_failure(result, 2, r"--port 'S\x1b[31m1=/dev/ttyNOPE8': slot name 'S\x1b[31m1' is not")
    assert "\x1b" not in result.stderr


def _on_a_terminal(*args, cwd) -> tuple[int, str]:
    """Run `station` with its output on a real pseudo-terminal: off a terminal, click strips
    ANSI sequences itself, which would hide a raw echo from the test."""
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "station", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave)
    os.close(slave)
    output = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    return proc.wait(30), output.decode(errors="replace")


@pytest.mark.parametrize("args,shown", [
    (["run", "--headless", "--batch", "WO", f"ex{ANSI_RED}tra"], r"unexpected extra argument (ex\x1b[31mtra)"),
    (["--config", f"{ANSI_RED}nope.toml", "ca", "show"], r"station: \x1b[31mnope.toml: configuration file not found"),
])
def test_what_the_operator_typed_reaches_the_terminal_escaped(workdir, args, shown):
    code, output = _on_a_terminal(*args, cwd=workdir)
    assert code == 2 and shown in output and "\x1b" not in output, output


@pytest.mark.parametrize("option,value,fragment", [
    ("--label", "L 1", "label 'L 1' is not 1-64 characters of A-Z a-z 0-9 : -"),
    ("--device-id", "AA01\n", r"device id 'AA01\n' is not"),
    ("--model", "", "model is empty"),
])
def test_bad_issue_identifiers_are_usage_errors_not_refusals(workdir, option, value, fragment):
    args = {"--device-id": "AA01", "--label": "L1", "--model": "M", option: value}
    result = run_station("issue", "--print-subject", *[x for pair in args.items() for x in pair], cwd=workdir)
    assert_usage_error(result, f"'{option}'", fragment)
