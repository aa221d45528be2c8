"""The profile's refusals say what the operator must fix (found by mutation testing,
docs/testing.md): which device value is unsafe and what is allowed, and which configured
field renders empty, with its JITP parameter and the device."""
from __future__ import annotations

import dataclasses

import pytest

from station.config import check_profile
from station.errors import PolicyRefusal
from station.profile import DeviceRef, subject_for


@pytest.mark.parametrize("field,value", [("device_id", "00 AA"), ("label", "L1\n"), ("model", "X,CN=evil")])
def test_an_unsafe_device_value_is_named_with_what_is_allowed(station, field, value):
    device = dataclasses.replace(DeviceRef("00AA", "L1", "M"), **{field: value})
    with pytest.raises(PolicyRefusal) as info:
        subject_for(station.cfg.profile, device)
    assert info.value.code == "bad-identity"
    assert f"{field} {value!r} is not 1-64 characters of A-Z a-z 0-9 : -" in str(info.value)


def test_a_template_that_renders_empty_refuses_the_device(station):
    # A format spec can cut a placeholder to nothing; the configuration accepts it (the
    # template is not blank), so the refusal must come when the subject is rendered.
    profile = dataclasses.replace(station.cfg.profile, organizational_unit="{label:.0}")
    check_profile(profile, where="station.toml [profile]")
    with pytest.raises(PolicyRefusal) as info:
        subject_for(profile, DeviceRef("00AA", "L1", "M"))
    assert info.value.code == "empty-subject-field"
    assert "profile field organizational_unit (JITP OrganizationalUnit) renders empty for device 00AA" \
        in str(info.value)
