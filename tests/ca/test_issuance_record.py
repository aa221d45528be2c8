"""What the issuer writes into the station database (issue 12): the reservation names who asked
(batch, slot, operator) and the completed record is exactly the certificate released (its PEM,
fingerprint and validity); a failed issuance is voided with a reason the operator can read.
Real SoftHSM2 token, real SQLite audit database."""
from __future__ import annotations

import hashlib
import sqlite3

import pytest
from cryptography.hazmat.primitives import serialization

from hsm.errors import SigningFailed
from station.audit import AuditDB
from station.audit.chain import serial_hex, utc_timestamp
from station.issuance import Issuer
from tests.ca.test_hsm_failure import faulty_copy
from tests.csr_factory import make_csr


def _issuer(station, record, ca=None) -> Issuer:
    return Issuer(ca=ca or station.ca, profile=station.issuer.profile, policy=station.issuer.policy, record=record)


def test_the_record_is_the_certificate_released_and_names_who_asked(station, device, tmp_path):
    with AuditDB.open(tmp_path / "audit.db", station_id="record") as audit:
        issuer = _issuer(station, audit)
        issued = issuer.issue(make_csr(issuer.subject_for(device)), device, batch_id="BATCH-7", slot="S3",
                              operator="alice")
    row = sqlite3.connect(tmp_path / "audit.db").execute(
        "select serial, subject, device_id, batch_id, slot, operator, cert_pem, fingerprint_sha256, not_before, "
        "not_after, status from certificates").fetchall()
    cert = issued.certificate
    der = cert.public_bytes(serialization.Encoding.DER)
    assert row == [(serial_hex(issued.serial), cert.subject.rfc4514_string(), device.device_id, "BATCH-7", "S3", "alice",
                    cert.public_bytes(serialization.Encoding.PEM).decode(), hashlib.sha256(der).hexdigest(),
                    utc_timestamp(cert.not_valid_before_utc), utc_timestamp(cert.not_valid_after_utc), "issued")]
    assert issued.fingerprint_sha256 == hashlib.sha256(der).hexdigest()
    assert issued.der == der and issued.pem == cert.public_bytes(serialization.Encoding.PEM)


def test_an_hsm_failure_is_voided_with_the_hsms_own_message(station, device, tmp_path):
    with AuditDB.open(tmp_path / "audit.db", station_id="record") as audit:
        issuer = _issuer(station, audit, ca=faulty_copy(station.ca))
        with pytest.raises(SigningFailed) as raised:
            issuer.issue(make_csr(issuer.subject_for(device)), device)
    (reason,) = sqlite3.connect(tmp_path / "audit.db").execute(
        "select status_reason from certificates where status = 'void'").fetchone()
    # The operator reads the HSM's sentence as it is, not wrapped as an internal failure.
    assert reason == str(raised.value)
    assert reason.startswith("the HSM produced a certificate that does not verify against the issuing CA")


def test_any_other_failure_is_voided_naming_its_type_and_message(station, device, tmp_path):
    import dataclasses

    broken = dataclasses.replace(station.cfg.profile, validity_days=3_000_000)  # overflows after the reservation
    with AuditDB.open(tmp_path / "audit.db", station_id="record") as audit:
        issuer = Issuer(ca=station.ca, profile=broken, policy=station.issuer.policy, record=audit)
        with pytest.raises(OverflowError) as raised:
            issuer.issue(make_csr(issuer.subject_for(device)), device)
    (reason,) = sqlite3.connect(tmp_path / "audit.db").execute("select status_reason from certificates").fetchone()
    assert reason == f"issuance failed: OverflowError: {raised.value}"[:500]


class _CompletionRefused:
    """The real audit database, except that recording the finished certificate fails with a
    long message (as a driver or database error can): the void must still be written."""

    def __init__(self, audit: AuditDB, message: str):
        self._audit, self._message = audit, message

    def __getattr__(self, name):
        return getattr(self._audit, name)

    def complete_certificate(self, serial, **_):
        raise RuntimeError(self._message)


def test_a_void_reason_is_cut_to_500_characters(station, device, tmp_path):
    message = "disk says: " + "x" * 600
    with AuditDB.open(tmp_path / "audit.db", station_id="record") as audit:
        issuer = _issuer(station, _CompletionRefused(audit, message))
        with pytest.raises(RuntimeError):
            issuer.issue(make_csr(issuer.subject_for(device)), device)
    (status, reason) = sqlite3.connect(tmp_path / "audit.db").execute(
        "select status, status_reason from certificates").fetchone()
    assert status == "void"
    assert reason == f"issuance failed: RuntimeError: {message}"[:500] and len(reason) == 500
