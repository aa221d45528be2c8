"""The session's station, opened once for the CA tests (station_config: tests/conftest.py)."""
from __future__ import annotations

import pytest

from station.boot import open_station
from station.profile import DeviceRef


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
