"""The issuance policy: the security core. A CSR becomes a certificate only if every rule here
holds. Refuse by default: an unknown key type, curve, attribute or extension is refused, not
ignored, and the whole request is read, not only the parts cryptography exposes.

Rules, in the order they are checked (each refusal is a PolicyRefusal with a stable code):
  malformed-csr        the bytes are not one PEM or DER PKCS#10 request, its version is not 1
                       (encoded 0), or anything in it cannot be parsed (invalid UTF-8 in a
                       UTF8String, a bad attribute or extension encoding)
  bad-csr-signature    the self-signature does not verify: the sender may not hold the key
  attribute-refused    an attribute other than one extension request (extensionRequest or
                       msExtReq), a second extension request, an attribute with several values
  key-explicit-curve   an EC key given by explicit curve parameters instead of a named curve
  key-not-allowed      key type, curve or size is outside the configured policy; an RSA
                       exponent other than 65537; Ed25519 (AWS IoT does not accept it)
  extension-refused    the CSR asks for CA:TRUE, subjectAltName or any unknown extension, or
                       for one extension twice
  subject-mismatch     the CSR subject is not exactly the subject the station asked for
  key-reused           the public key was certified before (checked again, atomically, when
                       the issuance is recorded)
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from asn1crypto import csr as asn1_csr
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from station.config import PolicyConfig
from station.errors import PolicyRefusal

_EC_CURVES = {"secp256r1": "ec-p256", "secp384r1": "ec-p384", "secp521r1": "ec-p521"}

# Extensions a device may harmlessly put in its CSR. They are accepted but never copied: the
# certificate's extensions come from the profile alone.
_TOLERATED_EXTENSIONS = (x509.KeyUsage, x509.ExtendedKeyUsage, x509.SubjectKeyIdentifier)

# The attributes that carry requested extensions: PKCS#9 extensionRequest and Microsoft's
# msExtReq. cryptography reads only the first of either, so a second one could hide CA:TRUE
# or a subjectAltName from `csr.extensions`: at most one is allowed, and no other attribute.
_EXTENSION_REQUESTS = {"1.2.840.113549.1.9.14": "extensionRequest", "1.3.6.1.4.1.311.2.1.14": "msExtReq"}
_ATTRIBUTE_NAMES = {"1.2.840.113549.1.9.7": "challengePassword", "1.2.840.113549.1.9.2": "unstructuredName",
                    "1.2.840.113549.1.9.8": "unstructuredAddress", **_EXTENSION_REQUESTS}
_RSA_EXPONENT = 65537


class KnownKeys(Protocol):
    def public_key_known(self, spki_sha256: str) -> bool: ...


@dataclass(frozen=True)
class ValidatedRequest:
    public_key: object
    spki_sha256: str
    key_type: str  # "ec-p256", "rsa-2048", ...


def spki_sha256(public_key) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _malformed(exc: BaseException, part: str = "") -> PolicyRefusal:
    text = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
    where = f"{part}: " if part else ""
    return PolicyRefusal("malformed-csr", f"CSR is not a valid PEM or DER PKCS#10 request ({where}{text})")


def parse_csr(data: bytes) -> x509.CertificateSigningRequest:
    text = data.lstrip()
    try:
        if text.startswith(b"-----BEGIN"):
            if text.count(b"-----BEGIN") != 1:
                raise ValueError("more than one PEM block")
            return x509.load_pem_x509_csr(text)
        return x509.load_der_x509_csr(data)
    except x509.InvalidVersion as exc:
        # Not a ValueError: PKCS#10 defines only version 1 (encoded 0).
        raise _malformed(exc, "version") from None
    except Exception as exc:  # untrusted bytes: whatever the parser raises is a malformed request
        raise _malformed(exc) from None


@dataclass(frozen=True)
class _RequestParts:
    """What the policy reads beyond cryptography's view of the CSR, from asn1crypto."""

    attributes: tuple[tuple[str, int], ...]  # (attribute OID, number of values), in order
    extension_oids: tuple[str, ...]  # every extension in every extension request, in order
    ec_parameters: str | None  # "named", "specified" or "implicit_ca" for an EC key


def _read_parts(csr: x509.CertificateSigningRequest) -> _RequestParts:
    """Walk the request's attributes and key algorithm; raise malformed-csr if they cannot be read."""
    try:
        info = asn1_csr.CertificationRequest.load(csr.public_bytes(serialization.Encoding.DER), strict=True)[
            "certification_request_info"]
        attributes, extension_oids = [], []
        for raw in info["attributes"]:
            # The generic Attribute spec reads every attribute the same way (a SET of values),
            # whether or not asn1crypto knows its type.
            attribute = asn1_csr.Attribute.load(raw.dump())
            oid, values = attribute["type"].dotted, list(attribute["values"])
            attributes.append((oid, len(values)))
            if oid in _EXTENSION_REQUESTS:
                for value in values:
                    for extension in asn1_x509.Extensions.load(value.dump(), strict=True):
                        extension_oids.append(extension["extn_id"].dotted)
                        extension["critical"].native  # parsed now, so a bad encoding is malformed here
        algorithm = info["subject_pk_info"]["algorithm"]
        ec_parameters = algorithm["parameters"].name if algorithm["algorithm"].native == "ec" else None
    except Exception as exc:  # untrusted bytes: whatever the parser raises is a malformed request
        raise _malformed(exc, "attributes") from None
    return _RequestParts(tuple(attributes), tuple(extension_oids), ec_parameters)


def _read_subject(csr: x509.CertificateSigningRequest) -> x509.Name:
    try:
        subject = csr.subject
        subject.public_bytes()  # decodes every value: invalid UTF-8 in a UTF8String raises here
        return subject
    except Exception as exc:  # untrusted bytes: whatever the parser raises is a malformed request
        raise _malformed(exc, "subject") from None


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

    def check_key(self, public_key, ec_parameters: str | None = None) -> str:
        kind = describe_key(public_key)
        allowed = self.config.allowed_keys
        if isinstance(public_key, ec.EllipticCurvePublicKey) and ec_parameters not in (None, "named"):
            # cryptography quietly maps explicit P-256 parameters onto the named curve; a device
            # that sends them has a non-standard key encoder, and RFC 5480 requires a named curve.
            raise PolicyRefusal("key-explicit-curve", f"device key {kind} refused: its curve is given by explicit "
                                                      f"parameters ({ec_parameters}); only a named curve is accepted")
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            raise PolicyRefusal("key-not-allowed", "device key ed25519 refused: AWS IoT does not accept Ed25519 "
                                                   "device certificates")
        if isinstance(public_key, rsa.RSAPublicKey):
            if "rsa" not in allowed:
                raise PolicyRefusal("key-not-allowed", f"device key {kind} refused: RSA keys are not allowed by policy")
            if public_key.key_size < self.config.rsa_min_bits:
                raise PolicyRefusal("key-not-allowed",
                                    f"device key {kind} refused: RSA needs at least {self.config.rsa_min_bits} bits")
            exponent = public_key.public_numbers().e
            if exponent != _RSA_EXPONENT:
                raise PolicyRefusal("key-not-allowed", f"device key {kind} refused: its public exponent is "
                                                       f"{exponent}; only {_RSA_EXPONENT} is accepted")
            return kind
        if kind not in allowed:
            raise PolicyRefusal("key-not-allowed",
                                f"device key {kind} refused (allowed: {', '.join(allowed)})")
        return kind

    def check_attributes(self, parts: _RequestParts) -> None:
        requests = [oid for oid, _count in parts.attributes if oid in _EXTENSION_REQUESTS]
        if len(requests) > 1:
            names = ", ".join(_EXTENSION_REQUESTS[oid] for oid in requests)
            raise PolicyRefusal("attribute-refused", f"CSR carries more than one extension request ({names})")
        for oid, count in parts.attributes:
            name = _ATTRIBUTE_NAMES.get(oid, oid)
            if oid not in _EXTENSION_REQUESTS:
                raise PolicyRefusal("attribute-refused", f"CSR carries attribute {name}, which the station does "
                                                         "not accept (only one extension request is)")
            if count != 1:
                raise PolicyRefusal("attribute-refused", f"CSR attribute {name} has {count} values; exactly one "
                                                         "is allowed")

    def check_extensions(self, csr: x509.CertificateSigningRequest, parts: _RequestParts) -> None:
        seen = set()
        for oid in parts.extension_oids:
            if oid in seen:
                raise PolicyRefusal("extension-refused", f"CSR asks for extension {oid} twice")
            seen.add(oid)
        try:
            extensions = list(csr.extensions)
        except Exception as exc:  # untrusted bytes: whatever the parser raises is a refusal
            raise PolicyRefusal("extension-refused", f"CSR extensions cannot be parsed ({exc})") from None
        if [ext.oid.dotted_string for ext in extensions] != list(parts.extension_oids):
            # Two parsers read the same bytes; if they disagree the request is not what it seems.
            raise PolicyRefusal("malformed-csr", "CSR extensions read differently by two parsers")
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
        parts = _read_parts(csr)
        subject = _read_subject(csr)
        try:
            public_key = csr.public_key()
        except Exception as exc:  # UnsupportedAlgorithm, ValueError: a key cryptography cannot load
            raise PolicyRefusal("key-not-allowed", f"device key refused: unsupported key ({exc})") from None
        try:
            signature_ok = csr.is_signature_valid
        except Exception:  # an unknown or malformed signature algorithm proves nothing
            signature_ok = False
        if not signature_ok:
            raise PolicyRefusal("bad-csr-signature",
                                "CSR signature does not verify: the device did not prove it holds the key")
        self.check_attributes(parts)
        key_type = self.check_key(public_key, parts.ec_parameters)
        self.check_extensions(csr, parts)
        if subject.public_bytes() != expected_subject.public_bytes():
            raise PolicyRefusal("subject-mismatch",
                                f"CSR subject {subject.rfc4514_string()!r} is not the subject the station asked "
                                f"for ({expected_subject.rfc4514_string()!r})")
        fingerprint = spki_sha256(public_key)
        if known_keys.public_key_known(fingerprint):
            raise PolicyRefusal("key-reused", f"public key {fingerprint[:16]}... was already certified; "
                                              "the device must generate a fresh key")
        return ValidatedRequest(public_key=public_key, spki_sha256=fingerprint, key_type=key_type)
