"""Every refusal of the issuance policy: one clear reason, a stable code, and no certificate."""
from __future__ import annotations

import sqlite3

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from station.errors import PolicyRefusal
from tests.csr_factory import corrupt_signature, make_csr, new_key, openssl_csr


def count_certs(station) -> int:
    # An independent reader of the database file: what is on disk, not what the API says.
    with sqlite3.connect(station.cfg.audit.database) as conn:
        return conn.execute("select count(*) from certificates").fetchone()[0]


def assert_refused(station, device, csr: bytes, code: str, fragment: str):
    before = count_certs(station)
    with pytest.raises(PolicyRefusal) as info:
        station.issuer.issue(csr, device)
    assert info.value.code == code
    assert fragment in str(info.value)
    assert count_certs(station) == before, "a refused request must not create a certificate record"
    return info.value


@pytest.mark.parametrize("data", [b"", b"garbage", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                                  b"\x30\x82\x01\x00" + b"\x00" * 10])
def test_malformed_pem_or_der(station, device, data):
    assert_refused(station, device, data, "malformed-csr", "not a valid PEM or DER")


def test_two_pem_blocks_are_refused(station, device):
    subject = station.issuer.subject_for(device)
    assert_refused(station, device, make_csr(subject) + make_csr(subject), "malformed-csr", "more than one PEM block")


def test_bad_signature(station, device):
    csr = corrupt_signature(make_csr(station.issuer.subject_for(device)))
    assert_refused(station, device, csr, "bad-csr-signature", "does not verify")


@pytest.mark.parametrize("kind,shown", [("rsa-1024", "rsa-1024"), ("secp256k1", "ec-secp256k1"),
                                        ("ed25519", "ed25519"), ("rsa-2048", "RSA keys are not allowed")])
def test_disallowed_keys(station, device, kind, shown):
    csr = make_csr(station.issuer.subject_for(device), key=new_key(kind))
    assert_refused(station, device, csr, "key-not-allowed", shown)


def test_p192_key(station, device, tmp_path):
    csr = openssl_csr(tmp_path, station.issuer.subject_for(device), "prime192v1")
    assert_refused(station, device, csr, "key-not-allowed", "192")


def test_ca_true_is_refused(station, device):
    csr = make_csr(station.issuer.subject_for(device),
                   extensions=[(x509.BasicConstraints(ca=True, path_length=None), True)])
    assert_refused(station, device, csr, "extension-refused", "CA:TRUE")


def test_subject_alt_names_are_refused(station, device):
    csr = make_csr(station.issuer.subject_for(device),
                   extensions=[(x509.SubjectAlternativeName([x509.DNSName("evil.example")]), False)])
    assert_refused(station, device, csr, "extension-refused", "subjectAltName")


def test_unknown_extension_is_refused(station, device):
    ext = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    csr = make_csr(station.issuer.subject_for(device), extensions=[(ext, False)])
    assert_refused(station, device, csr, "extension-refused", "1.3.6.1.4.1.99999.1")


def test_subject_must_match_exactly(station, device):
    wrong = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "somebody-else")])
    refusal = assert_refused(station, device, make_csr(wrong), "subject-mismatch", "CN=somebody-else")
    assert device.device_id in str(refusal)


def test_subject_with_extra_attribute_is_refused(station, device):
    subject = station.issuer.subject_for(device)
    extra = x509.Name(list(subject) + [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Mallory")])
    assert_refused(station, device, make_csr(extra), "subject-mismatch", "Mallory")


def test_repeated_public_key_is_refused(station, device):
    from station.profile import DeviceRef

    key = new_key()
    station.issuer.issue(make_csr(station.issuer.subject_for(device), key=key), device)
    other = DeviceRef(device_id=device.device_id + "FF", label=device.label + "B", model=device.model)
    assert_refused(station, other, make_csr(station.issuer.subject_for(other), key=key), "key-reused", "already certified")


@pytest.mark.parametrize("field,value", [("device_id", "ABC DEF"), ("label", ""), ("model", "X,CN=evil"),
                                         ("device_id", "A" * 65), ("label", "SN_01"), ("label", "SN.01"),
                                         ("model", "M+1"),
                                         # A trailing newline slipped past a `$`-anchored re.match.
                                         ("model", "M\n"), ("device_id", "00AA\n"), ("label", "L1\n"),
                                         ("label", "L1\r"), ("model", "M\t"), ("device_id", "00\x00AA"),
                                         ("model", "M\x1b[31m"), ("label", "L1\u0085"), ("label", "\nL1")])
def test_unsafe_device_values_never_reach_a_subject(station, field, value):
    import dataclasses

    from station.profile import DeviceRef

    device = dataclasses.replace(DeviceRef(device_id="00AA", label="L1", model="M"), **{field: value})
    with pytest.raises(PolicyRefusal) as info:
        station.issuer.subject_for(device)
    assert info.value.code == "bad-identity"
