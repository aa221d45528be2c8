"""The production import check in this process (hsm.ca.check_issuing_import): the certificate
an offline root signed is accepted for the token's issuing key only if it certifies that very
key, carries a subjectKeyIdentifier, allows certificate signing when it has a keyUsage, and the
chain verifies; each refusal names the certificate and the reason, as the operator reads it
from `station ca import` (tests/ca/test_cli.py runs the command itself)."""
from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hsm.ca import check_issuing_import, verify_chain
from hsm.errors import CAError
from tests.ca.offline_root import OfflineRoot

ISSUING_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Imported Issuing CA")])


@pytest.fixture(scope="module")
def root():
    return OfflineRoot()


@pytest.fixture
def issuing_key(station):
    return station.token.public_key("issuing-ca")


def _refusal(station, chain) -> str:
    with pytest.raises(CAError) as refused:
        check_issuing_import(station.token, "issuing-ca", chain)
    return str(refused.value)


def test_an_empty_file_is_refused(station):
    assert _refusal(station, []) == "the file holds no certificate"


def test_a_certificate_for_another_key_is_refused_naming_it(station, root):
    other = root.certify(ISSUING_NAME, ec.generate_private_key(ec.SECP256R1()).public_key())
    assert _refusal(station, [other, root.certificate]) == (
        "the first certificate (CN=Imported Issuing CA) is not for the token's issuing key 'issuing-ca'")


def test_a_certificate_without_subject_key_identifier_is_refused(station, root, issuing_key):
    now = dt.datetime.now(dt.timezone.utc)
    bare = (x509.CertificateBuilder().subject_name(ISSUING_NAME).issuer_name(root.name).public_key(issuing_key)
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(root.key, hashes.SHA384()))
    assert _refusal(station, [bare, root.certificate]) == (
        "the issuing CA certificate (CN=Imported Issuing CA) has no subjectKeyIdentifier (RFC 5280 requires one "
        "in CA certificates)")


def test_a_certificate_without_key_cert_sign_is_refused_naming_it(station, root, issuing_key):
    signing_only = root.certify(ISSUING_NAME, issuing_key, usage=("digital_signature",))
    assert _refusal(station, [signing_only, root.certificate]) == (
        "the issuing CA certificate (CN=Imported Issuing CA) does not allow certificate signing (keyUsage "
        "keyCertSign missing)")


def test_a_certificate_without_key_usage_is_accepted(station, root, issuing_key):
    # RFC 5280 lets a CA certificate leave keyUsage out; only a keyUsage without keyCertSign is refused.
    check_issuing_import(station.token, "issuing-ca", [root.certify(ISSUING_NAME, issuing_key, usage=None),
                                                       root.certificate])


def _chain_refusal(chain, at=None) -> str:
    with pytest.raises(CAError) as refused:
        verify_chain(chain, at=at)
    return str(refused.value)


def test_an_empty_chain_is_refused():
    assert _chain_refusal([]) == "the CA chain is empty"


def test_a_chain_through_an_intermediate_verifies_link_by_link(root):
    intermediate_key = ec.generate_private_key(ec.SECP256R1())
    intermediate_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Intermediate")])
    intermediate = root.certify(intermediate_name, intermediate_key.public_key(), path_length=1)
    now = dt.datetime.now(dt.timezone.utc)
    issuing_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    issuing = (x509.CertificateBuilder().subject_name(ISSUING_NAME).issuer_name(intermediate_name)
               .public_key(issuing_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .sign(intermediate_key, hashes.SHA256()))
    verify_chain([issuing, intermediate, root.certificate])
    assert _chain_refusal([issuing, root.certificate]) == (
        "CA certificate 'CN=Imported Issuing CA' is not issued by 'CN=Offline Root' (ValueError)")


def test_a_link_signed_by_another_key_of_the_same_name_is_refused(root, issuing_key):
    impostor = OfflineRoot()  # also "CN=Offline Root", another key
    assert _chain_refusal([impostor.certify(ISSUING_NAME, issuing_key), root.certificate]) == (
        "CA certificate 'CN=Imported Issuing CA' is not issued by 'CN=Offline Root' (InvalidSignature)")


def test_a_chain_that_does_not_end_self_signed_is_refused(root, issuing_key):
    assert _chain_refusal([root.certify(ISSUING_NAME, issuing_key)]) == (
        "CA certificate 'CN=Imported Issuing CA' is not self-signed (ValueError)")


def test_an_end_entity_certificate_in_the_chain_is_refused(root, issuing_key):
    now = dt.datetime.now(dt.timezone.utc)
    leaf = (x509.CertificateBuilder().subject_name(ISSUING_NAME).issuer_name(root.name).public_key(issuing_key)
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(root.key, hashes.SHA384()))
    assert _chain_refusal([leaf, root.certificate]) == (
        "certificate 'CN=Imported Issuing CA' is not a CA (basicConstraints CA:TRUE missing)")


def test_a_chain_is_valid_from_its_first_to_its_last_second_inclusive(root):
    cert = root.certificate
    verify_chain([cert], at=cert.not_valid_before_utc)
    verify_chain([cert], at=cert.not_valid_after_utc)
    for outside in (cert.not_valid_before_utc - dt.timedelta(seconds=1), cert.not_valid_after_utc + dt.timedelta(seconds=1)):
        assert _chain_refusal([cert], at=outside) == "CA certificate 'CN=Offline Root' is not valid now"
