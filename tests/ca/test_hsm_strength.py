"""What the HSM layer must get right, pinned in this process so that a planted bug in hsm/
fails here (issue 12): the signature hash matches the CA key's strength, every certificate
the CA makes is checked against the issuing CA certificate before it leaves, and the signer
turns the token's raw r||s into the DER X.509 wants, refusing what it cannot sign.

Everything runs on the session's real SoftHSM2 token; the P-384 CA is made on it under its
own labels (SoftHSM2 is initialised once per process, so a second station is not possible
here; test_keys.py checks the same through `station init --key-type ec-p384` in a subprocess).
"""
from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature
from cryptography.x509.oid import SignatureAlgorithmOID
from pkcs11 import Mechanism

from hsm.ca import CertificateAuthority
from hsm.errors import HSMError, SigningFailed
from hsm.signer import HsmEcPrivateKey, HsmRsaPrivateKey, signature_hash_for, signer_for
from hsm.token import KeySpec
from station.issuance import Issuer
from tests.csr_factory import make_csr


def test_a_p384_ca_signs_every_certificate_with_sha384(station, p384_ca, device):
    issuing, root = p384_ca.chain
    issuer = Issuer(ca=p384_ca, profile=station.issuer.profile, policy=station.issuer.policy,
                    record=station.issuer.record)
    issued = issuer.issue(make_csr(issuer.subject_for(device)), device).certificate
    for cert in (root, issuing, issued):
        assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA384, cert.subject
    issued.verify_directly_issued_by(issuing)
    assert isinstance(signature_hash_for(p384_ca.signer), hashes.SHA384)


def test_a_p256_ca_signs_with_sha256(station):
    assert isinstance(signature_hash_for(station.ca.signer), hashes.SHA256)
    assert station.ca.certificate.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256


def test_the_signer_reports_the_token_key_it_signs_with(station, p384_ca):
    signer = p384_ca.signer
    assert isinstance(signer, HsmEcPrivateKey) and signer.label == "p384-issuing"
    assert isinstance(signer.curve, ec.SECP384R1) and signer.key_size == 384
    assert signer.public_key().public_numbers() == p384_ca.certificate.public_key().public_numbers()


def test_the_signer_turns_the_tokens_r_s_into_a_der_signature_that_verifies(station):
    signer = station.ca.signer
    data = b"tbs bytes"
    signature = signer.sign(data, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(signature)
    assert r > 0 and s > 0
    signer.public_key().verify(signature, data, ec.ECDSA(hashes.SHA256()))
    # A digest handed over already made is signed as it is, not hashed again.
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    prehashed = signer.sign(digest.finalize(), ec.ECDSA(Prehashed(hashes.SHA256())))
    signer.public_key().verify(prehashed, data, ec.ECDSA(hashes.SHA256()))


class _CutAnswer(HsmEcPrivateKey):
    """The real signer over a token whose answer comes back cut to `keep` bytes."""

    def __init__(self, station, keep: int):
        super().__init__(station.token, station.ca.issuing_label)
        real = self._token

        class CutToken:
            def sign_raw(self, label, mechanism, data):
                return real.sign_raw(label, mechanism, data)[:keep]

        self._token = CutToken()


@pytest.mark.parametrize("keep", [63, 0])
def test_a_malformed_raw_signature_from_the_token_is_refused(station, keep):
    with pytest.raises(SigningFailed, match=rf"^token returned a malformed ECDSA signature \({keep} bytes\)$"):
        _CutAnswer(station, keep).sign(b"data", ec.ECDSA(hashes.SHA256()))


def test_a_two_byte_answer_is_split_not_refused(station):
    # Only an odd or empty answer is malformed by length; what is left is for the CA's verify.
    r, s = decode_dss_signature(_CutAnswer(station, 2).sign(b"data", ec.ECDSA(hashes.SHA256())))
    assert r < 256 and s < 256  # one byte each: the halves of the two-byte answer


def test_the_signer_refuses_what_it_cannot_sign(station):
    signer = station.ca.signer
    with pytest.raises(SigningFailed, match="^only ECDSA signatures are supported$"):
        signer.sign(b"data", padding.PKCS1v15())
    with pytest.raises(HSMError, match="^the CA private key lives in the HSM and cannot be used for key exchange$"):
        signer.exchange(ec.ECDH(), signer.public_key())
    for export in (lambda: signer.private_numbers(),
                   lambda: signer.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption())):
        with pytest.raises(HSMError, match="^the CA private key lives in the HSM and cannot be exported$"):
            export()


@pytest.fixture(scope="session")  # made once on the token: a second run of its set-up would be refused
def rsa_label(station):
    station.token.generate_key("rsa-strength", KeySpec.parse("rsa-2048"))
    return "rsa-strength"


def test_each_signer_refuses_a_key_of_the_other_type(station, rsa_label):
    with pytest.raises(HSMError, match="^key 'issuing-ca' on the token is not an RSA key$"):
        HsmRsaPrivateKey(station.token, "issuing-ca")
    with pytest.raises(HSMError, match="^key 'rsa-strength' on the token is not an EC key$"):
        HsmEcPrivateKey(station.token, rsa_label)
    assert isinstance(signer_for(station.token, "issuing-ca"), HsmEcPrivateKey)


def test_an_rsa_key_signs_pkcs1v15_in_the_token(station, rsa_label):
    signer = signer_for(station.token, rsa_label)
    assert isinstance(signer, HsmRsaPrivateKey) and signer.label == rsa_label and signer.key_size == 2048
    for algorithm in (hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
        signature = signer.sign(b"tbs bytes", padding.PKCS1v15(), algorithm)
        signer.public_key().verify(signature, b"tbs bytes", padding.PKCS1v15(), algorithm)
    assert isinstance(signature_hash_for(signer), hashes.SHA256)


def test_the_rsa_signer_refuses_what_it_cannot_sign(station, rsa_label):
    signer = signer_for(station.token, rsa_label)
    with pytest.raises(SigningFailed, match="^only PKCS#1 v1.5 RSA signatures are supported$"):
        signer.sign(b"x", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    with pytest.raises(SigningFailed, match="^pre-hashed RSA signing is not supported$"):
        signer.sign(bytes(32), padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    with pytest.raises(SigningFailed, match="^unsupported hash sha224 for RSA signing$"):
        signer.sign(b"x", padding.PKCS1v15(), hashes.SHA224())
    with pytest.raises(HSMError, match="^the CA private key lives in the HSM and cannot be used for decryption$"):
        signer.decrypt(b"x", padding.PKCS1v15())


def test_a_raw_token_signature_is_r_and_s_of_the_curve_size(station, p384_ca):
    raw = station.token.sign_raw("p384-issuing", Mechanism.ECDSA, bytes(48))
    assert len(raw) == 96


def test_a_certificate_the_issuing_ca_did_not_sign_never_leaves(station):
    """The CA object checks each certificate against its issuing certificate: a builder
    naming another issuer is signed by the token but refused before it is returned (a wrong
    signature from the token: tests/ca/test_hsm_failure.py)."""
    builder = (x509.CertificateBuilder()
               .subject_name(station.ca.certificate.subject)
               .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "someone else")]))
               .public_key(station.ca.signer.public_key())
               .serial_number(1)
               .not_valid_before(station.ca.certificate.not_valid_before_utc)
               .not_valid_after(station.ca.certificate.not_valid_after_utc))
    with pytest.raises(SigningFailed) as refused:
        station.ca.sign(builder)
    assert str(refused.value) == ("the HSM produced a certificate that does not verify against the issuing CA "
                                  "(ValueError); nothing was released")


def test_a_token_refusal_to_sign_names_the_key_and_the_token_error(station):
    # CKM_RSA_PKCS with an EC key: SoftHSM2 2.6.1 refuses it with CKR_GENERAL_ERROR.
    with pytest.raises(SigningFailed, match="^token could not sign with key 'issuing-ca': GeneralError$"):
        station.token.sign_raw("issuing-ca", Mechanism.RSA_PKCS, b"data")


@pytest.mark.parametrize("label, flags, why", [
    ("readable-ca", {"sensitive": False, "extractable": False}, "not sensitive"),
    ("leaving-ca", {"sensitive": True, "extractable": True}, "extractable"),
])
def test_a_ca_key_that_can_leave_the_token_is_refused_saying_why(station, label, flags, why):
    from pkcs11 import Attribute

    from hsm.errors import CAError
    from tests.ca.test_token import _make_key_pair

    _make_key_pair(station, label, {Attribute.SENSITIVE: flags["sensitive"], Attribute.EXTRACTABLE: flags["extractable"]})
    assert {k: station.token.private_key_attributes(label)[k] for k in flags} == flags
    with pytest.raises(CAError) as refused:
        CertificateAuthority(token=station.token, issuing_label=label, chain=station.ca.chain)
    assert str(refused.value) == (f"issuing key '{label}' on the token is {why}; refusing to sign with a key that "
                                  "can leave the HSM")
