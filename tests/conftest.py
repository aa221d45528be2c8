"""Shared fixtures. The autouse fixture keeps a developer's own configuration and HSM out
of every test: no test reads ~/.config, /etc/softhsm or the current directory's station.toml."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for var in ("STATION_CONFIG", "STATION_PIN", "STATION_PIN_FILE", "SOFTHSM2_CONF"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(home)
    yield
