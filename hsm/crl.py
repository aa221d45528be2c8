"""Certificate revocation lists signed by the issuing CA key in the HSM (docs/ca.md, "Revocation").

What to revoke and the CRL number are the audit's business (station/audit/export_revocations.py);
this module only builds and signs the list, and checks the signature before it is released.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509

from hsm.ca import CertificateAuthority
from hsm.errors import SigningFailed
from hsm.signer import signature_hash_for

UTC = dt.timezone.utc


@dataclass(frozen=True)
class Revoked:
    serial: int
    revoked_at: dt.datetime
    reason: x509.ReasonFlags


def build_crl(ca: CertificateAuthority, revoked: list[Revoked], *, number: int, next_update_days: int,
              now: dt.datetime | None = None) -> x509.CertificateRevocationList:
    """A CRL (RFC 5280, v2) of `revoked`, numbered `number`, signed with the issuing key and
    verified against the issuing CA certificate. Raises SigningFailed if it does not verify."""
    now = (now or dt.datetime.now(UTC)).replace(microsecond=0)
    issuer_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=next_update_days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False)
    )
    for entry in revoked:
        item = x509.RevokedCertificateBuilder().serial_number(entry.serial).revocation_date(
            entry.revoked_at.replace(microsecond=0))
        # RFC 5280 5.3.1: the reason code "unspecified" SHOULD be absent.
        if entry.reason is not x509.ReasonFlags.unspecified:
            item = item.add_extension(x509.CRLReason(entry.reason), critical=False)
        builder = builder.add_revoked_certificate(item.build())
    crl = builder.sign(ca.signer, signature_hash_for(ca.signer))
    if not crl.is_signature_valid(ca.certificate.public_key()):
        raise SigningFailed("the HSM produced a CRL that does not verify against the issuing CA; nothing was written")
    return crl
