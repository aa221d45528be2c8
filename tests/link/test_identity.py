"""A device's HELLO identity is judged by one validator (station/drivers/identity.py): the line
driver and the conformance kit refuse the same devices with the same reason, every field
fullmatches its documented alphabet (a trailing newline never passes), and a model the line
accepts is one the certificate profile can render."""
from __future__ import annotations

import pytest

from station.config import ProfileConfig
from station.conformance.cases import SUITE
from station.conformance.runner import Bench, run_cases
from station.drivers.cip import CipDriver
from station.drivers.identity import parse_hello
from station.errors import PolicyRefusal
from station.link.codec import Frame, decode_frame, encode_ok
from station.link.errors import DeviceProtocolError
from station.profile import DeviceRef, subject_for
from station.sim.pty_server import SimulatedLine

SCALE = 0.3
GOOD = {"id": "0123456789ABCDEF", "model": "SIM-1", "hw": "A", "fw": "1.0.0",
        "state": "blank", "mtu": "512"}


def hello(**fields: str | None) -> Frame:
    """A HELLO answer with GOOD's fields, changed by `fields` (None removes one). Built as a
    Frame, not bytes: values the wire cannot carry (a newline) must be refused too."""
    merged = {**GOOD, **fields}
    return Frame(1, "OK", ("1", *(f"{k}={v}" for k, v in merged.items() if v is not None)))


def refusal(answer: Frame) -> str:
    with pytest.raises(DeviceProtocolError) as exc:
        parse_hello(answer, "/dev/ttyX")
    return exc.value.problem


def test_a_well_formed_hello_gives_the_identity():
    identity = parse_hello(hello(keys="EC-P256,RSA-2048", keygen_s="2.5", future="x"), "p")
    assert (identity.device_id, identity.model, identity.hw_rev, identity.fw_version,
            identity.state) == ("0123456789ABCDEF", "SIM-1", "A", "1.0.0", "blank")
    assert identity.extra == {"mtu": "512", "keys": "EC-P256,RSA-2048", "keygen_s": "2.5",
                              "future": "x"}


@pytest.mark.parametrize("field, value", [
    ("id", "0123456789abcdef"),  # lower case: one chip, two ids
    ("id", "0123456789ABCDEF\n"),  # re.match with "$" would accept this
    ("id", "0123456789ABCDE"),
    ("id", "0123456789ABCDEF0"),
    ("model", "SIM_1"),  # "_" is not in the profile's alphabet: every board would fail
    ("model", "SIM-1\n"),
    ("model", "M" * 65),
    ("hw", "rev/B"),
    ("fw", "1.0.0\n"),
    ("fw", "1" * 33),
    ("state", "blank\n"),
    ("mtu", "127"), ("mtu", "513"), ("mtu", "0512"), ("mtu", "512\n"),
    ("keygen_s", "0"), ("keygen_s", "1e3"), ("keygen_s", "nan"), ("keygen_s", "inf"),
    ("keygen_s", "-1"), ("keygen_s", "2.5\n"), ("keygen_s", "1000"),
])
def test_a_field_outside_its_alphabet_is_refused_naming_it(field, value):
    assert refusal(hello(**{field: value})).startswith(f"HELLO field {field}={value!r} is not ")


def test_a_repeated_key_is_refused():
    answer = Frame(1, "OK", ("1", *(f"{k}={v}" for k, v in GOOD.items()), "id=FEDCBA9876543210"))
    assert refusal(answer) == "HELLO answer repeats id (each key at most once)"


@pytest.mark.parametrize("char", [chr(c) for c in range(0x21, 0x7F) if chr(c) != "*"])
def test_the_line_accepts_exactly_the_models_the_profile_can_render(char):
    model = f"M{char}1"
    try:
        parse_hello(hello(model=model), "p")
        line_accepts = True
    except DeviceProtocolError:
        line_accepts = False
    try:
        subject_for(ProfileConfig(), DeviceRef(GOOD["id"], "LBL1", model))
        profile_accepts = True
    except PolicyRefusal:
        profile_accepts = False
    assert line_accepts == profile_accepts


@pytest.mark.parametrize("sim_options, faults, problem", [
    ({}, ["lowercase-id"], "is not 16 upper-case hex digits"),
    ({"model": "SIM_1"}, [], "HELLO field model='SIM_1' is not 1-64 characters"),
])
def test_the_line_and_the_kit_refuse_a_bad_identity_with_the_same_reason(
        tmp_path, sim_options, faults, problem):
    with SimulatedLine(1, tmp_path / "sim", keygen_ms=10, faults={0: faults},
                       **sim_options) as line:
        port = line.ports[0]
        with CipDriver.open(port, timeout_scale=SCALE) as driver:
            with pytest.raises(DeviceProtocolError) as exc:
                driver.identify()
        results = {r.case: r for r in run_cases(Bench(port, timeout_scale=SCALE), SUITE)}
    assert problem in str(exc.value)
    assert results["hello"].outcome == "fail"
    assert results["hello"].reason == str(exc.value)
    # The kit still tests everything else: one wrong field does not hide the other results.
    assert [name for name, r in results.items() if r.outcome == "fail"] == ["hello"]


def test_encoded_hello_from_the_simulator_passes():
    answer = decode_frame(encode_ok(1, "1", *(f"{k}={v}" for k, v in GOOD.items())))
    assert parse_hello(answer, "p").device_id == GOOD["id"]
