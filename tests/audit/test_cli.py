"""`station audit verify` run as a real subprocess, as QA would run it."""
from __future__ import annotations

import sqlite3

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from station.audit import AuditDB
from station.errors import ExitCode

from tests.audit.conftest import STATION
from tests.cli_runner import assert_clean_failure, run_station


@pytest.fixture
def signed_db(tmp_path, audit_key, issue):
    path = tmp_path / "audit.db"
    with AuditDB.open(path, station_id=STATION) as db:
        db.set_checkpoint_signer(audit_key)
        db.log_station_start("ab" * 32, ["cd" * 32], "0.1.0")
        issue(db, "D1", "verified")
        db.checkpoint()
        db.log_event("scan", device_id="D2")
    return path


@pytest.fixture
def key_pem(tmp_path, audit_key):
    path = tmp_path / "audit-public.pem"
    path.write_bytes(audit_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def test_intact_database_exits_0(signed_db, key_pem):
    result = run_station("audit", "verify", "--db", signed_db, "--public-key", key_pem)
    assert result.returncode == ExitCode.OK, result.stderr
    assert "audit intact: 7 events, 1 checkpoints (signatures checked against an UNANCHORED key" in result.stdout


def test_tampered_database_exits_1_naming_the_row(signed_db, key_pem):
    with sqlite3.connect(signed_db) as conn:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("UPDATE events SET operator = 'mallory' WHERE id = 3")
    result = run_station("audit", "verify", "--db", signed_db, "--public-key", key_pem)
    assert_clean_failure(result, ExitCode.REFUSED, "audit TAMPERED",
                         "event 3: hash does not match its content (edited?)")


def test_wrong_audit_key_exits_1(signed_db, tmp_path):
    other = tmp_path / "other.pem"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    result = run_station("audit", "verify", "--db", signed_db, "--public-key", other)
    assert_clean_failure(result, ExitCode.REFUSED, "checkpoint 1: signature does not verify")


def test_missing_database_exits_3(tmp_path, key_pem):
    result = run_station("audit", "verify", "--db", tmp_path / "nope.db", "--public-key", key_pem)
    assert_clean_failure(result, ExitCode.ENVIRONMENT, "no audit database at")


def test_key_file_that_is_not_pem_exits_2(signed_db, tmp_path):
    junk = tmp_path / "key.pem"
    junk.write_text("hello")
    result = run_station("audit", "verify", "--db", signed_db, "--public-key", junk)
    assert_clean_failure(result, ExitCode.USAGE, "is not a PEM public key or certificate")


def test_without_key_or_configuration_exits_2_and_says_what_to_give(signed_db, tmp_path):
    result = run_station("audit", "verify", "--db", signed_db, cwd=tmp_path)
    assert_clean_failure(result, ExitCode.USAGE, "configuration file not found",
                         "--public-key")


def test_skip_signatures_is_said_in_the_output(signed_db):
    result = run_station("audit", "verify", "--db", signed_db, "--skip-signatures")
    assert result.returncode == ExitCode.OK, result.stderr
    assert "signatures NOT checked" in result.stdout


def test_database_and_key_come_from_the_configuration(signed_db, key_pem, tmp_path):
    config = tmp_path / "station.toml"
    config.write_text(f'[station]\nid = "{STATION}"\n[hsm]\nsofthsm_conf = "softhsm2.conf"\n'
                      f'[ca]\nchain = "chain.pem"\n'
                      f'[audit]\ndatabase = "{signed_db.name}"\npublic_key = "{key_pem.name}"\n')
    result = run_station("--config", config, "audit", "verify")
    assert result.returncode == ExitCode.OK, result.stderr
    assert "signatures checked against an UNANCHORED key" in result.stdout
