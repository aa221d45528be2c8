"""The path check behind `audit verify --trust-anchor`, on software certificates: each rule
of `hsm.ca.validate_to_anchor` and `station.audit.anchor.check_audit_purpose` has a case that
breaks exactly that rule."""
from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hsm.ca import AUDIT_SIGNING_EKU, key_usage, validate_to_anchor
from hsm.errors import CAError
from station.audit.anchor import check_audit_purpose

NOW = dt.datetime.now(dt.timezone.utc)


class Ca:
    def __init__(self, name: str, parent: "Ca | None" = None, *, ca: bool = True, path_length=None,
                 usage=("key_cert_sign", "crl_sign"), days=(-1, 30), eku=None):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        issuer = parent or self
        builder = (x509.CertificateBuilder().subject_name(self.name).issuer_name(issuer.name)
                   .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(NOW + dt.timedelta(days=days[0]))
                   .not_valid_after(NOW + dt.timedelta(days=days[1]))
                   .add_extension(key_usage(*usage), critical=True))
        if ca is not None:  # None: no basicConstraints at all
            builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        if eku is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        self.cert = builder.sign(issuer.key, hashes.SHA256())


def audit_leaf(parent: Ca, **kwargs) -> Ca:
    options = {"ca": False, "usage": ("digital_signature",), "eku": [AUDIT_SIGNING_EKU]}
    return Ca("station-1 audit checkpoints", parent, **{**options, **kwargs})


@pytest.fixture
def pki():
    root = Ca("Root")
    issuing = Ca("Issuing", root, path_length=0)
    return root, issuing, audit_leaf(issuing)


def test_a_good_path_is_returned_leaf_first(pki):
    root, issuing, leaf = pki
    assert validate_to_anchor(leaf.cert, [issuing.cert, root.cert], root.cert) == [leaf.cert, issuing.cert, root.cert]
    check_audit_purpose(leaf.cert)


def test_an_unrelated_anchor_is_refused(pki):
    _, issuing, leaf = pki
    with pytest.raises(CAError, match="does not chain to the trust anchor 'CN=Other Root'"):
        validate_to_anchor(leaf.cert, [issuing.cert], Ca("Other Root").cert)


def test_an_expired_certificate_is_refused(pki):
    root, issuing, _ = pki
    expired = audit_leaf(issuing, days=(-30, -1))
    with pytest.raises(CAError, match="'CN=station-1 audit checkpoints' is not valid at"):
        validate_to_anchor(expired.cert, [issuing.cert], root.cert)


def test_an_issuer_that_is_not_a_ca_is_refused():
    root = Ca("Root")
    end_entity = Ca("Not a CA", root, ca=False, usage=("digital_signature", "key_cert_sign"))
    leaf = audit_leaf(end_entity)
    with pytest.raises(CAError, match="'CN=Not a CA' issues certificates but is not a CA"):
        validate_to_anchor(leaf.cert, [end_entity.cert], root.cert)


def test_an_issuer_without_basic_constraints_is_no_ca():
    root = Ca("Root")
    unmarked = Ca("Unmarked", root, ca=None)
    with pytest.raises(CAError) as info:
        validate_to_anchor(audit_leaf(unmarked).cert, [unmarked.cert], root.cert)
    assert str(info.value) == "certificate 'CN=Unmarked' issues certificates but is not a CA (basicConstraints)"


def test_an_issuer_without_key_cert_sign_is_refused():
    root = Ca("Root")
    issuing = Ca("Signing only", root, usage=("digital_signature",))
    with pytest.raises(CAError, match="'CN=Signing only' does not allow certificate signing"):
        validate_to_anchor(audit_leaf(issuing).cert, [issuing.cert], root.cert)


def test_a_path_length_constraint_is_enforced():
    root = Ca("Root")
    first = Ca("First", root, path_length=0)
    second = Ca("Second", first, path_length=0)
    with pytest.raises(CAError, match="'CN=First' allows 0 intermediate CA\\(s\\) below it, the path has 1"):
        validate_to_anchor(audit_leaf(second).cert, [second.cert, first.cert], root.cert)


def test_the_issuer_is_found_among_the_intermediates_not_just_any_ca_the_anchor_certified():
    root = Ca("Root")
    unrelated = Ca("Unrelated", root)  # also certified by the anchor, but did not issue the leaf
    issuing = Ca("Issuing", root)
    leaf = audit_leaf(issuing)
    assert validate_to_anchor(leaf.cert, [unrelated.cert, issuing.cert], root.cert) == [
        leaf.cert, issuing.cert, root.cert]
    with pytest.raises(CAError):
        validate_to_anchor(leaf.cert, [unrelated.cert], root.cert)


def test_the_refusal_names_the_certificate_where_the_path_breaks_and_its_issuer():
    root, other = Ca("Root"), Ca("Other Root")
    issuing = Ca("Issuing", other)
    leaf = audit_leaf(issuing)
    for intermediates, where, issuer in (([], "station-1 audit checkpoints", "Issuing"),
                                         ([issuing.cert], "Issuing", "Other Root")):
        with pytest.raises(CAError) as info:
            validate_to_anchor(leaf.cert, intermediates, root.cert)
        assert str(info.value) == (f"certificate 'CN={where}' does not chain to the trust anchor 'CN=Root' "
                                   f"(issued by 'CN={issuer}', which is neither the anchor nor a CA it certified)")


def chain_of(depth: int) -> tuple[Ca, list[Ca], Ca]:
    """root <- I1 <- ... <- I{depth} <- audit leaf."""
    root = Ca("Root")
    intermediates = [Ca("I1", root)]
    for n in range(2, depth + 1):
        intermediates.append(Ca(f"I{n}", intermediates[-1]))
    return root, intermediates, audit_leaf(intermediates[-1])


def test_a_path_of_eight_intermediate_cas_is_followed_and_a_ninth_is_refused():
    root, intermediates, leaf = chain_of(8)
    path = validate_to_anchor(leaf.cert, [ca.cert for ca in intermediates], root.cert)
    assert path == [leaf.cert, *[ca.cert for ca in reversed(intermediates)], root.cert]
    root, intermediates, leaf = chain_of(9)
    with pytest.raises(CAError) as info:
        validate_to_anchor(leaf.cert, [ca.cert for ca in intermediates], root.cert)
    assert str(info.value).startswith("certificate 'CN=I2' does not chain to the trust anchor 'CN=Root' "
                                      "(issued by 'CN=I1',")


def test_a_certificate_is_valid_from_its_first_second_to_its_last():
    root = Ca("Root", days=(-10, 10))
    issuing = Ca("Issuing", root, days=(-10, 10))
    leaf = audit_leaf(issuing, days=(-1, 1))
    chain = [issuing.cert]
    start, end = leaf.cert.not_valid_before_utc, leaf.cert.not_valid_after_utc
    for at in (start, end):
        assert validate_to_anchor(leaf.cert, chain, root.cert, at=at)[0] == leaf.cert
    for at in (start - dt.timedelta(seconds=1), end + dt.timedelta(seconds=1)):
        with pytest.raises(CAError) as info:
            validate_to_anchor(leaf.cert, chain, root.cert, at=at)
        assert str(info.value) == f"certificate 'CN=station-1 audit checkpoints' is not valid at {at:%Y-%m-%d %H:%M} UTC"


@pytest.mark.parametrize("kwargs,fragment", [
    ({"eku": None}, "no extendedKeyUsage"),
    ({"eku": [ExtendedKeyUsageOID.CLIENT_AUTH]}, "extendedKeyUsage must be"),
    ({"eku": [AUDIT_SIGNING_EKU, ExtendedKeyUsageOID.CLIENT_AUTH]}, "no TLS purpose"),
    ({"usage": ("key_agreement",)}, "keyUsage must be digitalSignature"),
    ({"ca": True, "usage": ("digital_signature",)}, "is a CA certificate"),
])
def test_only_an_audit_signing_certificate_has_the_audit_purpose(pki, kwargs, fragment):
    _, issuing, _ = pki
    with pytest.raises(CAError, match=fragment):
        check_audit_purpose(audit_leaf(issuing, **kwargs).cert)
