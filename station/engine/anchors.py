"""Server trust anchors the line writes onto every device (`[line] anchors`).

A device that connects to AWS IoT must trust the server's root (Amazon Root CA 1 and its
siblings). The station writes that bundle as the `anchors` object beside the certificate and
chain, compares the hash the device reports at COMMIT, and records the fingerprints in the
audit. The bundle is read and checked once, when the line starts: a bad file stops the start
with a message naming it, never a device mid-batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from station.errors import ConfigError

# protocol.md, section 3: the largest `anchors` object a device must accept.
MAX_ANCHORS_BYTES = 8192


@dataclass(frozen=True)
class TrustAnchors:
    pem: bytes
    fingerprints: tuple[str, ...]  # SHA-256 of each certificate's DER, hex


def load_anchors(path: Path) -> TrustAnchors:
    """Read a PEM bundle of CA certificates. Raises ConfigError naming the file."""
    where = f"[line] anchors {path}"
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read ({exc.strerror})") from None
    if len(pem) > MAX_ANCHORS_BYTES:
        raise ConfigError(f"{where}: {len(pem)} bytes, more than a device stores "
                          f"({MAX_ANCHORS_BYTES}); keep only the roots the device needs")
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise ConfigError(f"{where}: not a PEM bundle of certificates ({exc})") from None
    for cert in certs:
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise ConfigError(f"{where}: {cert.subject.rfc4514_string()} is not a CA certificate "
                              "(basicConstraints CA:TRUE); a trust anchor must be one")
    return TrustAnchors(pem=pem, fingerprints=tuple(c.fingerprint(hashes.SHA256()).hex() for c in certs))
