"""The policy reads the whole request: every attribute, every extension request and every
extension in it. Requests cryptography will not build are assembled with asn1crypto and
really signed (tests/csr_factory.py), so each one is wrong in exactly the way tested."""
from __future__ import annotations

import dataclasses
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from cryptography import x509

from station.errors import PolicyRefusal
from station.issuance import Issuer
from station.policy import IssuancePolicy
from tests.ca.test_refusals import assert_refused
from tests.cli_runner import assert_clean_failure, run_station
from tests.csr_factory import (CHALLENGE_PASSWORD, EXTENSION_REQUEST, MS_EXTENSION_REQUEST, UNSTRUCTURED_NAME,
                               assemble_csr, extension_der, extension_request, make_csr, new_key, openssl_csr,
                               sign_request_info)

CA_TRUE = extension_der(x509.BasicConstraints(ca=True, path_length=None), critical=True)
CA_FALSE = extension_der(x509.BasicConstraints(ca=False, path_length=None), critical=True)
SAN = extension_der(x509.SubjectAlternativeName([x509.DNSName("evil.example")]))
KEY_USAGE = extension_der(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)


def _issuer(station, **policy) -> Issuer:
    """The session station's issuer under a different [policy]."""
    return Issuer(ca=station.ca, profile=station.cfg.profile, record=station.audit,
                  policy=IssuancePolicy(dataclasses.replace(station.cfg.policy, **policy)))


# --- attributes ---------------------------------------------------------------------------

@pytest.mark.parametrize("second", [EXTENSION_REQUEST, MS_EXTENSION_REQUEST], ids=["extensionRequest", "msExtReq"])
@pytest.mark.parametrize("smuggled", [CA_TRUE, SAN], ids=["ca-true", "san"])
def test_a_second_extension_request_is_refused(station, device, second, smuggled):
    # cryptography reads only the first extension request; what hides in a second one must not pass.
    csr = assemble_csr(station.issuer.subject_for(device), attributes=[
        (EXTENSION_REQUEST, [extension_request(KEY_USAGE)]), (second, [extension_request(smuggled)])])
    assert_refused(station, device, csr, "attribute-refused", "more than one extension request")


def test_an_extension_request_with_two_values_is_refused(station, device):
    csr = assemble_csr(station.issuer.subject_for(device), attributes=[
        (EXTENSION_REQUEST, [extension_request(KEY_USAGE), extension_request(CA_TRUE)])])
    assert_refused(station, device, csr, "attribute-refused", "2 values")


@pytest.mark.parametrize("oid,name", [(CHALLENGE_PASSWORD, "challengePassword"),
                                      (UNSTRUCTURED_NAME, "unstructuredName"),
                                      ("1.3.6.1.4.1.99999.7", "1.3.6.1.4.1.99999.7")])
def test_other_attributes_are_refused(station, device, oid, name):
    from asn1crypto import core

    csr = assemble_csr(station.issuer.subject_for(device), attributes=[(oid, [core.PrintableString("x1").dump()])])
    assert_refused(station, device, csr, "attribute-refused", name)


def test_an_ms_extension_request_alone_is_read_like_an_extension_request(station, device):
    subject = station.issuer.subject_for(device)
    refused = assemble_csr(subject, attributes=[(MS_EXTENSION_REQUEST, [extension_request(CA_TRUE)])])
    assert_refused(station, device, refused, "extension-refused", "CA:TRUE")
    tolerated = assemble_csr(subject, attributes=[(MS_EXTENSION_REQUEST, [extension_request(KEY_USAGE)])])
    assert station.issuer.issue(tolerated, device).certificate.subject == subject


# --- extensions ---------------------------------------------------------------------------

@pytest.mark.parametrize("pair", [(KEY_USAGE, KEY_USAGE), (CA_FALSE, CA_TRUE)], ids=["keyUsage", "basicConstraints"])
def test_the_same_extension_twice_is_refused(station, device, pair):
    csr = assemble_csr(station.issuer.subject_for(device), attributes=[(EXTENSION_REQUEST, [extension_request(*pair)])])
    assert_refused(station, device, csr, "extension-refused", "twice")


# --- malformed requests: refusals, never internal errors ------------------------------------

@pytest.mark.parametrize("version", [1, 2, 255])
def test_a_csr_version_other_than_1_is_malformed(station, device, version):
    csr = assemble_csr(station.issuer.subject_for(device), version=version)
    assert_refused(station, device, csr, "malformed-csr", "version")


def _subject_bytes_replaced(station, device, old: bytes, new: bytes) -> bytes:
    der = station.issuer.subject_for(device).public_bytes()
    assert der.count(old) == 1 and len(old) == len(new)
    return der.replace(old, new)


def test_invalid_utf8_in_the_subject_is_malformed(station, device):
    # CN is a UTF8String: "SIM-1-..." with one byte that is not UTF-8.
    subject = _subject_bytes_replaced(station, device, b"SIM-1-", b"SIM\xff1-")
    assert_refused(station, device, assemble_csr(subject), "malformed-csr", "subject")


def test_a_bad_printable_string_in_the_subject_is_malformed(station, device):
    # serialNumber is a PrintableString, which has no "*".
    subject = _subject_bytes_replaced(station, device, device.label.encode(), b"*" + device.label.encode()[1:])
    assert_refused(station, device, assemble_csr(subject), "malformed-csr", "not a valid")


def test_station_issue_records_a_malformed_csr_as_a_refusal(tmp_path):
    assert run_station("init", "--workdir", tmp_path / "wd").returncode == 0
    from station.config import load_config
    from station.profile import DeviceRef, subject_for

    subject = subject_for(load_config(tmp_path / "wd" / "station.toml").profile, DeviceRef("AB", "L9", "M"))
    csr = tmp_path / "v2.csr"
    csr.write_bytes(assemble_csr(subject, version=1))
    result = run_station("issue", csr, "--device-id", "AB", "--label", "L9", "--model", "M",
                         "--out", tmp_path / "x.pem", cwd=tmp_path / "wd")
    assert_clean_failure(result, 1, "version")
    with sqlite3.connect(tmp_path / "wd" / "audit.db") as db:
        logged = db.execute("select data from events where kind = 'issuance-refused'").fetchall()
        assert len(logged) == 1 and '"malformed-csr"' in logged[0][0]
        assert db.execute("select count(*) from certificates").fetchone()[0] == 0


# --- keys ---------------------------------------------------------------------------------

def test_an_ec_key_with_explicit_curve_parameters_is_refused(station, device, tmp_path):
    # cryptography quietly maps explicit P-256 parameters to the named curve; the policy must not.
    csr = openssl_csr(tmp_path, station.issuer.subject_for(device), "prime256v1", explicit=True)
    assert_refused(station, device, csr, "key-explicit-curve", "named curve")


def test_the_same_curve_named_is_accepted(station, device, tmp_path):
    csr = openssl_csr(tmp_path, station.issuer.subject_for(device), "prime256v1")
    assert station.issuer.issue(csr, device).request.key_type == "ec-p256"


def test_rsa_exponent_other_than_65537_is_refused(station, device):
    issuer = _issuer(station, allowed_keys=("ec-p256", "rsa"))
    csr = make_csr(issuer.subject_for(device), key=new_key("rsa-e3-2048"))
    with pytest.raises(PolicyRefusal) as info:
        issuer.issue(csr, device)
    assert info.value.code == "key-not-allowed" and "65537" in str(info.value)


@pytest.mark.parametrize("min_bits,kind,refused", [(2048, "rsa-1024", True), (3072, "rsa-2048", True),
                                                   (3072, "rsa-3072", False), (2048, "rsa-2048", False)])
def test_rsa_minimum_size_is_enforced_when_rsa_is_allowed(station, device, min_bits, kind, refused):
    issuer = _issuer(station, allowed_keys=("rsa",), rsa_min_bits=min_bits)
    csr = make_csr(issuer.subject_for(device), key=new_key(kind))
    if not refused:
        assert issuer.issue(csr, device).request.key_type == kind
        return
    with pytest.raises(PolicyRefusal) as info:
        issuer.issue(csr, device)
    assert info.value.code == "key-not-allowed" and f"at least {min_bits} bits" in str(info.value)


def test_p521_is_refused_by_default_and_accepted_when_configured(station, device):
    assert "ec-p521" not in station.cfg.policy.allowed_keys
    assert_refused(station, device, make_csr(station.issuer.subject_for(device), key=new_key("ec-p521")),
                   "key-not-allowed", "ec-p521")
    issuer = _issuer(station, allowed_keys=("ec-p256", "ec-p521"))
    issued = issuer.issue(make_csr(issuer.subject_for(device), key=new_key("ec-p521")), device)
    assert issued.request.key_type == "ec-p521"


def test_ed25519_is_refused_even_when_a_policy_lists_it(station, device):
    # Decision: AWS IoT does not accept Ed25519 device certificates, so the station never
    # issues one; the configuration refuses "ed25519" too (tests/test_config_policy.py).
    issuer = _issuer(station, allowed_keys=("ec-p256", "ed25519"))
    with pytest.raises(PolicyRefusal) as info:
        issuer.issue(make_csr(issuer.subject_for(device), key=new_key("ed25519")), device)
    assert info.value.code == "key-not-allowed" and "AWS IoT does not accept Ed25519" in str(info.value)


# --- whatever the bytes, a refusal ------------------------------------------------------------

@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(min_value=0, max_value=300), st.integers(min_value=0, max_value=255)),
                      min_size=1, max_size=4))
def test_any_corrupted_request_is_refused_never_an_internal_error(station, edits):
    # The request body is corrupted and then signed again, so the parsers, not the signature
    # check, meet the damage: what the device's own (buggy) encoder could really send.
    from asn1crypto import csr as asn1_csr

    from station.profile import DeviceRef

    device = DeviceRef("00AA", "L1", "SIM-1")
    subject = station.issuer.subject_for(device)
    key = new_key()
    good = assemble_csr(subject, key, attributes=[(EXTENSION_REQUEST, [extension_request(KEY_USAGE)])])
    parsed = asn1_csr.CertificationRequest.load(good)["certification_request_info"]
    info = bytearray(parsed.dump())
    header = len(info) - len(parsed.contents)
    for index, value in edits:
        info[header + index % (len(info) - header)] = value  # the tag and length stay, so it can be signed
    csr = sign_request_info(bytes(info), key)
    try:
        station.issuer.policy.validate(csr, subject, station.audit)
    except PolicyRefusal as refusal:
        assert refusal.code in {"malformed-csr", "bad-csr-signature", "key-not-allowed", "key-explicit-curve",
                                "attribute-refused", "extension-refused", "subject-mismatch"}
