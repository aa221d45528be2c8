"""fixtures/station.example.toml is the reference for every configuration key: it must load,
carry the documented defaults, mention every key the loader reads, and its commented-out
real-HSM variant must load too."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from station.config import (AuditConfig, CaConfig, HsmConfig, LineConfig, PolicyConfig, ProfileConfig, ScanConfig,
                            UiConfig, load_config)
from station.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "fixtures" / "station.example.toml"
TABLES = {"hsm": HsmConfig, "ca": CaConfig, "profile": ProfileConfig, "policy": PolicyConfig,
          "audit": AuditConfig, "line": LineConfig, "ui": UiConfig, "scan": ScanConfig}


def test_example_loads_from_the_repository_root(monkeypatch):
    monkeypatch.chdir(REPO)
    cfg = load_config("fixtures/station.example.toml")
    assert cfg.station_id == "line-1-station-1"


def test_example_paths_resolve_relative_to_the_fixtures_directory():
    cfg = load_config(EXAMPLE)
    fixtures = EXAMPLE.parent
    assert cfg.hsm.softhsm_conf == fixtures / "hsm" / "softhsm2.conf"
    assert cfg.hsm.pin_file == fixtures / "hsm" / "user.pin"
    assert cfg.ca.chain == fixtures / "ca" / "chain.pem"
    assert not cfg.ca.chain.exists()  # loading does not need the chain
    assert cfg.audit.database == fixtures / "audit.db"
    assert cfg.audit.public_key == fixtures / "ca" / "audit-public.pem"


def test_example_values_are_the_documented_defaults():
    cfg = load_config(EXAMPLE)
    assert cfg.hsm == dataclasses.replace(HsmConfig(), softhsm_conf=cfg.hsm.softhsm_conf, pin_file=cfg.hsm.pin_file)
    assert (cfg.ca.key_type, cfg.ca.organization, cfg.ca.country, cfg.ca.setup) == \
        ("ec-p256", "Example Devices Ltd", None, "development")
    assert cfg.profile.common_name == ProfileConfig.common_name == "{model}-{device_id}"
    assert cfg.profile.serial_number == ProfileConfig.serial_number == "{label}"
    assert (cfg.profile.validity_days, cfg.profile.backdate_seconds, cfg.profile.key_agreement) == (7300, 300, False)
    assert (cfg.profile.country, cfg.profile.state, cfg.profile.dn_qualifier) == (None, None, None)
    assert cfg.policy == PolicyConfig()
    assert cfg.audit.checkpoint_every == AuditConfig.checkpoint_every == 1000
    assert cfg.audit.busy_timeout_ms == AuditConfig.busy_timeout_ms == 10000
    assert cfg.line == LineConfig()
    assert (cfg.ui, cfg.scan) == (UiConfig(), ScanConfig())


def _keys_by_table(text: str) -> dict[str, set[str]]:
    """Keys per table, counting commented-out keys (`# country = "DE"`) as documented."""
    keys: dict[str, set[str]] = {}
    table = None
    for line in text.splitlines():
        header = re.match(r"^#?\s*\[(\w+)\]\s*$", line)
        if header:
            table = header.group(1)
            continue
        key = re.match(r"^#?\s*([a-z_]+)\s*=", line)
        if key and table:
            keys.setdefault(table, set()).add(key.group(1))
    return keys


def test_example_mentions_every_key_of_every_table():
    documented = _keys_by_table(EXAMPLE.read_text())
    assert documented["station"] == {"id"}
    for table, model in TABLES.items():
        fields = {f.name for f in dataclasses.fields(model)}
        assert fields <= documented[table], f"[{table}] lacks {fields - documented[table]}"


def _real_hsm_variant(text: str) -> str:
    """The example with its active [hsm] table replaced by the commented-out real-HSM one."""
    start = text.index("\n[hsm]\n")
    end = text.index("\n# [hsm]\n")
    variant = []
    for line in text[end + 1:].splitlines():
        if not line.startswith("# ") or not line.strip("# "):
            break
        variant.append(line[2:])
    return text[:start] + "\n" + "\n".join(variant) + "\n" + text[text.index("\n[ca]\n"):]


def test_the_commented_real_hsm_variant_loads(tmp_path):
    path = tmp_path / "station.toml"
    path.write_text(_real_hsm_variant(EXAMPLE.read_text()))
    cfg = load_config(path)
    assert cfg.hsm.module == "/usr/lib/x86_64-linux-gnu/pkcs11/yubihsm_pkcs11.so"
    assert cfg.hsm.softhsm_conf is None
    assert cfg.hsm.issuing_key_label == "station-1-issuing"


def test_a_pin_in_the_example_would_be_refused(tmp_path):
    path = tmp_path / "station.toml"
    path.write_text(EXAMPLE.read_text().replace('pin_env = "STATION_PIN"\n', 'pin_env = "STATION_PIN"\npin = "1234"\n', 1))
    with pytest.raises(ConfigError, match="never written in the configuration"):
        load_config(path)
