"""`station bench line`: the whole line against the wire bound.

A throwaway development station (its own SoftHSM2 token and durable audit database in a
temporary directory) provisions N simulated devices through S slots: real pseudo-terminals,
the full pipeline, the real token. The simulator runs in its own process (`station sim`), as
real devices are outside the station, so the station's CPU figure is the station's alone.

Figures (per device unless said otherwise):
  bytes_to_device, bytes_from_device, requests   counted by the station's transport
  bound_s          (bytes to + from the device) x 10 / baud (each byte at the rate it went at,
                   after a LINE switch the fast one) + key generation: what the UART allows a
                   device, however fast the station
  keygen_share     key generation / a device's measured time (mean): how much of it is the
                   device's own work (issue 10: >= 0.9 with a fast line)
  keygen_share_of_bound  key generation / bound_s: the same share if the station added nothing
                   (what the line itself leaves to the device's own work)
  efficiency       the line's bound (ceil(N / S) x the mean bound) / the measured elapsed time
  station_added_ms device time - its own bound (p50, p99): what the station adds
  step_ms          per-step latency p50/p95/p99, from the engine's StepFinished events
  cpu_ms_per_device  the station process's CPU (user + system) for the run, / devices
  peak_rss_mib, peak_open_descriptors   of the station process during the run
"""
from __future__ import annotations

import io
import math
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from station.benchmark import machine_and_time
from station.config import load_config
from station.engine.batch import Manifest
from station.engine.events import DeviceFailed, DevicePassed, StepFinished
from station.errors import EnvironmentProblem
from station.headless import run_batch
from station.link.transport import SerialTransport
from station.sim.device import derive_device_id
from station.workdir import init_station

MODEL = "SIM-1"


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of `values` (0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


class _Recorder:
    """Engine observer: per-step durations and per-device outcomes."""

    def __init__(self):
        self.steps: dict[str, list[float]] = {}
        self.passed: dict[str, float] = {}  # device id -> seconds
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, event) -> None:
        with self._lock:
            if isinstance(event, StepFinished):
                self.steps.setdefault(event.step, []).append(event.duration_s)
            elif isinstance(event, DevicePassed):
                self.passed[event.device_id] = event.duration_s
            elif isinstance(event, DeviceFailed):
                self.failures.append(f"{event.device_id}: {event.step}: {event.reason}")


class _DescriptorWatch:
    """Samples this process's open descriptors every 0.2 s; `peak` is the most seen."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-fd-watch")

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, len(os.listdir("/proc/self/fd")))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _start_simulator(count: int, store: Path, seed: str, baud: int, keygen_ms: int,
                     compact: bool = False):
    """`station sim` in its own process; returns (process, port paths in device order)."""
    sim = subprocess.Popen(
        [sys.executable, "-m", "station", "sim", "--devices", str(count), "--store", str(store),
         "--seed", seed, "--baud", str(baud), "--keygen-ms", str(keygen_ms), "--model", MODEL,
         *(["--compact"] if compact else [])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ports = []
    for _ in range(count):
        line = sim.stdout.readline()
        if not line:
            sim.wait()
            raise EnvironmentProblem(f"the simulator stopped: {sim.stderr.read().strip()}")
        ports.append(line.strip())
    return sim, ports


def bench_line(slots: int = 16, devices: int = 64, baud: int = 115200, keygen_ms: int = 300,
               compact: bool = False, fast_baud: int = 0, progress=lambda msg: None) -> dict:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="station-bench-") as tmp:
        tmp = Path(tmp)
        progress("creating a throwaway station with its own SoftHSM2 token")
        cfg = load_config(init_station(tmp / "station", station_id="bench-line",
                                       warn=lambda m: None))
        seed = secrets.token_hex(4)
        progress(f"starting {devices} simulated devices ({baud} baud, {keygen_ms} ms keygen)")
        # The devices' flash in memory when the machine has /dev/shm: a simulated device
        # fsyncs its flash as a real one writes it, and on this disk that is tens of ms a
        # device that the device spends, not the station.
        flash = tempfile.TemporaryDirectory(prefix="station-bench-flash-",
                                            dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        sim, ports = _start_simulator(devices, Path(flash.name), seed, baud, keygen_ms, compact)
        try:
            ids = [derive_device_id(seed, i) for i in range(devices)]
            port_of = dict(zip(ids, ports))
            manifest = tmp / "manifest.csv"
            Manifest.write(manifest, ((d, f"BENCH-{i:05d}") for i, d in enumerate(ids)))
            by_slot: dict[str, list[str]] = {}
            for i, port in enumerate(ports):
                by_slot.setdefault(f"S{i % slots + 1}", []).append(port)
            recorder = _Recorder()
            SerialTransport.traffic = traffic = {}
            progress(f"provisioning {devices} devices in {len(by_slot)} slots")
            cpu_before = resource.getrusage(resource.RUSAGE_SELF)
            try:
                with _DescriptorWatch() as watch:
                    summary = run_batch(cfg, batch_id=f"BENCH-{seed}", model=MODEL,
                                        operator="bench", slots=by_slot, manifest=manifest,
                                        expected=devices,
                                        driver_opts={"baudrate": baud, "compact": compact,
                                                     "fast_baud": fast_baud},
                                        out=io.StringIO(), observers=(recorder,))
            finally:
                SerialTransport.traffic = None
            cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        finally:
            sim.terminate()
            sim.wait(timeout=30)
            flash.cleanup()
    sim_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = summary.passed + summary.failed
    per_device = []  # (bytes to, bytes from, frames, bound, measured)
    for device_id, seconds in recorder.passed.items():
        sent, received, frames, wire_s = traffic.get(port_of[device_id], (0, 0, 0, 0.0))
        bound = wire_s + keygen_ms / 1000
        per_device.append((sent, received, frames, bound, seconds))
    n = len(per_device) or 1
    mean_bound = sum(d[3] for d in per_device) / n
    added = [(d[4] - d[3]) * 1000 for d in per_device]
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    line_bound = math.ceil(devices / slots) * mean_bound
    return {
        "devices": devices,
        "slots": slots,
        "baud": baud,
        "compact": compact,
        "fast_baud": fast_baud,
        "keygen_ms": keygen_ms,
        "passed": summary.passed,
        "failed": summary.failed,
        "first_failures": recorder.failures[:3],
        "halted": summary.halted,
        "elapsed_s": round(summary.elapsed_s, 3),
        "devices_per_s": round(done / summary.elapsed_s, 2) if summary.elapsed_s else 0,
        "devices_per_hour": summary.devices_per_hour,
        "bytes_to_device": round(sum(d[0] for d in per_device) / n, 1),
        "bytes_from_device": round(sum(d[1] for d in per_device) / n, 1),
        "requests_per_device": round(sum(d[2] for d in per_device) / n, 1),
        "bytes_per_device": round(sum(d[0] + d[1] for d in per_device) / n, 1),
        "bound_s_per_device": round(mean_bound, 4),
        "keygen_share": round(sum(keygen_ms / 1000 / d[4] for d in per_device if d[4]) / n, 3),
        "keygen_share_of_bound": round(keygen_ms / 1000 / mean_bound, 3) if mean_bound else 0,
        "efficiency": round(line_bound / summary.elapsed_s, 3) if summary.elapsed_s else 0,
        "device_s_p50": round(percentile([d[4] for d in per_device], 0.5), 4),
        "station_added_ms_p50": round(percentile(added, 0.5), 1),
        "station_added_ms_p99": round(percentile(added, 0.99), 1),
        "step_ms": {step: {f"p{int(q * 100)}": round(percentile(v, q) * 1000, 1)
                           for q in (0.5, 0.95, 0.99)}
                    for step, v in recorder.steps.items()},
        "cpu_ms_per_device": round(cpu * 1000 / done, 2) if done else 0,
        "sim_cpu_ms_per_device": round((sim_cpu.ru_utime + sim_cpu.ru_stime) * 1000 / done, 2)
        if done else 0,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_open_descriptors": watch.peak,
        "load_average_before": round(load_before, 2),
        **machine_and_time(),
    }
