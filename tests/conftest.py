"""Shared fixtures.

SoftHSM2 reads its configuration only when the library is initialised, so every in-process
test shares one development station (`station_config`); tests that need a station of their
own run the CLI in a subprocess.

The autouse fixture keeps a developer's own configuration and HSM out of every test: no test
reads ~/.config, /etc/softhsm or the current directory's station.toml."""
from __future__ import annotations

import os

import pytest
from hypothesis import settings

# Property tests judge behaviour, not speed: on a loaded 2-core CI machine a GC pause must not
# turn into a DeadlineExceeded failure. Explicit @settings elsewhere inherit this.
settings.register_profile("station", deadline=None)
settings.load_profile("station")


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for var in ("STATION_CONFIG", "STATION_PIN", "STATION_PIN_FILE", "SOFTHSM2_CONF"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(home)
    yield


@pytest.fixture(scope="session")
def station_config(tmp_path_factory):
    """One real development station (SoftHSM2 token, CA keys, config) for the whole session."""
    from station.config import load_config
    from station.workdir import init_station

    workdir = tmp_path_factory.mktemp("station")
    return load_config(init_station(workdir, warn=lambda m: None))
