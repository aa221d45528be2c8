"""A software root CA standing in for the offline root ceremony of the production set-up."""
from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from hsm.ca import key_usage


class OfflineRoot:
    """Self-signed root ("CN=Offline Root", P-384, SHA-384) that certifies CA keys."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP384R1())
        self.name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Offline Root")])
        self.certificate = self.certify(self.name, self.key.public_key(), path_length=None)

    def certify(self, subject: x509.Name, public_key, *, path_length: int | None = 0,
                usage: tuple[str, ...] | None = ("key_cert_sign", "crl_sign")) -> x509.Certificate:
        """A CA certificate for `public_key`; usage None leaves keyUsage out."""
        now = dt.datetime.now(dt.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.name).public_key(public_key)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
                   .not_valid_after(now + dt.timedelta(days=365))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
        if usage is not None:
            builder = builder.add_extension(key_usage(*usage), critical=True)
        return builder.sign(self.key, hashes.SHA384())
