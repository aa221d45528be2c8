"""Anchoring the audit key in the PKI (docs/audit.md, "What verify proves").

A checkpoint signature proves only that whoever holds the key signed it. A key read from a
file beside the database proves nothing against someone who can write that directory: they
re-sign the log and replace the file. The audit key is therefore certified by the issuing CA
(`hsm.ca.certify_audit_key`), and the verifier trusts the key only through a certificate
that chains to a root it brings itself (`--trust-anchor`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hsm.ca import AUDIT_SIGNING_EKU, fingerprint, validate_to_anchor
from hsm.errors import CAError
from station.audit.errors import AuditTampered
from station.errors import UsageError

# Purposes that would let an audit certificate pass for a device or server identity.
_FOREIGN_PURPOSES = {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH,
                     ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}


@dataclass(frozen=True)
class AnchoredKey:
    """The audit public key, and the path that vouches for it (leaf first, anchor last)."""

    public_key: ec.EllipticCurvePublicKey
    path: list[x509.Certificate]

    def describe(self) -> str:
        anchor = self.path[-1]
        return (f"audit certificate {self.path[0].subject.rfc4514_string()!r}, anchored in "
                f"{anchor.subject.rfc4514_string()!r} (sha256 {fingerprint(anchor)[:16]}...)")


AUDIT_CN_SUFFIX = " audit checkpoints"


def certified_station(cert: x509.Certificate) -> str | None:
    """The station id an audit certificate names (`hsm.ca.certify_audit_key`: CN "<id> audit
    checkpoints"), or None if its name is not of that form."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(names[0].value) if names else ""
    return common_name.removesuffix(AUDIT_CN_SUFFIX) if common_name.endswith(AUDIT_CN_SUFFIX) else None


def check_station(anchored: AnchoredKey, signed_for: set[str]) -> None:
    """The checkpoints must be signed for the station the certificate names: under one root
    every station's audit key is certified, and one station's key must not vouch for another
    station's log. Raises AuditTampered."""
    station = certified_station(anchored.path[0])
    others = sorted(signed_for - {station})
    if others:
        raise AuditTampered(f"audit key NOT TRUSTED: the checkpoints are signed for station {others[0]!r}, "
                            f"the audit certificate is for station {station!r}")


def load_certificates(path: Path, what: str) -> list[x509.Certificate]:
    """The PEM certificates in `path`; UsageError (exit code 2) if unreadable or none."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror}") from None
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise UsageError(f"{path} is not a PEM certificate ({what})") from None


def check_audit_purpose(cert: x509.Certificate) -> None:
    """The certificate must be an audit-signing certificate as `certify_audit_key` makes it:
    not a CA, keyUsage digitalSignature (no keyCertSign), extendedKeyUsage AUDIT_SIGNING_EKU
    and no TLS purpose, an EC key. Raises CAError saying what is missing."""
    subject = cert.subject.rfc4514_string()
    extensions = cert.extensions
    try:
        if extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise CAError(f"{subject!r} is a CA certificate, not an audit-signing certificate")
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
        purposes = set(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound as exc:
        missing = {x509.BasicConstraints.oid: "basicConstraints", x509.KeyUsage.oid: "keyUsage"}.get(
            exc.oid, "extendedKeyUsage")
        raise CAError(f"{subject!r} is not an audit-signing certificate (no {missing})") from None
    if not usage.digital_signature or usage.key_cert_sign:
        raise CAError(f"{subject!r} is not an audit-signing certificate (keyUsage must be digitalSignature)")
    if AUDIT_SIGNING_EKU not in purposes or purposes & _FOREIGN_PURPOSES:
        raise CAError(f"{subject!r} is not an audit-signing certificate (extendedKeyUsage must be "
                      f"{AUDIT_SIGNING_EKU.dotted_string} and no TLS purpose)")
    if not isinstance(cert.public_key(), ec.EllipticCurvePublicKey):
        raise CAError(f"{subject!r}: the audit key must be an EC key")


def anchored_audit_key(bundle: list[x509.Certificate], anchor: x509.Certificate) -> AnchoredKey:
    """Validate bundle[0] (the audit certificate; the rest are untrusted intermediates) up to
    `anchor`. Raises AuditTampered (exit code 1) if it is no audit certificate or does not
    chain to the anchor: the signatures could then be anyone's."""
    try:
        check_audit_purpose(bundle[0])
        path = validate_to_anchor(bundle[0], bundle[1:], anchor)
    except CAError as exc:
        raise AuditTampered(f"audit key NOT TRUSTED: {exc}") from None
    return AnchoredKey(bundle[0].public_key(), path)
