"""Discovery tests: real libudev and pyudev over umockdev's emulated USB devices (Debian
`umockdev`, `gir1.2-umockdev-1.0`, installed by bootstrap.py), never a mocked pyudev."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
EXAMPLE_CONFIG = FIXTURES / "station.example.toml"
# The whole fixture line: the controller first (every device hangs off it), then one device
# per file (umockdev refuses a device described twice).
LINE = ["usb-controller", "usb-nordic-slot1", "usb-espressif-slot2", "usb-ftdi-console", "usb-ch340-unmapped",
        "usb-cp210x-unmapped"]


def fixture_file(name: str) -> Path:
    return FIXTURES / f"{name}.umockdev"


def tty_properties(name: str) -> dict[str, str]:
    """The udev properties of the tty device a fixture describes (its first record)."""
    first = fixture_file(name).read_text().split("\n\n", 1)[0]
    return dict(line[3:].split("=", 1) for line in first.splitlines() if line.startswith("E: "))


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        # Not a skip: `python3 bootstrap.py pytest` installs it, so its absence is a broken set-up.
        pytest.fail(f"{tool} is missing: run the suite through `python3 bootstrap.py pytest`, which installs it")
    return path


@pytest.fixture
def umockdev_run():
    """The command prefix that runs a program against the whole fixture line."""
    prefix = [require("umockdev-run")]
    for name in LINE:
        prefix += ["-d", str(fixture_file(name))]
    return prefix + ["--"]
