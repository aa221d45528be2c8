"""A throw-away two-level test CA, generated in software for one conformance run.

The conformance kit must not need the station's HSM or its real CA: a firmware team runs it
on a bench. Certificates issued here are for checking the device's storage and proof of
possession only; they chain to a root that exists for the lifetime of the run and whose key
is never written anywhere.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hsm.ca import key_usage

_VALIDITY = dt.timedelta(days=1)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Station conformance kit (TEST ONLY)"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _ca_cert(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
             issuer_key: ec.EllipticCurvePrivateKey, path_length: int) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(key_usage("key_cert_sign", "crl_sign"), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


@dataclass
class TestCA:
    """Root -> issuing CA, both P-256. `issue(csr)` signs a device certificate."""

    __test__ = False  # not a pytest test class, despite the name

    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    issuing_key: ec.EllipticCurvePrivateKey
    issuing: x509.Certificate

    @classmethod
    def generate(cls) -> "TestCA":
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = _name("Conformance test root")
        root = _ca_cert(root_name, root_key, root_name, root_key, path_length=1)
        issuing_key = ec.generate_private_key(ec.SECP256R1())
        issuing = _ca_cert(_name("Conformance test issuing CA"), issuing_key, root_name,
                           root_key, path_length=0)
        return cls(root_key, root, issuing_key, issuing)

    def issue(self, csr: x509.CertificateSigningRequest) -> x509.Certificate:
        """A client certificate for the CSR's subject and key, valid for a day."""
        now = dt.datetime.now(dt.timezone.utc)
        public = csr.public_key()
        return (
            x509.CertificateBuilder()
            .subject_name(csr.subject).issuer_name(self.issuing.subject).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage("digital_signature"), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.issuing_key.public_key()), critical=False)
            .sign(self.issuing_key, hashes.SHA256())
        )

    def chain_pem(self) -> bytes:
        """The issuing CA, as a device presents it after its own certificate."""
        return self.issuing.public_bytes(serialization.Encoding.PEM)

    def anchors_pem(self) -> bytes:
        """The trust anchors the device should trust: the test root."""
        return self.root.public_bytes(serialization.Encoding.PEM)
