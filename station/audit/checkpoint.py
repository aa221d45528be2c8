"""Signed checkpoints: what is signed, how, and how a signature is checked (docs/audit.md).

The signer is any `ec.EllipticCurvePrivateKey`; in production the lead's HSM signer, whose
sign() runs on the token, so this module never sees key material.
"""
from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from station.audit.chain import canonical_json

# Domain separation: a signature made for a checkpoint can never pass for another document
# signed by the same audit key.
PAYLOAD_FORMAT = "station-audit-checkpoint/1"
SIGNED_FIELDS = ("station_id", "last_event_id", "last_event_hash", "event_count", "ts")


def payload(row: dict) -> bytes:
    """The exact bytes signed: canonical JSON of the signed fields plus `format`."""
    doc = {name: row[name] for name in SIGNED_FIELDS}
    doc["format"] = PAYLOAD_FORMAT
    return canonical_json(doc)


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """SHA-256 (hex) of the public key's SubjectPublicKeyInfo DER: names the audit key."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def sign(signer: ec.EllipticCurvePrivateKey, row: dict) -> str:
    """ECDSA with SHA-256 over payload(row); returns the DER signature as lowercase hex."""
    return signer.sign(payload(row), ec.ECDSA(hashes.SHA256())).hex()


def signature_valid(public_key: ec.EllipticCurvePublicKey, row: dict) -> bool:
    """True if row["signature"] (hex DER) is a valid signature of payload(row)."""
    try:
        public_key.verify(bytes.fromhex(row["signature"]), payload(row),
                          ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
