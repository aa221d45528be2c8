"""The line's baud rate is one setting (`[line] baud`, default 115200): the station opens
every port at it, and every timeout that depends on the line speed is computed from it."""
from __future__ import annotations

import os
import shutil
import termios
from pathlib import Path

import pytest

from station.config import LineConfig, load_config
from station.drivers.cip import CipDriver
from station.errors import ConfigError
from station.link.codec import MAX_FRAME, Verb, answer_timeout, line_seconds
from station.link.transport import WRITE_MARGIN_S, SerialTransport
from station.sim.pty_server import SimulatedLine
from tests.engine.processes import station_dir
from tests.cli_runner import run_station

EXAMPLE = Path(__file__).resolve().parents[2] / "fixtures" / "station.example.toml"


def _speed_of(path: str) -> int:
    """The speed the terminal at `path` is set to (the last opener's setting stays)."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        return termios.tcgetattr(fd)[5]
    finally:
        os.close(fd)


def _example_with(tmp_path: Path, line: str) -> Path:
    config = tmp_path / "fixtures" / "station.toml"
    config.parent.mkdir()
    shutil.copy(EXAMPLE, config)
    config.write_text(config.read_text().replace("[line]\n", f"[line]\n{line}\n", 1)
                      .replace("\nbaud = 115200", "\n# baud moved up"))
    return config


def test_baud_defaults_to_115200_and_is_read_from_the_line_table(tmp_path):
    assert LineConfig().baud == 115200
    assert load_config(EXAMPLE).line.baud == 115200
    assert load_config(_example_with(tmp_path, "baud = 9600")).line.baud == 9600


@pytest.mark.parametrize("value", ["0", "-9600", '"fast"', "9600.5"])
def test_a_bad_baud_names_the_file_and_key(tmp_path, value):
    config = _example_with(tmp_path, f"baud = {value}")
    with pytest.raises(ConfigError, match=r"station\.toml: \[line\] baud: expected a positive integer"):
        load_config(config)


def test_timeouts_that_depend_on_the_line_speed_are_computed_from_it():
    with SerialTransport("loop://", baudrate=1200) as slow:
        # A 512-byte frame takes 4.3 s on the wire at 1200 baud: a fixed 2 s write timeout
        # would call a healthy slow line a stopped peer.
        assert slow.write_timeout == pytest.approx(WRITE_MARGIN_S + line_seconds(MAX_FRAME, 1200))
        session = CipDriver.open("loop://", baudrate=1200).session
        assert session.timeout_for(Verb.HELLO, 20) == pytest.approx(
            answer_timeout(Verb.HELLO, 1200, 20))
        assert session.timeout_for(Verb.HELLO, 20) > answer_timeout(Verb.HELLO, 115200, 20) + 4


def test_station_run_opens_the_ports_at_the_configured_baud(tmp_path):
    config = station_dir(tmp_path)
    with SimulatedLine(1, tmp_path / "devices", baud=9600, keygen_ms=10) as line:
        port = line.ports[0]
        before = _speed_of(port)
        config.write_text(config.read_text().replace("[line]\n", "[line]\nbaud = 9600\n", 1))
        result = run_station("run", "--headless", "--batch", "WO-BAUD", "--model", "SIM-1",
                             "--port", port, cwd=tmp_path)
        after = _speed_of(port)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout
    assert (before, after) == (termios.B38400, termios.B9600)
