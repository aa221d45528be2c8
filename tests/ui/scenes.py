"""Deterministic screens for the snapshot tests: a fixed clock and a fixed event sequence
folded into the real model, rendered by the real app with no line attached."""
from __future__ import annotations

from station.config import ScanConfig
from station.engine.events import (BatchCounterChanged, BatchStarted, DeviceAttached, DeviceFailed, DevicePassed,
                                   IssuanceHalted, SlotStateChanged, StepStarted)
from station.operator.events import BatchClosed, OperatorLoggedIn, StationOpened
from station.operator.model import STEPS, LineModel
from station.operator.scan import ScanRouter

HEAD = "412:9f2c1e7ab04d5c6e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a"


class FixedClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def line_model(slots: int, *, halted: bool = False, closed: bool = False) -> LineModel:
    clock = FixedClock(0.0)
    model = LineModel([f"S{i}" for i in range(1, slots + 1)], override_allowed=True, clock=clock)
    model.apply(StationOpened(station_id="line-1-station-1", audit_head=HEAD))
    model.apply(OperatorLoggedIn(operator="OP-ANNA"))
    model.apply(BatchStarted(batch_id="WO-2417", model="GW-2", operator="OP-ANNA", expected=120))
    passed = failed = 0
    for i in range(1, slots + 1):
        slot, device = f"S{i}", f"9F2C{i:08X}"
        clock.now = 600.0 + i * 7
        kind = i % 8
        if kind == 0:
            continue  # empty
        model.apply(DeviceAttached(slot=slot, port=f"/dev/serial/by-path/usb-0:{i}:1.0"))
        model.apply(SlotStateChanged(slot=slot, state="busy", device_id=device))
        if kind in (1, 4, 6):
            model.apply(DevicePassed(slot=slot, device_id=device, label=f"GW2-{24170 + i}", serial_hex="5a1f",
                                     fingerprint_sha256="ab", duration_s=11.5 + i / 10))
            passed += 1
        elif kind == 2:
            model.apply(DeviceFailed(slot=slot, device_id=device, step="commit", code="DeviceIntegrityError",
                                     reason="device stored cert with another SHA-256 than was sent", duration_s=9.1))
            failed += 1
        elif kind == 3:
            model.apply(StepStarted(slot=slot, step=STEPS[2 + i % 4], device_id=device))
        elif kind == 5:
            model.apply(SlotStateChanged(slot=slot, state="waiting-label", device_id=device))
        elif kind == 7:
            model.apply(DeviceFailed(slot=slot, device_id=device, step="bind", code="already-provisioned",
                                     reason=f"device {device} is already provisioned", duration_s=0.4))
            failed += 1
    model.apply(BatchCounterChanged(batch_id="WO-2417", passed=passed + 40, failed=failed + 1, expected=120))
    if halted:
        model.apply(IssuanceHalted(reason="audit database write failed: disk I/O error (audit.db)"))
    if closed:
        model.apply(BatchClosed(batch_id="WO-2417", audit_head=HEAD))
    clock.now = 720.0
    return model


def scene_app(slots: int, **kwargs):
    from station.ui.app import StationApp

    return StationApp(line_model(slots, **kwargs), ScanRouter(ScanConfig()), None,
                      hint="Scan your operator badge, then a work order.")
