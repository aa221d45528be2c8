"""`station init` input safety: what the operator types never breaks station.toml or the CA
names; a bad value is refused before anything is created (exit code 2, one line)."""
from __future__ import annotations

import tomllib

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.cli_runner import assert_clean_failure, run_station


@pytest.mark.parametrize("organization", ['Acme "Quoted" Devices', "Back\\slash GmbH", "Zoë & Co. [EU]"])
def test_organization_with_toml_metacharacters_makes_a_readable_station(tmp_path, organization):
    result = run_station("init", "--workdir", tmp_path, "--organization", organization)
    assert result.returncode == 0, result.stderr
    config = tomllib.loads((tmp_path / "station.toml").read_text())
    assert config["ca"]["organization"] == config["profile"]["organization"] == organization
    shown = run_station("ca", "show", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    issuing = x509.load_pem_x509_certificates((tmp_path / "ca/chain.pem").read_bytes())[0]
    assert issuing.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == organization


def test_organization_too_long_for_the_ca_name_is_refused(tmp_path):
    organization = "A" * 50  # fits in O (64) but not in "<O> Development Root CA"
    result = run_station("init", "--workdir", tmp_path / "wd", "--organization", organization)
    assert_clean_failure(result, 2, "--organization is too long",
                         "Development Root CA' would be 70 characters", "allows 64")
    assert not (tmp_path / "wd").exists() or not any((tmp_path / "wd").iterdir())


@pytest.mark.parametrize("station_id", ["line\\1", 'line"1', "line 1", "", "-leading-dash", "x" * 33, "ünï"])
def test_bad_station_id_is_refused_before_anything_is_made(tmp_path, station_id):
    result = run_station("init", "--workdir", tmp_path / "wd", "--station-id", station_id)
    assert_clean_failure(result, 2, "--station-id", "letters, digits")
    assert not (tmp_path / "wd").exists()


def test_station_id_with_dots_dashes_and_underscores_is_kept(tmp_path):
    result = run_station("init", "--workdir", tmp_path, "--station-id", "line-2_b.3")
    assert result.returncode == 0, result.stderr
    assert tomllib.loads((tmp_path / "station.toml").read_text())["station"]["id"] == "line-2_b.3"
