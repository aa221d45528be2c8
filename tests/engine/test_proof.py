"""Proof of possession (station/proof.py), the one rule the pipeline and the conformance kit
apply: a signature by the certificate's own key over this nonce passes; anything else is
refused in the words the operator reads, and a key type with no defined proof never passes."""
from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from station.proof import NOT_DEFINED, NOT_VERIFIED, proof_failure

NONCE = os.urandom(32)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
P384_KEY = ec.generate_private_key(ec.SECP384R1())
RSA_KEY = rsa.generate_private_key(65537, 2048)


def ec_sign(key, data, digest=hashes.SHA256()):
    return key.sign(data, ec.ECDSA(digest))


def rsa_sign(key, data, pad=None, digest=hashes.SHA256()):
    return key.sign(data, pad or padding.PKCS1v15(), digest)


@pytest.mark.parametrize("key, sign", [(EC_KEY, ec_sign), (P384_KEY, ec_sign), (RSA_KEY, rsa_sign)],
                         ids=["ec-p256", "ec-p384", "rsa-2048"])
def test_the_key_s_own_signature_over_the_nonce_proves_possession(key, sign):
    assert proof_failure(key.public_key(), NONCE, sign(key, NONCE)) is None


@pytest.mark.parametrize("signature", [
    lambda: ec_sign(EC_KEY, os.urandom(32)),                          # another nonce
    lambda: ec_sign(ec.generate_private_key(ec.SECP256R1()), NONCE),  # another key
    lambda: ec_sign(EC_KEY, NONCE, hashes.SHA384()),                  # another hash
    lambda: b"",                                                      # nothing
    lambda: b"\x30\x06\x02\x01\x01\x02\x01\x01",                      # r = s = 1
], ids=["other-nonce", "other-key", "sha384", "empty", "trivial"])
def test_an_ec_signature_that_is_not_the_key_s_over_this_nonce_is_refused(signature):
    assert proof_failure(EC_KEY.public_key(), NONCE, signature()) == NOT_VERIFIED


@pytest.mark.parametrize("signature", [
    lambda: rsa_sign(RSA_KEY, os.urandom(32)),
    lambda: rsa_sign(rsa.generate_private_key(65537, 2048), NONCE),
    lambda: rsa_sign(RSA_KEY, NONCE, padding.PSS(padding.MGF1(hashes.SHA256()), 32)),  # not PKCS#1 v1.5
    lambda: rsa_sign(RSA_KEY, NONCE, digest=hashes.SHA1()),
    lambda: rsa_sign(RSA_KEY, NONCE)[:-1],                           # one byte short
], ids=["other-nonce", "other-key", "pss", "sha1", "short"])
def test_an_rsa_signature_that_is_not_pkcs1_sha256_over_this_nonce_is_refused(signature):
    assert proof_failure(RSA_KEY.public_key(), NONCE, signature()) == NOT_VERIFIED


def test_a_key_type_with_no_defined_proof_never_passes_even_with_a_valid_signature():
    key = ed25519.Ed25519PrivateKey.generate()
    assert proof_failure(key.public_key(), NONCE, key.sign(NONCE)) == NOT_DEFINED


def test_the_words_the_operator_reads():
    assert NOT_VERIFIED == ("proof of possession failed: the device's signature over the station's nonce does "
                            "not verify with the certificate's key")
    assert NOT_DEFINED == "proof of possession is not defined for this key type"
