"""One development station for every test in this package (`station init` once), and
configurations derived from it that differ in one [hsm] key."""
from __future__ import annotations

from pathlib import Path

import json

import pytest

from tests.cli_runner import run_station


@pytest.fixture(scope="package")
def workdir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("station")
    result = run_station("init", "--workdir", path)
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def config_with_pin_file(workdir, tmp_path):
    """station.toml of `workdir` with [hsm] pin_file pointing elsewhere; returns its path."""
    def write(pin_file: Path) -> Path:
        text = (workdir / "station.toml").read_text()
        # A JSON string is a valid TOML basic string for any path.
        text = text.replace('pin_file = "hsm/user.pin"', f"pin_file = {json.dumps(str(pin_file))}")
        # Next to the original, so its relative paths (token, chain, database) still resolve.
        config = workdir / f"{tmp_path.name}.toml"
        config.write_text(text)
        return config
    return write
