"""The engine does not know which source feeds it: the simulator source (real pseudo-terminals)
plugs devices into slots and pulls them out, and the static source reports configured ports."""
from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from contextlib import contextmanager

from station.boot import open_station
from station.discovery.feed import DeviceIgnored, feed_until_done, start_feed
from station.discovery.simulated import SimulatorSource
from station.discovery.static import StaticSource
from station.engine.batch import Batch
from station.engine.engine import Engine
from station.engine.events import DeviceFailed, DevicePassed, StepStarted
from station.sim import SimulatedLine


def _wait(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@contextmanager
def _line(station_config, tmp_path, count: int, slots: list, **batch):
    """`count` simulated devices behind a SimulatorSource and an engine on a fresh audit."""
    cfg = dataclasses.replace(station_config, audit=dataclasses.replace(station_config.audit,
                                                                        database=tmp_path / "audit.db"))
    line_cfg = dataclasses.replace(cfg.line, label_source="device-id", timeout_scale=0.25)
    with SimulatedLine(count, tmp_path / "devices", keygen_ms=20, model="SIM-1") as line, open_station(cfg) as station:
        engine = Engine(station, Batch(model="SIM-1", operator="op-1", **batch), line_cfg,
                        driver_opts={"timeout_scale": 0.25})
        yield line, SimulatorSource(line, slots, plugged=False), engine


def test_simulator_source_plug_pull_mid_write_replug(station_config, tmp_path):
    events = []
    with _line(station_config, tmp_path, 2, ["S1", "S2"], batch_id="WO-SIM") as (line, source, engine):
        engine.bus.subscribe(events.append)
        first = line.devices[0].device_id
        pulled = []

        def pull_when_writing(event):  # on the slot's worker: the port vanishes as write begins
            if isinstance(event, StepStarted) and event.step == "write" and event.device_id == first and not pulled:
                pulled.append(event)
                source.unplug(0)
        engine.bus.subscribe(pull_when_writing)
        engine.start()
        stop = threading.Event()
        feeder = start_feed(source, engine, stop)
        source.plug(0)
        source.plug(1)
        outcomes = lambda: [e for e in events if isinstance(e, (DevicePassed, DeviceFailed))]  # noqa: E731
        _wait(lambda: len(outcomes()) == 2)
        source.plug(0)  # replugged: provisioned cleanly
        _wait(lambda: len(outcomes()) == 3)
        engine.stop()
        engine.finish()
        stop.set()
        feeder.join(5)
    got = [(type(e).__name__, e.slot, getattr(e, "reason", None)) for e in outcomes()]
    assert sorted(got[:2]) == [("DeviceFailed", "S1", "device removed during write"), ("DevicePassed", "S2", None)]
    assert got[2] == ("DevicePassed", "S1", None)
    with sqlite3.connect(tmp_path / "audit.db") as db:
        statuses = [r[0] for r in db.execute("select status from certificates where device_id = ? "
                                             "order by reserved_at", (first,))]
    assert statuses[-1] == "verified" and len(statuses) == 2


def test_static_source_reports_each_configured_port_once():
    source = StaticSource({"S1": "socket://127.0.0.1:7001", "S2": "/dev/ttyUSB9"})
    seen, stop = [], threading.Event()
    sink = type("Sink", (), {"device_attached": lambda self, d: seen.append((d.slot, d.port)),
                             "device_detached": lambda self, d: seen.append(("gone", d.slot))})()
    thread = threading.Thread(target=source.watch, args=(sink, stop))
    thread.start()
    _wait(lambda: len(seen) == 2)
    stop.set()
    thread.join()
    assert seen == [("S1", "socket://127.0.0.1:7001"), ("S2", "/dev/ttyUSB9")]
    assert [d.ignored for d in source.present()] == [None, None]


def test_a_hotplug_run_ends_when_the_work_order_is_done(station_config, tmp_path):
    ignored = []
    # Device 2 sits on a port that is no slot: reported ignored, never provisioned.
    with _line(station_config, tmp_path, 3, ["S1", "S2", None], batch_id="WO-2", expected=2) as (line, source, engine):
        engine.bus.subscribe(lambda e: ignored.append(e) if isinstance(e, DeviceIgnored) else None)
        engine.start()
        for i in range(3):
            threading.Timer(0.1 * i, source.plug, args=(i,)).start()
        started = time.monotonic()
        feed_until_done(engine, source)
        engine.finish()
        stray = line.ports[2]
    assert time.monotonic() - started < 20
    assert (engine.batch.passed, engine.batch.failed) == (2, 0)
    assert [(e.port, e.reason) for e in ignored] == [(stray, "no slot")]
