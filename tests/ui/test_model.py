"""The operator model folds event sequences into what the screens show, and the scan router
decides from content and state: both plain Python, tested without a terminal."""
from __future__ import annotations

import pytest

from station.config import ScanConfig
from station.engine.events import (BatchCounterChanged, BatchStarted, DeviceAttached, DeviceFailed,
                                   DeviceIdentified, DevicePassed, IssuanceHalted, OverrideApproved,
                                   SlotStateChanged, StepStarted)
from station.operator.events import BatchClosed, OperatorLoggedIn, SlotEmptied, StationOpened
from station.operator.model import LineModel
from station.operator.scan import Refusal, Route, ScanRouter


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def ready_model(clock=None, **kwargs) -> LineModel:
    model = LineModel(["S1", "S2"], clock=clock or Clock(), **kwargs)
    model.apply(StationOpened(station_id="st-1", audit_head="7:abc"))
    return model


def start_batch(model, expected=4):
    model.apply(OperatorLoggedIn(operator="OP-ANNA"))
    model.apply(BatchStarted(batch_id="WO-7", model="SIM-1", operator="OP-ANNA", expected=expected))


def test_a_device_goes_from_attached_through_steps_to_pass():
    clock = Clock()
    model = ready_model(clock)
    start_batch(model)
    model.apply(DeviceAttached(slot="S1", port="/dev/pts/9"))
    model.apply(DeviceIdentified(slot="S1", device_id="D1", model="SIM-1", hw_rev="A", fw_version="1", state="blank"))
    model.apply(StepStarted(slot="S1", step="keygen", device_id="D1"))
    clock.now += 2.5
    slot = model.slots["S1"]
    assert (slot.state, slot.device_id, slot.step, slot.step_index + 1, slot.step_count) == ("busy", "D1", "keygen", 3, 7)
    assert slot.elapsed(clock()) == pytest.approx(2.5)
    assert [s.name for s in model.in_flight()] == ["S1"]

    model.apply(DevicePassed(slot="S1", device_id="D1", label="L-1", serial_hex="ab", fingerprint_sha256="f",
                             duration_s=3.0))
    model.apply(BatchCounterChanged(batch_id="WO-7", passed=1, failed=0, expected=4))
    clock.now += 10
    assert (slot.result, slot.label, slot.elapsed(clock()), slot.progress) == ("PASS", "L-1", 3.0, 1.0)
    assert model.in_flight() == []
    batch = model.batch
    assert (batch.done, batch.remaining, batch.yield_pct) == (1, 3, 100.0)
    assert batch.devices_per_hour(clock()) == pytest.approx(3600 / 12.5)
    assert any("PASS slot S1" in e.text for e in model.log)


def test_failures_keep_step_and_reason_and_group_by_cause():
    model = ready_model()
    start_batch(model)
    for slot, device in (("S1", "D1"), ("S2", "D2")):
        model.apply(DeviceAttached(slot=slot, port="p"))
        model.apply(DeviceFailed(slot=slot, device_id=device, step="issue", code="weak-key",
                                 reason=f"device {device} key rsa-1024 refused"))
    model.apply(DeviceFailed(slot="S1", device_id="D3", step="commit", code="", reason="hash mismatch"))
    s2 = model.slots["S2"]
    assert (s2.result, s2.step, s2.reason) == ("FAIL", "issue", "device D2 key rsa-1024 refused")
    assert model.batch.failures_by_cause() == [("issue", "device D1 key rsa-1024 refused", 2),
                                               ("commit", "hash mismatch", 1)]


def test_an_already_provisioned_device_waits_for_a_supervisor_only_when_allowed():
    strict, lenient = ready_model(), ready_model(override_allowed=True)
    for model in (strict, lenient):
        start_batch(model)
        model.apply(DeviceFailed(slot="S1", device_id="D1", step="bind", code="already-provisioned",
                                 reason="device D1 is already provisioned"))
    assert strict.waiting_for_override() == []
    assert [s.name for s in lenient.waiting_for_override()] == ["S1"]
    lenient.apply(OverrideApproved(slot="S1", device_id="D1", supervisor="SV-BOB", what="re-provision"))
    assert lenient.waiting_for_override() == []


def test_a_slot_emptied_forgets_its_device_and_halt_is_kept():
    model = ready_model()
    start_batch(model)
    model.apply(DeviceAttached(slot="S1", port="p"))
    model.apply(SlotStateChanged(slot="S1", state="waiting-label", device_id="D1"))
    assert [s.name for s in model.waiting_for_label()] == ["S1"]
    model.apply(SlotEmptied(slot="S1"))
    assert model.slots["S1"].state == "empty" and model.slots["S1"].device_id is None
    model.apply(IssuanceHalted(reason="audit database is read-only"))
    assert model.halted == "audit database is read-only"
    model.apply(BatchClosed(batch_id="WO-7", audit_head="9:def", left_open=True))
    assert (model.batch.closed, model.batch.left_open, model.audit_head) == (True, True, "9:def")


ROUTER = ScanRouter(ScanConfig())


def test_scans_route_by_content_and_by_what_is_expected_now():
    model = ready_model()
    assert ROUTER.route("WO-7", model) == Refusal("scan your operator badge first")
    assert ROUTER.route("OP-ANNA", model) == Route("operator", "OP-ANNA")
    start_batch(model)
    assert isinstance(ROUTER.route("OP-BOB", model), Refusal)  # a batch is running
    assert isinstance(ROUTER.route("WO-8", model), Refusal)  # still open
    assert ROUTER.route("LBL-0001", model) == Refusal("no slot is waiting for a label")
    assert ROUTER.route("#%&", model) == Refusal("not a badge, work order or label this station knows")


def test_a_label_goes_to_the_only_waiting_slot_or_the_one_its_prefix_names():
    model = ready_model()
    start_batch(model)
    model.apply(SlotStateChanged(slot="S2", state="waiting-label", device_id="D2"))
    assert ROUTER.route("LBL-0001", model) == Route("label", "LBL-0001", "S2")
    model.apply(SlotStateChanged(slot="S1", state="waiting-label", device_id="D1"))
    assert "S1:LBL-0001" in ROUTER.route("LBL-0001", model).reason
    assert ROUTER.route("S1:LBL-0001", model) == Route("label", "LBL-0001", "S1")
    assert ROUTER.route("S9:LBL-0001", model) == Refusal("there is no slot S9")


def test_a_supervisor_badge_answers_only_a_pending_override():
    model = ready_model(override_allowed=True)
    start_batch(model)
    assert ROUTER.route("SV-BOB", model) == Refusal("no slot is waiting for a supervisor")
    model.apply(DeviceFailed(slot="S1", device_id="D1", step="bind", code="already-provisioned", reason="x"))
    assert ROUTER.route("SV-BOB", model) == Route("supervisor", "SV-BOB", "S1")


def test_nothing_is_routed_before_the_station_is_ready():
    model = LineModel(["S1"])
    assert ROUTER.route("OP-ANNA", model) == Refusal("the station is not ready yet")


def test_a_scanned_label_the_certificate_subject_cannot_carry_is_refused():
    # The [scan] label pattern accepts "_" and "."; the profile's alphabet does not. Such a scan
    # is refused with the reason, never handed to the engine (which would raise on the UI loop).
    model = ready_model()
    start_batch(model)
    model.apply(SlotStateChanged(slot="S1", state="waiting-label", device_id="D1"))
    refused = ROUTER.route("LBL_0001", model)
    assert isinstance(refused, Refusal) and "label 'LBL_0001' is not" in refused.reason


def test_label_and_supervisor_commands_without_a_running_batch_are_refusals():
    import pytest

    from station.errors import StationError
    from station.operator.session import Session

    session = Session.__new__(Session)  # only the engine reference matters here
    session.engine = None
    with pytest.raises(StationError, match="no batch is running"):
        session.bind_label("S1", "LBL-0001")
    with pytest.raises(StationError, match="no batch is running"):
        session.approve_override("S1", "SV-BOB")
