"""Issuing one device certificate: the single path every certificate takes, whether the CSR came
from a device on the line (the engine) or from a file (`station issue`, the benchmark).

    policy.validate -> record the issuance durably (reserve) -> HSM sign -> verify against the
    issuing CA -> record the certificate durably (complete) -> release

Both records are committed before the certificate is returned, so no certificate exists that
the station's database does not know. If anything fails after the reservation and before the
certificate is recorded (building, signing, verifying, recording), the reservation is marked
void with the reason, and the error goes on to the caller; the key stays used, so a retry
needs a fresh key from the device.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import ssl
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hsm.ca import CertificateAuthority
from hsm.errors import HSMError
from station.audit.errors import AuditWriteFailed, CheckpointFailed
from station.config import ProfileConfig
from station.policy import IssuancePolicy, ValidatedRequest
from station.profile import DeviceRef, device_certificate_builder, subject_for


class IssuanceRecord(Protocol):
    """What the issuer needs from the station database (station.audit.AuditDB implements it)."""

    def public_key_known(self, spki_sha256: str) -> bool: ...

    def reserve_certificate(self, *, serial: int, spki_sha256: str, subject: str, device_id: str | None,
                            batch_id: str | None = None, slot: str | None = None,
                            operator: str | None = None) -> None: ...

    def complete_certificate(self, serial: int, *, cert_pem: str, fingerprint_sha256: str,
                             not_before: dt.datetime, not_after: dt.datetime) -> None: ...

    def set_certificate_status(self, serial: int, status: str, *, reason: str | None = None) -> None: ...


@dataclass(frozen=True)
class IssuedCertificate:
    certificate: x509.Certificate
    request: ValidatedRequest
    serial: int
    fingerprint_sha256: str

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


class Issuer:
    """Thread-safe: the CA serialises token access; the record enforces key uniqueness."""

    def __init__(self, ca: CertificateAuthority, profile: ProfileConfig, policy: IssuancePolicy,
                 record: IssuanceRecord):
        self.ca = ca
        self.profile = profile
        self.policy = policy
        self.record = record

    def subject_for(self, device: DeviceRef) -> x509.Name:
        return subject_for(self.profile, device)

    def issue(self, csr_data: bytes, device: DeviceRef, *, batch_id: str | None = None, slot: str | None = None,
              operator: str | None = None) -> IssuedCertificate:
        subject = self.subject_for(device)
        request = self.policy.validate(csr_data, subject, self.record)
        serial = x509.random_serial_number()  # 159 random bits, positive, at most 20 octets
        self.record.reserve_certificate(serial=serial, spki_sha256=request.spki_sha256,
                                        subject=subject.rfc4514_string(), device_id=device.device_id,
                                        batch_id=batch_id, slot=slot, operator=operator)
        try:
            builder = device_certificate_builder(self.profile, subject=subject, public_key=request.public_key,
                                                 issuer=self.ca.certificate, serial=serial)
            cert = self.ca.sign(builder)
            # One DER encoding serves the fingerprint and the PEM (cert.fingerprint would encode again).
            der = cert.public_bytes(serialization.Encoding.DER)
            fingerprint = hashlib.sha256(der).hexdigest()
            self.record.complete_certificate(
                serial, cert_pem=ssl.DER_cert_to_PEM_cert(der),
                fingerprint_sha256=fingerprint, not_before=cert.not_valid_before_utc,
                not_after=cert.not_valid_after_utc)
        except CheckpointFailed:
            raise  # the certificate is recorded (issued); only the signed checkpoint after it failed
        except AuditWriteFailed:
            # The database itself failed (maybe after the certificate was recorded, in the
            # checkpoint that followed): voiding would fail or be refused and hide this error,
            # which must halt issuance. The next start's crash recovery closes the reservation.
            raise
        except BaseException as exc:
            # Whatever went wrong (a token error, a bug, an interrupt), nothing was released: a
            # reservation left `reserved` would look like a crash in flight to the next start.
            # If voiding fails too (the audit database broke), that error wins: it halts issuance.
            reason = str(exc) if isinstance(exc, HSMError) else f"issuance failed: {type(exc).__name__}: {exc}"
            self.record.set_certificate_status(serial, "void", reason=reason[:500])
            raise
        return IssuedCertificate(certificate=cert, request=request, serial=serial, fingerprint_sha256=fingerprint)
