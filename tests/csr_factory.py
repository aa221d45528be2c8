"""Real CSRs for tests, made with cryptography (and openssl for curves cryptography won't make)."""
from __future__ import annotations

import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def new_key(kind: str = "ec-p256"):
    if kind == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "secp256k1":
        return ec.generate_private_key(ec.SECP256K1())
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


def openssl_csr(tmp: Path, subject: x509.Name, curve: str) -> bytes:
    """A CSR on a curve cryptography refuses to generate (e.g. prime192v1), made by openssl."""
    key = tmp / f"{curve}.key"
    subprocess.run(["openssl", "ecparam", "-name", curve, "-genkey", "-noout", "-out", str(key)], check=True,
                   capture_output=True)
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
