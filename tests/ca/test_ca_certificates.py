"""Every certificate and CRL the CA itself makes, compared whole: the development root and
issuing CA, the issuing CA's CSR for an offline root, AWS IoT's verification certificate,
the audit-signing certificate and the CRL. Each extension's value and criticality, the names
attribute by attribute, the validity to the second, the default lifetimes and the refusals
word for word: a dropped extension, a flipped critical flag or a changed constant fails here.

The validity checks run with the process's local time zone moved far from UTC, so a clock
read without a time zone (naive local time, which cryptography would take as UTC) is caught
on a factory PC set to local time, not only on a UTC build machine."""
from __future__ import annotations

import datetime as dt
import os
import time
from contextlib import contextmanager

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID, NameOID

from hsm.ca import (AUDIT_SIGNING_EKU, _KEY_USAGE_BITS, aws_verification_certificate, certify_audit_key,
                    create_development_ca, create_issuing_csr, key_usage)
from hsm.crl import Revoked, build_crl
from hsm.errors import CAError, SigningFailed
from hsm.token import KeySpec
from tests.ca.test_hsm_failure import faulty_copy

UTC = dt.timezone.utc
FIVE_MINUTES = dt.timedelta(minutes=5)


@contextmanager
def local_time_far_from_utc():
    """TZ at UTC-10 for the block (and time.tzset so the C library reads it): a naive
    `datetime.now()` is then ten hours off the UTC clock."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "HST10"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


@contextmanager
def utc_window():
    """Yields a list that holds (before, after): the UTC clock, to the second, around the block."""
    window = [dt.datetime.now(UTC).replace(microsecond=0)]
    with local_time_far_from_utc():
        yield window
    window.append(dt.datetime.now(UTC))


def extensions(obj) -> list[tuple[x509.ObjectIdentifier, bool, object]]:
    """(extension OID, critical, value) in the order they are encoded."""
    return [(ext.oid, ext.critical, ext.value) for ext in obj.extensions]


def name(*attrs: tuple) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attrs])


def assert_back_dated_five_minutes(cert, window) -> None:
    before, after = window
    assert before - FIVE_MINUTES <= cert.not_valid_before_utc <= after - FIVE_MINUTES


_made = iter(range(1, 10**6))


@pytest.fixture  # made for each test (new labels: a label cannot be made twice), so that the
def development_ca(station):  # mutation tool counts each test as one that runs create_development_ca
    n = next(_made)
    labels = (f"shape-root-{n}", f"shape-issuing-{n}")
    with utc_window() as window:
        root, issuing = create_development_ca(
            station.token, root_label=labels[0], issuing_label=labels[1],
            key_spec=KeySpec.parse("ec-p256"), organization="Shape Test GmbH", country="DE",
            root_cn="Shape Root CA", issuing_cn="Shape Issuing CA")
    return root, issuing, window, labels


def test_the_development_root_is_a_self_signed_ca_of_twenty_years(station, development_ca):
    root, _, window, (root_label, _) = development_ca
    root_public = station.token.public_key(root_label)
    expected_name = name((NameOID.COUNTRY_NAME, "DE"), (NameOID.ORGANIZATION_NAME, "Shape Test GmbH"),
                         (NameOID.COMMON_NAME, "Shape Root CA"))
    assert root.subject == expected_name and root.issuer == expected_name
    assert root.public_key() == root_public
    assert extensions(root) == [
        (ExtensionOID.BASIC_CONSTRAINTS, True, x509.BasicConstraints(ca=True, path_length=None)),
        (ExtensionOID.KEY_USAGE, True, key_usage("key_cert_sign", "crl_sign")),
        (ExtensionOID.SUBJECT_KEY_IDENTIFIER, False, x509.SubjectKeyIdentifier.from_public_key(root_public)),
        (ExtensionOID.AUTHORITY_KEY_IDENTIFIER, False, x509.AuthorityKeyIdentifier.from_issuer_public_key(root_public)),
    ]
    assert root.not_valid_after_utc - root.not_valid_before_utc == dt.timedelta(days=7300) + FIVE_MINUTES
    assert_back_dated_five_minutes(root, window)
    root.verify_directly_issued_by(root)


def test_the_development_issuing_ca_is_certified_by_the_root_for_ten_years_with_no_ca_below(
        station, development_ca):
    root, issuing, window, (root_label, issuing_label) = development_ca
    issuing_public = station.token.public_key(issuing_label)
    assert issuing.subject == name((NameOID.COUNTRY_NAME, "DE"), (NameOID.ORGANIZATION_NAME, "Shape Test GmbH"),
                                   (NameOID.COMMON_NAME, "Shape Issuing CA"))
    assert issuing.issuer == root.subject
    assert issuing.public_key() == issuing_public
    assert extensions(issuing) == [
        (ExtensionOID.BASIC_CONSTRAINTS, True, x509.BasicConstraints(ca=True, path_length=0)),
        (ExtensionOID.KEY_USAGE, True, key_usage("key_cert_sign", "crl_sign")),
        (ExtensionOID.SUBJECT_KEY_IDENTIFIER, False, x509.SubjectKeyIdentifier.from_public_key(issuing_public)),
        (ExtensionOID.AUTHORITY_KEY_IDENTIFIER, False,
         x509.AuthorityKeyIdentifier.from_issuer_public_key(station.token.public_key(root_label))),
    ]
    assert issuing.not_valid_after_utc - issuing.not_valid_before_utc == dt.timedelta(days=3650) + FIVE_MINUTES
    assert_back_dated_five_minutes(issuing, window)
    issuing.verify_directly_issued_by(root)
    assert isinstance(issuing.signature_hash_algorithm, hashes.SHA256)


def test_the_issuing_csr_names_the_ca_and_asks_for_no_ca_below_it(station):
    with local_time_far_from_utc():
        csr = create_issuing_csr(station.token, issuing_label="csr-issuing", key_spec=KeySpec.parse("ec-p384"),
                                 organization="Offline Root Co", country="FI", issuing_cn="Line 7 Issuing CA")
    public = station.token.public_key("csr-issuing")
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp384r1"
    assert csr.public_key() == public
    assert csr.is_signature_valid
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA384)
    assert csr.subject == name((NameOID.COUNTRY_NAME, "FI"), (NameOID.ORGANIZATION_NAME, "Offline Root Co"),
                               (NameOID.COMMON_NAME, "Line 7 Issuing CA"))
    assert extensions(csr) == [(ExtensionOID.BASIC_CONSTRAINTS, True, x509.BasicConstraints(ca=True, path_length=0))]
    # Asked again (the offline root lost the CSR): the key already on the token is used, not
    # replaced, whatever key type is asked for now.
    again = create_issuing_csr(station.token, issuing_label="csr-issuing", key_spec=KeySpec.parse("ec-p256"),
                               organization="Offline Root Co", country=None, issuing_cn="Line 7 Issuing CA")
    assert again.public_key() == public
    assert again.subject == name((NameOID.ORGANIZATION_NAME, "Offline Root Co"),
                                 (NameOID.COMMON_NAME, "Line 7 Issuing CA"))


def test_the_aws_verification_certificate_is_a_one_day_end_entity_named_by_the_code(station):
    ca = station.ca
    with utc_window() as window:
        cert = aws_verification_certificate(ca, "0123abcDEF")
    assert cert.subject == name((NameOID.COMMON_NAME, "0123abcDEF"))
    assert cert.issuer == ca.certificate.subject
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert extensions(cert) == [
        (ExtensionOID.BASIC_CONSTRAINTS, True, x509.BasicConstraints(ca=False, path_length=None)),
        (ExtensionOID.KEY_USAGE, True, key_usage("digital_signature")),
        (ExtensionOID.SUBJECT_KEY_IDENTIFIER, False, x509.SubjectKeyIdentifier.from_public_key(cert.public_key())),
        (ExtensionOID.AUTHORITY_KEY_IDENTIFIER, False, x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)),
    ]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=1) + FIVE_MINUTES
    assert_back_dated_five_minutes(cert, window)
    cert.verify_directly_issued_by(ca.certificate)
    # Its key pair was made for it alone, not the CA's.
    assert cert.public_key() != ca.certificate.public_key()
    assert aws_verification_certificate(ca, "0123abcDEF").public_key() != cert.public_key()


def test_the_aws_verification_certificate_never_outlives_the_issuing_ca(station):
    cert = aws_verification_certificate(station.ca, "A" * 64, days=100_000)
    assert cert.not_valid_after_utc == station.ca.certificate.not_valid_after_utc


@pytest.mark.parametrize("code", ["", "abc-123", "abc 123", "a" * 65, "code\n"])
def test_a_registration_code_that_is_not_1_to_64_letters_and_digits_is_refused(station, code):
    with pytest.raises(CAError) as info:
        aws_verification_certificate(station.ca, code)
    assert str(info.value) == ("the registration code must be 1-64 letters and digits "
                               "(`aws iot get-registration-code`)")


def test_the_audit_certificate_is_an_end_entity_for_audit_signing_only_as_long_as_the_ca(station):
    ca = station.ca
    audit_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    with utc_window() as window:
        cert = certify_audit_key(ca, audit_key, station_id="line-4", organization="Audit Org")
    assert cert.subject == name((NameOID.ORGANIZATION_NAME, "Audit Org"),
                                (NameOID.COMMON_NAME, "line-4 audit checkpoints"))
    assert cert.issuer == ca.certificate.subject
    assert cert.public_key() == audit_key
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert extensions(cert) == [
        (ExtensionOID.BASIC_CONSTRAINTS, True, x509.BasicConstraints(ca=False, path_length=None)),
        (ExtensionOID.KEY_USAGE, True, key_usage("digital_signature")),
        (ExtensionOID.EXTENDED_KEY_USAGE, False, x509.ExtendedKeyUsage([AUDIT_SIGNING_EKU])),
        (ExtensionOID.SUBJECT_KEY_IDENTIFIER, False, x509.SubjectKeyIdentifier.from_public_key(audit_key)),
        (ExtensionOID.AUTHORITY_KEY_IDENTIFIER, False, x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)),
    ]
    assert cert.not_valid_after_utc == ca.certificate.not_valid_after_utc
    assert_back_dated_five_minutes(cert, window)
    cert.verify_directly_issued_by(ca.certificate)
    without_org = certify_audit_key(ca, audit_key, station_id="line-4", organization=None)
    assert without_org.subject == name((NameOID.COMMON_NAME, "line-4 audit checkpoints"))


def test_the_audit_certificate_name_may_reach_the_64_character_limit_and_not_pass_it(station):
    audit_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    longest = "s" * (64 - len(" audit checkpoints"))
    cert = certify_audit_key(station.ca, audit_key, station_id=longest, organization=None)
    assert len(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value) == 64
    with pytest.raises(CAError) as info:
        certify_audit_key(station.ca, audit_key, station_id=longest + "s", organization=None)
    assert str(info.value) == (f"station id {longest + 's'!r} is too long for the audit certificate's name "
                               "(64 characters)")


def crl_entries(crl) -> list[tuple[int, dt.datetime, list]]:
    return [(entry.serial_number, entry.revocation_date_utc, extensions(entry)) for entry in crl]


def test_the_crl_lists_each_revocation_with_its_reason_signed_by_the_issuing_ca(station):
    ca = station.ca
    now = dt.datetime(2026, 11, 24, 8, 30, 15, 987654, tzinfo=UTC)
    revoked = [Revoked(0x1234ABCD, dt.datetime(2026, 11, 20, 10, 0, 1, 500000, tzinfo=UTC),
                       x509.ReasonFlags.key_compromise),
               Revoked(0x42, dt.datetime(2026, 11, 21, 11, 0, 2, tzinfo=UTC), x509.ReasonFlags.unspecified),
               Revoked(0x43, dt.datetime(2026, 11, 22, 12, 0, 3, tzinfo=UTC), x509.ReasonFlags.superseded)]
    crl = build_crl(ca, revoked, number=7, next_update_days=3, now=now)
    assert crl.issuer == ca.certificate.subject
    assert crl.last_update_utc == now.replace(microsecond=0)
    assert crl.next_update_utc == now.replace(microsecond=0) + dt.timedelta(days=3)
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert extensions(crl) == [
        (ExtensionOID.CRL_NUMBER, False, x509.CRLNumber(7)),
        (ExtensionOID.AUTHORITY_KEY_IDENTIFIER, False, x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)),
    ]
    assert crl_entries(crl) == [
        (0x1234ABCD, dt.datetime(2026, 11, 20, 10, 0, 1, tzinfo=UTC),
         [(CRLEntryExtensionOID.CRL_REASON, False, x509.CRLReason(x509.ReasonFlags.key_compromise))]),
        # RFC 5280 5.3.1: "unspecified" is said by leaving the reason out.
        (0x42, dt.datetime(2026, 11, 21, 11, 0, 2, tzinfo=UTC), []),
        (0x43, dt.datetime(2026, 11, 22, 12, 0, 3, tzinfo=UTC),
         [(CRLEntryExtensionOID.CRL_REASON, False, x509.CRLReason(x509.ReasonFlags.superseded))]),
    ]
    assert crl.is_signature_valid(ca.certificate.public_key())
    assert isinstance(crl.signature_hash_algorithm, hashes.SHA256)


def test_an_empty_crl_is_dated_now_by_the_utc_clock(station):
    with utc_window() as window:
        crl = build_crl(station.ca, [], number=1, next_update_days=1)
    before, after = window
    assert before <= crl.last_update_utc <= after
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(days=1)
    assert crl_entries(crl) == []


def test_a_crl_the_hsm_signed_wrongly_is_refused(station):
    with pytest.raises(SigningFailed) as info:
        build_crl(faulty_copy(station.ca), [], number=2, next_update_days=1)
    assert str(info.value) == ("the HSM produced a CRL that does not verify against the issuing CA; "
                               "nothing was written")



def test_a_p384_ca_signs_its_crl_with_sha384(p384_ca):
    crl = build_crl(p384_ca, [], number=1, next_update_days=1)
    assert isinstance(crl.signature_hash_algorithm, hashes.SHA384)
    assert crl.is_signature_valid(p384_ca.certificate.public_key())


def test_key_usage_sets_exactly_the_named_bits_and_refuses_unknown_ones():
    usage = key_usage("key_cert_sign", "crl_sign")
    assert {bit for bit in _KEY_USAGE_BITS if bit not in ("encipher_only", "decipher_only")
            and getattr(usage, bit)} == {"key_cert_sign", "crl_sign"}
    with pytest.raises(ValueError) as info:
        key_usage("key_cert_sign", "sign_everything", "alpha")
    assert str(info.value) == "unknown keyUsage bit(s): alpha, sign_everything"
