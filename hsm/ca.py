"""The issuing CA: its key in the token, its certificate and chain on disk.

Two set-ups (docs/ca.md):
* development: `create_development_ca` makes a root and an issuing key in the token and
  certifies both, the root signing itself and the issuing CA;
* production: `create_issuing_csr` writes a CSR for the token's issuing key for an offline
  root to sign; `check_issuing_import` accepts the signed certificate and chain only if the
  certificate's key is the token's key, it is a CA, and the chain verifies up to a root.

Both set-ups end with `certify_audit_key`: the issuing CA certifies the audit checkpoint key,
so the audit's trust rests on the PKI rather than on a key file beside the database, and
`validate_to_anchor` walks such a certificate up to a trust anchor the verifier brings.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from hsm.errors import CAError, SigningFailed
from hsm.signer import signature_hash_for, signer_for
from hsm.token import KeySpec, Token

UTC = dt.timezone.utc

# extendedKeyUsage of the audit-signing certificate: "signs audit checkpoints of a
# certificate injection station". A UUID OID (ITU-T X.667, arc 2.25) needs no registration and
# names this purpose alone: no TLS client or server, no other product, accepts it.
AUDIT_SIGNING_EKU = x509.ObjectIdentifier("2.25.262906608077278830483248625260806719560")


_KEY_USAGE_BITS = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                   "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")


def key_usage(*granted: str) -> x509.KeyUsage:
    """keyUsage with exactly the named bits set, e.g. key_usage("key_cert_sign", "crl_sign")."""
    unknown = set(granted) - set(_KEY_USAGE_BITS)
    if unknown:
        raise ValueError(f"unknown keyUsage bit(s): {', '.join(sorted(unknown))}")
    return x509.KeyUsage(**{bit: bit in granted for bit in _KEY_USAGE_BITS})


def _name(common_name: str, organization: str | None, country: str | None) -> x509.Name:
    attrs = []
    if country:
        attrs.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _ca_builder(subject: x509.Name, issuer: x509.Name, public_key, issuer_public_key, days: int,
                path_length: int | None) -> x509.CertificateBuilder:
    now = dt.datetime.now(UTC).replace(microsecond=0)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(key_usage("key_cert_sign", "crl_sign"), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False)
    )


def create_development_ca(token: Token, *, root_label: str, issuing_label: str, key_spec: KeySpec,
                          organization: str, country: str | None, root_cn: str, issuing_cn: str,
                          root_days: int = 7300, issuing_days: int = 3650) -> tuple[x509.Certificate, x509.Certificate]:
    """Create root and issuing keys inside the token and certify them. Returns (root, issuing)."""
    root_public = token.generate_key(root_label, key_spec)
    issuing_public = token.generate_key(issuing_label, key_spec)
    root_signer = signer_for(token, root_label)
    root_name = _name(root_cn, organization, country)
    root = _ca_builder(root_name, root_name, root_public, root_public, root_days, None).sign(
        root_signer, signature_hash_for(root_signer))
    issuing = _ca_builder(_name(issuing_cn, organization, country), root_name, issuing_public, root_public,
                          issuing_days, 0).sign(root_signer, signature_hash_for(root_signer))
    issuing.verify_directly_issued_by(root)
    return root, issuing


def create_issuing_csr(token: Token, *, issuing_label: str, key_spec: KeySpec, organization: str,
                       country: str | None, issuing_cn: str) -> x509.CertificateSigningRequest:
    """Generate the issuing key in the token (if absent) and return a CSR for the offline root."""
    if not token.has_key(issuing_label):
        token.generate_key(issuing_label, key_spec)
    signer = signer_for(token, issuing_label)
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(issuing_cn, organization, country))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(signer, signature_hash_for(signer))
    )


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def verify_chain(chain: list[x509.Certificate], at: dt.datetime | None = None) -> None:
    """chain = [issuing, ..., root]; each certificate must be a CA issued by the next, the last
    self-signed, and all valid at `at` (default: now). Raises CAError saying which link is wrong."""
    if not chain:
        raise CAError("the CA chain is empty")
    now = at or dt.datetime.now(UTC)
    for position, cert in enumerate(chain):
        subject = cert.subject.rfc4514_string()
        if not _is_ca(cert):
            raise CAError(f"certificate {subject!r} is not a CA (basicConstraints CA:TRUE missing)")
        if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
            raise CAError(f"CA certificate {subject!r} is not valid now")
        parent = chain[position + 1] if position + 1 < len(chain) else cert
        try:
            cert.verify_directly_issued_by(parent)
        except (ValueError, TypeError, Exception) as exc:  # InvalidSignature has no common base
            what = "is not self-signed" if parent is cert else f"is not issued by {parent.subject.rfc4514_string()!r}"
            raise CAError(f"CA certificate {subject!r} {what} ({type(exc).__name__})") from None


def check_issuing_import(token: Token, issuing_label: str, chain: list[x509.Certificate]) -> None:
    """The production import check: chain[0] certifies the token's issuing key and the chain verifies."""
    if not chain:
        raise CAError("the file holds no certificate")
    token_key = token.public_key(issuing_label).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    cert_key = chain[0].public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if token_key != cert_key:
        raise CAError(f"the first certificate ({chain[0].subject.rfc4514_string()}) is not for the token's "
                      f"issuing key {issuing_label!r}")
    verify_chain(chain)
    try:
        # Device certificates carry an authorityKeyIdentifier copied from this extension;
        # RFC 5280 requires it in every CA certificate.
        chain[0].extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        raise CAError(f"the issuing CA certificate ({chain[0].subject.rfc4514_string()}) has no "
                      "subjectKeyIdentifier (RFC 5280 requires one in CA certificates)") from None
    try:
        usage = chain[0].extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.key_cert_sign:
        raise CAError(f"the issuing CA certificate ({chain[0].subject.rfc4514_string()}) does not allow "
                      "certificate signing (keyUsage keyCertSign missing)")


@dataclass
class CertificateAuthority:
    """The issuing CA in use: signs with the token key, checks every signature it makes."""

    token: Token
    issuing_label: str
    chain: list[x509.Certificate]  # issuing CA first, root last
    _signer: object = field(init=False, repr=False)
    _signature_hash: hashes.HashAlgorithm = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Refuse by default: a CA key the token would let out is not a CA key to sign with.
        attrs = self.token.private_key_attributes(self.issuing_label)
        if not attrs["sensitive"] or attrs["extractable"]:
            raise CAError(f"issuing key {self.issuing_label!r} on the token is "
                          f"{'extractable' if attrs['extractable'] else 'not sensitive'}; refusing to sign with "
                          "a key that can leave the HSM")
        check_issuing_import(self.token, self.issuing_label, self.chain)
        self._signer = signer_for(self.token, self.issuing_label)
        # Fixed by the key for the CA's life: worked out once, not per certificate.
        self._signature_hash = signature_hash_for(self._signer)

    @property
    def certificate(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def signer(self):
        return self._signer

    def sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        """Sign `builder` with the HSM key and verify the result against the issuing CA
        certificate before it is returned: a silent signing or encoding bug never leaves."""
        cert = builder.sign(self._signer, self._signature_hash)
        try:
            cert.verify_directly_issued_by(self.certificate)
        except Exception as exc:  # InvalidSignature, ValueError, TypeError
            raise SigningFailed(f"the HSM produced a certificate that does not verify against the issuing CA "
                                f"({type(exc).__name__}); nothing was released") from None
        return cert

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)


def aws_verification_certificate(ca: CertificateAuthority, registration_code: str,
                                 days: int = 1) -> x509.Certificate:
    """The certificate AWS IoT asks for when the issuing CA is registered: subject CN = the
    account's registration code, signed by the issuing CA key (proof that we hold it).

    Its key pair is made in memory and thrown away: AWS never needs it, and without it the
    certificate can authenticate nothing. It is no CA, has no clientAuth, and lives a day."""
    from cryptography.hazmat.primitives.asymmetric import ec as _ec

    if not registration_code or not registration_code.isalnum() or len(registration_code) > 64:
        raise CAError("the registration code must be 1-64 letters and digits (`aws iot get-registration-code`)")
    throwaway = _ec.generate_private_key(_ec.SECP256R1()).public_key()
    now = dt.datetime.now(UTC).replace(microsecond=0)
    issuer_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, registration_code)]))
        .issuer_name(ca.certificate.subject)
        .public_key(throwaway)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca.certificate.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage("digital_signature"), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(throwaway), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False)
    )
    return ca.sign(builder)


def certify_audit_key(ca: CertificateAuthority, audit_public_key, *, station_id: str,
                      organization: str | None) -> x509.Certificate:
    """The audit-signing certificate: the issuing CA certifies the audit checkpoint key.

    End entity (basicConstraints CA:FALSE), keyUsage digitalSignature only, extendedKeyUsage
    AUDIT_SIGNING_EKU only (so no device or TLS certificate can pass for it, nor it for them),
    valid as long as the issuing CA."""
    common_name = f"{station_id} audit checkpoints"  # station.audit.anchor.certified_station reads it
    if len(common_name) > 64:
        raise CAError(f"station id {station_id!r} is too long for the audit certificate's name (64 characters)")
    now = dt.datetime.now(UTC).replace(microsecond=0)
    issuer_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization, None))
        .issuer_name(ca.certificate.subject)
        .public_key(audit_public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(ca.certificate.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage("digital_signature"), critical=True)
        .add_extension(x509.ExtendedKeyUsage([AUDIT_SIGNING_EKU]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(audit_public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False)
    )
    return ca.sign(builder)


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
        return True
    except Exception:  # InvalidSignature, ValueError (names differ), TypeError (key type)
        return False


def validate_to_anchor(leaf: x509.Certificate, intermediates: list[x509.Certificate],
                       anchor: x509.Certificate, at: dt.datetime | None = None) -> list[x509.Certificate]:
    """Build and check the path leaf -> intermediates... -> anchor, trusting only `anchor`.

    Every issuer on the path must be a CA (basicConstraints CA:TRUE), allow keyCertSign if it
    has a keyUsage, respect its pathLenConstraint, and every certificate (the anchor too) must
    be valid at `at` (default: now). Returns the path, leaf first, anchor last. Raises CAError
    naming the certificate that breaks it. The leaf's own purpose is the caller's to check."""
    at = at or dt.datetime.now(UTC)
    path = [leaf]
    while not _issued_by(path[-1], anchor):
        parent = next((c for c in intermediates if c not in path and _issued_by(path[-1], c)), None)
        if parent is None or len(path) > 8:
            raise CAError(f"certificate {path[-1].subject.rfc4514_string()!r} does not chain to the trust anchor "
                          f"{anchor.subject.rfc4514_string()!r} (issued by {path[-1].issuer.rfc4514_string()!r}, "
                          "which is neither the anchor nor a CA it certified)")
        path.append(parent)
    path.append(anchor)
    for position, cert in enumerate(path):
        subject = cert.subject.rfc4514_string()
        if not (cert.not_valid_before_utc <= at <= cert.not_valid_after_utc):
            raise CAError(f"certificate {subject!r} is not valid at {at:%Y-%m-%d %H:%M} UTC")
        if position == 0:
            continue
        if not _is_ca(cert):
            raise CAError(f"certificate {subject!r} issues certificates but is not a CA (basicConstraints)")
        try:
            if not cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign:
                raise CAError(f"CA certificate {subject!r} does not allow certificate signing (keyCertSign)")
        except x509.ExtensionNotFound:
            pass
        limit = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
        if limit is not None and position - 1 > limit:
            raise CAError(f"CA certificate {subject!r} allows {limit} intermediate CA(s) below it, the path has "
                          f"{position - 1}")
    return path


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()
