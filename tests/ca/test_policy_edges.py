"""Issuance policy rules that mutation testing found unpinned (docs/testing.md, "Scores"): the
RSA size floor when RSA is allowed, and that every CSR extension is checked, not only those
before the first harmless one. Pure policy: real CSRs, no token needed."""
from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from station.config import PolicyConfig
from station.errors import PolicyRefusal
from station.policy import IssuancePolicy
from tests.csr_factory import make_csr, new_key

SUBJECT = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "0123456789ABCDEF")])


class NoKeyKnown:
    def public_key_known(self, spki_sha256: str) -> bool:
        return False


def _validate(policy: IssuancePolicy, csr: bytes):
    return policy.validate(csr, SUBJECT, NoKeyKnown())


@pytest.fixture(scope="module")
def rsa_2048():
    return new_key("rsa-2048")


def test_rsa_at_the_configured_floor_is_accepted_below_it_refused(rsa_2048):
    policy = IssuancePolicy(PolicyConfig(allowed_keys=("ec-p256", "rsa"), rsa_min_bits=2048))
    assert _validate(policy, make_csr(SUBJECT, key=rsa_2048)).key_type == "rsa-2048"
    with pytest.raises(PolicyRefusal) as refused:
        _validate(policy, make_csr(SUBJECT, key=new_key("rsa-1024")))
    assert refused.value.code == "key-not-allowed"
    assert str(refused.value) == "device key rsa-1024 refused: RSA needs at least 2048 bits"


def test_a_raised_rsa_floor_refuses_a_key_that_met_the_default(rsa_2048):
    policy = IssuancePolicy(PolicyConfig(allowed_keys=("rsa",), rsa_min_bits=3072))
    with pytest.raises(PolicyRefusal, match="RSA needs at least 3072 bits"):
        _validate(policy, make_csr(SUBJECT, key=rsa_2048))


HARMLESS = (x509.BasicConstraints(ca=False, path_length=None), True)


@pytest.mark.parametrize("forbidden, shown", [
    ((x509.SubjectAlternativeName([x509.DNSName("evil.example")]), False), "subjectAltName"),
    ((x509.OCSPNoCheck(), False), "1.3.6.1.5.5.7.48.1.5"),
], ids=["subject-alt-name", "unknown"])
def test_every_extension_is_checked_not_only_those_before_a_harmless_one(forbidden, shown):
    """basicConstraints CA:FALSE is accepted and skipped; what follows it must still be
    checked."""
    policy = IssuancePolicy(PolicyConfig())
    with pytest.raises(PolicyRefusal) as refused:
        _validate(policy, make_csr(SUBJECT, extensions=[HARMLESS, forbidden]))
    assert refused.value.code == "extension-refused" and shown in str(refused.value)
