"""The station and its simulated devices as separate real processes, as on a line PC."""
from __future__ import annotations

import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from tests.cli_runner import run_station


def station_dir(workdir: Path) -> Path:
    """A fresh station whose labels are the device ids (no manifest needed); its config path."""
    assert run_station("init", "--workdir", workdir).returncode == 0
    config = workdir / "station.toml"
    config.write_text(config.read_text().replace('label_source = "manifest"', 'label_source = "device-id"'))
    return config


def station_proc(*args, cwd) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "station", *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@contextmanager
def simulated_devices(workdir: Path, count: int, keygen_ms: int = 20):
    """`station sim` in its own process, its flash in workdir/devices; yields the port paths."""
    sim = station_proc("sim", "--devices", count, "--store", workdir / "devices", "--keygen-ms", keygen_ms,
                       cwd=workdir)
    try:
        ports = [sim.stdout.readline().strip() for _ in range(count)]
        assert all(p.startswith("/dev/") for p in ports), ports
        yield ports
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(10)
