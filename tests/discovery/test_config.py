"""The [discovery] table: defaults, the example file, and one clear error per bad value."""
from __future__ import annotations

import pytest

from station.config import load_config
from station.errors import ConfigError
from tests.discovery.conftest import EXAMPLE_CONFIG

BASE = """
[station]
id = "s1"
[hsm]
module = "/opt/vendor.so"
[ca]
chain = "chain.pem"
[audit]
database = "audit.db"
"""


def _load(tmp_path, discovery: str):
    path = tmp_path / "station.toml"
    path.write_text(BASE + "[discovery]\n" + discovery)
    return load_config(path)


def test_example_config_and_defaults(tmp_path):
    example = load_config(EXAMPLE_CONFIG).discovery
    assert example.allow == ("1915:521f", "303a:1001", "10c4:ea60")
    assert example.slot_for("pci-0000:00:14.0-usb-0:2:1.0") == "slot2"
    empty = _load(tmp_path, "")
    assert (empty.discovery.allow, empty.discovery.slots, empty.discovery.group) == ((), {}, "dialout")


def test_ids_are_normalised(tmp_path):
    assert _load(tmp_path, 'allow = ["303A:1001", "1915:*"]').discovery.allow == ("303a:1001", "1915:*")


@pytest.mark.parametrize("body, where", [
    ('allow = ["1915-521f"]', "[discovery] allow"),
    ('allow = "1915:521f"', "[discovery] allow"),
    ('serial_patterns = ["a|b"]', "[discovery] serial_patterns"),
    ('slots = { "slot 1" = "pci-0" }', "[discovery] slots.slot 1"),
    ('slots = { a = "pci-0", b = "pci-0" }', "[discovery] slots"),
    ("slots = { a = 3 }", "[discovery] slots.a"),
    ("poll_interval = 0", "[discovery] poll_interval"),
    ('colour = "red"', "unknown key(s) colour"),
])
def test_bad_values_name_file_table_and_key(tmp_path, body, where):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, body)
    assert str(tmp_path / "station.toml") in str(err.value) and where in str(err.value)


def test_discovery_slot_names_follow_the_one_slot_rule(tmp_path):
    # The same rule as --port and [line] ports: a letter or digit first.
    import pytest

    from station.config import load_config
    from station.errors import ConfigError

    for bad in ("-S1", "_x"):
        path = tmp_path / "station.toml"
        path.write_text(BASE + f'\n[discovery]\nallow = ["1915:521f"]\nslots = {{ "{bad}" = "pci-0:1" }}\n')
        with pytest.raises(ConfigError, match="starting with a letter or digit"):
            load_config(path)
