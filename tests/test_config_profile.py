"""Loading [profile], [policy] and [audit]: the bounds that keep a bad value from reaching issuance, each
error naming the file and the key; and the configuration model importing no issuing code."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from station.config import MAX_VALIDITY_DAYS, load_config
from station.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = (REPO / "fixtures" / "station.example.toml").read_text()


def _load(tmp_path, old: str, new: str):
    assert EXAMPLE.count(old) == 1, old
    path = tmp_path / "station.toml"
    path.write_text(EXAMPLE.replace(old, new))
    return load_config(path)


def _refused(tmp_path, old: str, new: str, *fragments: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, old, new)
    for fragment in (str(tmp_path / "station.toml"), *fragments):
        assert fragment in str(info.value)


@pytest.mark.parametrize("days", [MAX_VALIDITY_DAYS + 1, 3_000_000])
def test_validity_beyond_the_maximum_is_refused_at_load(tmp_path, days):
    # 3000000 days used to load and then fail every issuance with OverflowError.
    _refused(tmp_path, "validity_days = 7300", f"validity_days = {days}",
             "[profile] validity_days", f"up to {MAX_VALIDITY_DAYS}", str(days))


def test_validity_at_the_maximum_loads(tmp_path):
    assert _load(tmp_path, "validity_days = 7300", f"validity_days = {MAX_VALIDITY_DAYS}").profile.validity_days \
        == MAX_VALIDITY_DAYS


def test_ed25519_is_refused_in_allowed_keys(tmp_path):
    _refused(tmp_path, 'allowed_keys = ["ec-p256", "ec-p384"]', 'allowed_keys = ["ec-p256", "ed25519"]',
             "[policy] allowed_keys", "AWS IoT does not accept Ed25519")


@pytest.mark.parametrize("key,old", [("organizational_unit", 'organizational_unit = "Production line"'),
                                     ("common_name", 'common_name = "{model}-{device_id}"')])
def test_a_fixed_subject_text_over_its_limit_is_refused_at_load(tmp_path, key, old):
    _refused(tmp_path, old, f'{key} = "{"X" * 65}{{label}}"', f"[profile] {key}", "limit of 64")


def test_placeholders_do_not_count_against_the_limit(tmp_path):
    cfg = _load(tmp_path, 'common_name = "{model}-{device_id}"', f'common_name = "{"X" * 63}-{{device_id}}"')
    assert cfg.profile.common_name.endswith("{device_id}")


def test_the_configuration_model_imports_no_issuing_code():
    # config and profile used to import each other; the model is now a leaf.
    code = ("import sys, station.config\n"
            "print(sorted(m for m in sys.modules if m.startswith(('station.', 'hsm')) and m != 'station.config'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['station.errors']"


@pytest.mark.parametrize("value", [0, -5, 600001, '"10s"'])
def test_an_audit_busy_timeout_out_of_range_is_refused_at_load(tmp_path, value):
    _refused(tmp_path, "busy_timeout_ms = 10000", f"busy_timeout_ms = {value}", "[audit] busy_timeout_ms")


def test_an_audit_busy_timeout_loads(tmp_path):
    assert _load(tmp_path, "busy_timeout_ms = 10000", "busy_timeout_ms = 250").audit.busy_timeout_ms == 250
