"""The session's station, opened once for the CA tests (station_config: tests/conftest.py)."""
from __future__ import annotations

import pytest

from hsm.ca import CertificateAuthority, create_development_ca
from hsm.token import KeySpec
from station.boot import open_station
from station.profile import DeviceRef


@pytest.fixture(scope="session")
def station(station_config):
    opened = open_station(station_config)
    yield opened
    opened.close()


@pytest.fixture(scope="session")  # made once on the token: a second run of its set-up would be refused
def p384_ca(station):
    """A second CA on the session's token, P-384 root and issuing keys (signs with SHA-384)."""
    root, issuing = create_development_ca(
        station.token, root_label="p384-root", issuing_label="p384-issuing", key_spec=KeySpec.parse("ec-p384"),
        organization="Strength Test", country=None, root_cn="P-384 root", issuing_cn="P-384 issuing")
    return CertificateAuthority(token=station.token, issuing_label="p384-issuing", chain=[issuing, root])


_counter = iter(range(1, 10**9))


@pytest.fixture
def device():
    """A fresh device identity for each use."""
    n = next(_counter)
    return DeviceRef(device_id=f"{n:016X}", label=f"LBL{n:06d}", model="SIM-1")
