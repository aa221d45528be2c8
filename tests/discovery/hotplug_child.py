"""Run under `umockdev-wrapper` by test_hotplug.py: a real engine fed by the real udev source
(pyudev on libudev), USB CDC-ACM devices plugged into and pulled out of an umockdev Testbed,
each served by the reference simulator on the Testbed's real pseudo-terminal.

    umockdev-wrapper python tests/discovery/hotplug_child.py CONFIG WORKDIR

Prints one JSON object: what the engine and the audit database said. The parent asserts.
"""
from __future__ import annotations

import dataclasses
import json
import sqlite3
import sys
import threading
import time
from pathlib import Path

from station.boot import open_station
from station.config import DiscoveryConfig, load_config
from station.discovery.feed import start_feed
from station.discovery.udev import UdevSource
from station.engine.batch import Batch
from station.engine.engine import Engine
from station.engine.events import DeviceFailed, DevicePassed, StepStarted
from station.sim.device import Device, Identity, derive_device_id
from station.sim.faults import FaultPlan, FaultSpec
from station.sim.store import DeviceStore
from testbed import MockedUsbDevice, new_testbed  # beside this file

MODEL = "SIM-1"
SLOT1 = "pci-0000:00:14.0-usb-0:1:1.0"
SLOT2 = "pci-0000:00:14.0-usb-0:2:1.0"


class Recorder:
    def __init__(self):
        self.events = []
        self.changed = threading.Condition()

    def __call__(self, event) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def wait_for(self, predicate, timeout: float = 30.0):
        with self.changed:
            if not self.changed.wait_for(lambda: any(predicate(e) for e in self.events), timeout):
                raise SystemExit(f"timed out waiting; events so far: {self.events}")
            return next(e for e in self.events if predicate(e))


def main(config_path: str, workdir: str) -> None:
    work = Path(workdir)
    cfg = load_config(config_path)
    cfg = dataclasses.replace(
        cfg, audit=dataclasses.replace(cfg.audit, database=work / "audit.db"),
        line=dataclasses.replace(cfg.line, label_source="device-id", timeout_scale=0.25),
        discovery=DiscoveryConfig(allow=("1915:521f", "303a:1001", "10c4:ea60"), slots={"slot1": SLOT1, "slot2": SLOT2}))

    def sim(index: int, *faults: str, keygen_s: float = 0.02) -> Device:
        identity = Identity(derive_device_id("hotplug", index), model=MODEL)
        return Device(identity, DeviceStore(work / "flash" / identity.device_id),
                      faults=FaultPlan([FaultSpec.parse(f) for f in faults]), keygen_s=keygen_s)

    testbed = new_testbed()
    notices, ignored = [], []
    result: dict = {"notices": notices, "ignored": ignored}
    with open_station(cfg) as station:
        engine = Engine(station, Batch(batch_id="WO-HOT", model=MODEL, operator="op-1"), cfg.line,
                        driver_opts={"timeout_scale": 0.25})
        recorder = Recorder()
        engine.bus.subscribe(recorder)
        engine.start()
        stop = threading.Event()
        source = UdevSource(cfg.discovery, say=notices.append)
        result["polling"] = source.polling
        feeder = start_feed(source, engine, stop, ignored=lambda d: ignored.append([d.port, d.ignored]))

        # 1. Plugging a device starts its slot.
        a = MockedUsbDevice(testbed, "usb-nordic-slot1.umockdev", sim(0))
        a.plug()
        recorder.wait_for(lambda e: isinstance(e, DevicePassed) and e.device_id == a.device.device_id)
        a.unplug()  # pulled out after PASS: nothing to fail

        # 2. An allowlisted board on a port that is no slot is shown ignored, never provisioned.
        stray = MockedUsbDevice(testbed, "usb-cp210x-unmapped.umockdev", sim(9))
        stray.plug()
        deadline = time.monotonic() + 10
        while not ignored and time.monotonic() < deadline:
            time.sleep(0.05)

        # 3. B in slot 1 hangs as the station starts writing its certificate and is pulled out;
        # C in slot 2 is provisioned at the same time and must not notice.
        b = MockedUsbDevice(testbed, "usb-nordic-slot1.umockdev", sim(1))
        c = MockedUsbDevice(testbed, "usb-espressif-slot2.umockdev", sim(2, keygen_s=0.3))
        pulled = threading.Event()  # B hangs in write once; after its replug it behaves
        engine.bus.subscribe(lambda e: b.silent.set() if isinstance(e, StepStarted) and e.step == "write"
                             and e.device_id == b.device.device_id and not pulled.is_set() else None)
        c.plug()
        b.plug()
        recorder.wait_for(lambda e: isinstance(e, StepStarted) and e.step == "write" and e.device_id == b.device.device_id)
        b.unplug()
        pulled.set()
        recorder.wait_for(lambda e: isinstance(e, DeviceFailed) and e.device_id == b.device.device_id)
        recorder.wait_for(lambda e: isinstance(e, DevicePassed) and e.device_id == c.device.device_id)
        with sqlite3.connect(cfg.audit.database) as db:
            result["b_after_pull"] = db.execute("select status, status_reason from certificates where device_id = ?",
                                                (b.device.device_id,)).fetchall()

        # 4. Replugging B later provisions it cleanly.
        b.power_cycle()
        b.silent.clear()
        b.plug()
        recorder.wait_for(lambda e: isinstance(e, DevicePassed) and e.device_id == b.device.device_id)

        engine.stop()
        engine.finish()
        stop.set()
        feeder.join(timeout=5)
        result["outcomes"] = [
            {"event": type(e).__name__, "slot": e.slot, "device": e.device_id,
             "step": getattr(e, "step", None), "reason": getattr(e, "reason", None)}
            for e in recorder.events if isinstance(e, (DevicePassed, DeviceFailed))]
        result["devices"] = {"a": a.device.device_id, "b": b.device.device_id, "c": c.device.device_id}
    with sqlite3.connect(cfg.audit.database) as db:
        result["b_final"] = db.execute("select status from certificates where device_id = ? order by reserved_at",
                                       (b.device.device_id,)).fetchall()
        result["b_state"] = db.execute("select state from devices where device_id = ?",
                                       (b.device.device_id,)).fetchone()
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
