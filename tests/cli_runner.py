"""Run the real `station` command in a subprocess, as an operator or a script would."""
from __future__ import annotations

import os
import subprocess
import sys


def run_station(*args, cwd=None, env=None, input=None, timeout=120) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "station", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full_env, input=input, timeout=timeout)


def assert_clean_failure(result: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    """A refusal: the documented exit code, one line on stderr naming the reason, no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
