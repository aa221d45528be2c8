"""Real CSRs for tests, made with cryptography (and openssl for curves cryptography won't make),
and, for the requests cryptography refuses to build (a second extensionRequest, an extension
twice, version 2, invalid UTF-8), assembled field by field with asn1crypto and really signed."""
from __future__ import annotations

import subprocess
from pathlib import Path

from asn1crypto import core
from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

EXTENSION_REQUEST = "1.2.840.113549.1.9.14"  # PKCS#9 extensionRequest
MS_EXTENSION_REQUEST = "1.3.6.1.4.1.311.2.1.14"  # Microsoft msExtReq
CHALLENGE_PASSWORD = "1.2.840.113549.1.9.7"
UNSTRUCTURED_NAME = "1.2.840.113549.1.9.2"


def new_key(kind: str = "ec-p256"):
    if kind == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ec-p521":
        return ec.generate_private_key(ec.SECP521R1())
    if kind == "secp256k1":
        return ec.generate_private_key(ec.SECP256K1())
    if kind.startswith("rsa-e3-"):
        return rsa.generate_private_key(public_exponent=3, key_size=int(kind[7:]))
    if kind.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[4:]))
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(kind)


def make_csr(subject: x509.Name, key=None, extensions=(), pem: bool = True) -> bytes:
    key = key or new_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = builder.sign(key, algorithm)
    return csr.public_bytes(serialization.Encoding.PEM if pem else serialization.Encoding.DER)


def openssl_csr(tmp: Path, subject: x509.Name, curve: str, *, explicit: bool = False) -> bytes:
    """A CSR on a curve cryptography refuses to generate (e.g. prime192v1), made by openssl;
    `explicit` writes the curve's parameters into the key instead of naming the curve."""
    key = tmp / f"{curve}{'-explicit' if explicit else ''}.key"
    encoding = ["-param_enc", "explicit"] if explicit else []
    subprocess.run(["openssl", "ecparam", "-name", curve, *encoding, "-genkey", "-noout", "-out", str(key)],
                   check=True, capture_output=True)
    subj = "/" + "/".join(f"{a.rfc4514_attribute_name}={a.value}" for a in subject)
    subj = subj.replace("/2.5.4.5=", "/serialNumber=")
    out = subprocess.run(["openssl", "req", "-new", "-key", str(key), "-subj", subj, "-sha256"],
                         check=True, capture_output=True)
    return out.stdout


def corrupt_signature(csr_pem: bytes) -> bytes:
    """The same CSR with one bit of its signature flipped."""
    der = bytearray(x509.load_pem_x509_csr(csr_pem).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01
    return bytes(der)


def extension_der(ext: x509.ExtensionType, critical: bool = False) -> bytes:
    """One DER Extension, encoded by cryptography (taken from a throwaway CSR)."""
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).add_extension(ext, critical) \
        .sign(new_key(), hashes.SHA256())
    info = asn1_csr.CertificationRequest.load(csr.public_bytes(serialization.Encoding.DER))["certification_request_info"]
    return info["attributes"][0]["values"][0][0].dump()


def extension_request(*extensions: bytes) -> bytes:
    """The value of an extensionRequest (or msExtReq) attribute: a SEQUENCE of the given DER
    Extensions, duplicates included."""
    return asn1_x509.Extensions([asn1_x509.Extension.load(e) for e in extensions]).dump()


def assemble_csr(subject: x509.Name | bytes, key=None, *, version: int = 0,
                 attributes: list[tuple[str, list[bytes]]] = ()) -> bytes:
    """A DER CSR built field by field and signed by `key` (so only the tested defect is wrong):
    `subject` as a Name or raw DER, any version number, and attributes given as (OID, [DER
    value, ...]), repeated or multi-valued as the test needs."""
    key = key or new_key()
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    attrs = [asn1_csr.CRIAttribute.load(asn1_csr.Attribute(
        {"type": oid, "values": [core.Any.load(v) for v in values]}).dump()) for oid, values in attributes]
    info = asn1_csr.CertificationRequestInfo({
        "version": version,
        "subject": asn1_x509.Name.load(subject if isinstance(subject, bytes) else subject.public_bytes()),
        "subject_pk_info": asn1_keys.PublicKeyInfo.load(spki),
        "attributes": attrs,
    })
    return sign_request_info(info.dump(), key)


class _AnySequence(core.SequenceOf):
    _child_spec = core.Any


def sign_request_info(info: bytes, key) -> bytes:
    """A CSR around exactly these CertificationRequestInfo bytes, whatever they hold (only their
    outer tag and length must parse), with a valid signature by `key`."""
    if isinstance(key, rsa.RSAPrivateKey):
        algorithm, signature = "sha256_rsa", key.sign(info, padding.PKCS1v15(), hashes.SHA256())
    else:
        algorithm, signature = "sha256_ecdsa", key.sign(info, ec.ECDSA(hashes.SHA256()))
    return _AnySequence([core.Any.load(info, strict=True),
                         core.Any.load(asn1_csr.SignedDigestAlgorithm({"algorithm": algorithm}).dump()),
                         core.Any.load(core.OctetBitString(signature).dump())]).dump()
