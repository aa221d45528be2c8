"""The issuance policy: the security core. A CSR becomes a certificate only if every rule here
holds. Refuse by default: an unknown key type, curve or extension is refused, not ignored.

Rules, in the order they are checked (each refusal is a PolicyRefusal with a stable code):
  malformed-csr        the bytes are not one PEM or DER PKCS#10 request
  bad-csr-signature    the self-signature does not verify: the sender may not hold the key
  key-not-allowed      key type, curve or size is outside the configured policy
  extension-refused    the CSR asks for CA:TRUE, subjectAltName or any unknown extension
  subject-mismatch     the CSR subject is not exactly the subject the station asked for
  key-reused           the public key was certified before (checked again, atomically, when
                       the issuance is recorded)
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from station.config import PolicyConfig
from station.errors import PolicyRefusal

_EC_CURVES = {"secp256r1": "ec-p256", "secp384r1": "ec-p384", "secp521r1": "ec-p521"}

# Extensions a device may harmlessly put in its CSR. They are accepted but never copied: the
# certificate's extensions come from the profile alone.
_TOLERATED_EXTENSIONS = (x509.KeyUsage, x509.ExtendedKeyUsage, x509.SubjectKeyIdentifier)


class KnownKeys(Protocol):
    def public_key_known(self, spki_sha256: str) -> bool: ...


@dataclass(frozen=True)
class ValidatedRequest:
    csr: x509.CertificateSigningRequest
    public_key: object
    spki_sha256: str
    key_type: str  # "ec-p256", "rsa-2048", ...


def spki_sha256(public_key) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def parse_csr(data: bytes) -> x509.CertificateSigningRequest:
    text = data.lstrip()
    try:
        if text.startswith(b"-----BEGIN"):
            if text.count(b"-----BEGIN") != 1:
                raise ValueError("more than one PEM block")
            return x509.load_pem_x509_csr(text)
        return x509.load_der_x509_csr(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise PolicyRefusal("malformed-csr", f"CSR is not a valid PEM or DER PKCS#10 request ({reason})") from None


def describe_key(public_key) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return _EC_CURVES.get(public_key.curve.name, f"ec-{public_key.curve.name}")
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa-{public_key.key_size}"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "ed448"
    return type(public_key).__name__


class IssuancePolicy:
    def __init__(self, config: PolicyConfig):
        self.config = config

    def check_key(self, public_key) -> str:
        kind = describe_key(public_key)
        allowed = self.config.allowed_keys
        if isinstance(public_key, rsa.RSAPublicKey):
            if "rsa" not in allowed:
                raise PolicyRefusal("key-not-allowed", f"device key {kind} refused: RSA keys are not allowed by policy")
            if public_key.key_size < self.config.rsa_min_bits:
                raise PolicyRefusal("key-not-allowed",
                                    f"device key {kind} refused: RSA needs at least {self.config.rsa_min_bits} bits")
            return kind
        if kind not in allowed:
            raise PolicyRefusal("key-not-allowed",
                                f"device key {kind} refused (allowed: {', '.join(allowed)})")
        return kind

    def check_extensions(self, csr: x509.CertificateSigningRequest) -> None:
        try:
            extensions = list(csr.extensions)
        except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
            raise PolicyRefusal("extension-refused", f"CSR extensions cannot be parsed ({exc})") from None
        for ext in extensions:
            value = ext.value
            if isinstance(value, x509.BasicConstraints):
                if value.ca:
                    raise PolicyRefusal("extension-refused", "CSR asks for a CA certificate (basicConstraints CA:TRUE)")
                continue
            if isinstance(value, x509.SubjectAlternativeName):
                raise PolicyRefusal("extension-refused",
                                    "CSR asks for subjectAltName entries; the station does not issue them")
            if not isinstance(value, _TOLERATED_EXTENSIONS):
                raise PolicyRefusal("extension-refused", f"CSR asks for extension {ext.oid.dotted_string} "
                                                         f"({ext.oid._name}), which the station does not allow")

    def validate(self, csr_data: bytes, expected_subject: x509.Name, known_keys: KnownKeys) -> ValidatedRequest:
        """Run every rule; return the validated request or raise PolicyRefusal."""
        csr = parse_csr(csr_data)
        try:
            public_key = csr.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise PolicyRefusal("key-not-allowed", f"device key refused: unsupported key ({exc})") from None
        try:
            signature_ok = csr.is_signature_valid
        except (ValueError, UnsupportedAlgorithm):
            signature_ok = False
        if not signature_ok:
            raise PolicyRefusal("bad-csr-signature",
                                "CSR signature does not verify: the device did not prove it holds the key")
        key_type = self.check_key(public_key)
        self.check_extensions(csr)
        if csr.subject.public_bytes() != expected_subject.public_bytes():
            raise PolicyRefusal("subject-mismatch",
                                f"CSR subject {csr.subject.rfc4514_string()!r} is not the subject the station asked "
                                f"for ({expected_subject.rfc4514_string()!r})")
        fingerprint = spki_sha256(public_key)
        if known_keys.public_key_known(fingerprint):
            raise PolicyRefusal("key-reused", f"public key {fingerprint[:16]}... was already certified; "
                                              "the device must generate a fresh key")
        return ValidatedRequest(csr=csr, public_key=public_key, spki_sha256=fingerprint, key_type=key_type)
