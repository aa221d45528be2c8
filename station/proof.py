"""Proof of possession: does the device hold the private key of the certificate it was given?

The station sends a fresh random nonce and the device signs those 32 bytes with the key it
generated (docs/protocol.md: PROVE, and SIGN in the compact extension): ECDSA with SHA-256 for
an EC key, RSASSA-PKCS1-v1_5 with SHA-256 for RSA. The pipeline (before a device can pass)
and the conformance kit (before a board is called conformant) check it here: one rule.
"""
from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

NOT_VERIFIED = ("proof of possession failed: the device's signature over the station's nonce does not verify "
                "with the certificate's key")
NOT_DEFINED = "proof of possession is not defined for this key type"


def proof_failure(public_key, nonce: bytes, signature: bytes) -> str | None:
    """None when `signature` is a signature over `nonce` by the private half of `public_key`;
    otherwise why not (NOT_VERIFIED or NOT_DEFINED), in the words the operator reads."""
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, nonce, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, nonce, padding.PKCS1v15(), hashes.SHA256())
        else:
            # Policy refuses every other key type before anything is signed (Ed25519: AWS IoT
            # does not accept its certificates), so none reaches a proof. Should one ever be
            # allowed, its devices fail here until its proof is defined: never pass unproven.
            return NOT_DEFINED
    except (InvalidSignature, ValueError):
        # cryptography 4x answers every malformed signature tried (empty, short, too long, not
        # DER) with InvalidSignature; ValueError is caught too, so a library that refuses one
        # that way still gives the operator this reason.
        return NOT_VERIFIED
    return None
