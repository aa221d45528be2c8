"""One real development station (SoftHSM2 token, CA, SQLite audit) per test session.

SoftHSM2 reads its configuration only when the library is initialised, so all in-process
tests share this station; tests that need a station of their own run the CLI in a subprocess.
"""
from __future__ import annotations

import pytest

from station.boot import open_station
from station.config import load_config
from station.profile import DeviceRef
from station.workdir import init_station


@pytest.fixture(scope="session")
def station_config(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("station")
    return load_config(init_station(workdir, warn=lambda m: None))


@pytest.fixture(scope="session")
def station(station_config):
    opened = open_station(station_config)
    yield opened
    opened.close()


_counter = iter(range(1, 10**9))


@pytest.fixture
def device():
    """A fresh device identity for each use."""
    n = next(_counter)
    return DeviceRef(device_id=f"{n:016X}", label=f"LBL{n:06d}", model="SIM-1")
