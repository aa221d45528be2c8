"""Private-key objects for cryptography whose sign() happens inside the token.

cryptography's `CertificateBuilder.sign()` (and CRL/CSR builders) accept any subclass of
`ec.EllipticCurvePrivateKey` / `rsa.RSAPrivateKey`; these subclasses delegate `sign()` to the
token and refuse every operation that would need the private key material.
"""
from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from pkcs11 import Mechanism

from hsm.errors import HSMError, SigningFailed
from hsm.token import Token

_RSA_MECHANISMS = {
    "sha256": Mechanism.SHA256_RSA_PKCS,
    "sha384": Mechanism.SHA384_RSA_PKCS,
    "sha512": Mechanism.SHA512_RSA_PKCS,
}


def _refuse(what: str):
    raise HSMError(f"the CA private key lives in the HSM and cannot be {what}")


def _digest(data: bytes, algorithm) -> bytes:
    if isinstance(algorithm, Prehashed):
        return data
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


class _HeldInToken:
    """What every token-held key shares: it cannot be exported, and copying it is sharing it
    (the object is only a handle on the token). Listed first in the bases, so its methods
    satisfy cryptography's abstract ones."""

    def __init__(self, token: Token, label: str):
        self._token = token
        self.label = label
        self._public = token.public_key(label)

    def private_numbers(self):
        _refuse("exported")

    def private_bytes(self, encoding, format, encryption_algorithm):
        _refuse("exported")

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


class HsmEcPrivateKey(_HeldInToken, ec.EllipticCurvePrivateKey):
    """An EC key held by the token under `label`."""

    def __init__(self, token: Token, label: str):
        super().__init__(token, label)
        if not isinstance(self._public, ec.EllipticCurvePublicKey):
            raise HSMError(f"key {label!r} on the token is not an EC key")

    def sign(self, data: bytes, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise SigningFailed("only ECDSA signatures are supported")
        # SoftHSM2 has no CKM_ECDSA_SHA256: hash here and sign the digest with plain
        # CKM_ECDSA. Handing it the undigested data silently yields a wrong signature.
        digest = _digest(data, signature_algorithm.algorithm)
        raw = self._token.sign_raw(self.label, Mechanism.ECDSA, digest)
        # The token returns r||s, each the size of the curve order; X.509 wants DER.
        half = len(raw) // 2
        if len(raw) % 2 or half == 0:
            raise SigningFailed(f"token returned a malformed ECDSA signature ({len(raw)} bytes)")
        return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.curve.key_size

    def exchange(self, algorithm, peer_public_key):
        _refuse("used for key exchange")


class HsmRsaPrivateKey(_HeldInToken, rsa.RSAPrivateKey):
    """An RSA key held by the token under `label` (PKCS#1 v1.5 signatures)."""

    def __init__(self, token: Token, label: str):
        super().__init__(token, label)
        if not isinstance(self._public, rsa.RSAPublicKey):
            raise HSMError(f"key {label!r} on the token is not an RSA key")

    def sign(self, data: bytes, padding_: padding.AsymmetricPadding, algorithm) -> bytes:
        if not isinstance(padding_, padding.PKCS1v15):
            raise SigningFailed("only PKCS#1 v1.5 RSA signatures are supported")
        if isinstance(algorithm, Prehashed):
            raise SigningFailed("pre-hashed RSA signing is not supported")
        mechanism = _RSA_MECHANISMS.get(algorithm.name)
        if mechanism is None:
            raise SigningFailed(f"unsupported hash {algorithm.name} for RSA signing")
        return self._token.sign_raw(self.label, mechanism, data)

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def decrypt(self, ciphertext, padding):
        _refuse("used for decryption")


def signer_for(token: Token, label: str):
    """The right signer object for the key `label` on the token."""
    if isinstance(token.public_key(label), ec.EllipticCurvePublicKey):
        return HsmEcPrivateKey(token, label)
    # Token.public_key refuses every type but EC and RSA; the RSA signer checks its own.
    return HsmRsaPrivateKey(token, label)


def signature_hash_for(signer) -> hashes.HashAlgorithm:
    """SHA-384 for P-384 keys (matching strength), SHA-256 otherwise."""
    if isinstance(signer, ec.EllipticCurvePrivateKey) and signer.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()
