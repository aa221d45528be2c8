"""Every refusal of the issuance policy: one clear reason, a stable code, and no certificate."""
from __future__ import annotations

import sqlite3

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from station.errors import PolicyRefusal
from tests.csr_factory import corrupt_signature, make_csr, new_key, openssl_csr


def _count_certs(station) -> int:
    # An independent reader of the database file: what is on disk, not what the API says.
    with sqlite3.connect(station.cfg.audit.database) as conn:
        return conn.execute("select count(*) from certificates").fetchone()[0]


def _refused(station, device, csr: bytes, code: str, fragment: str):
    before = _count_certs(station)
    with pytest.raises(PolicyRefusal) as info:
        station.issuer.issue(csr, device)
    assert info.value.code == code
    assert fragment in str(info.value)
    assert _count_certs(station) == before, "a refused request must not create a certificate record"
    return info.value


@pytest.mark.parametrize("data", [b"", b"garbage", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                                  b"\x30\x82\x01\x00" + b"\x00" * 10])
def test_malformed_pem_or_der(station, device, data):
    _refused(station, device, data, "malformed-csr", "not a valid PEM or DER")


def test_two_pem_blocks_are_refused(station, device):
    subject = station.issuer.subject_for(device)
    _refused(station, device, make_csr(subject) + make_csr(subject), "malformed-csr", "more than one PEM block")


def test_bad_signature(station, device):
    csr = corrupt_signature(make_csr(station.issuer.subject_for(device)))
    _refused(station, device, csr, "bad-csr-signature", "does not verify")


@pytest.mark.parametrize("kind,shown", [("rsa-1024", "rsa-1024"), ("secp256k1", "ec-secp256k1"),
                                        ("ed25519", "ed25519"), ("rsa-2048", "RSA keys are not allowed")])
def test_disallowed_keys(station, device, kind, shown):
    csr = make_csr(station.issuer.subject_for(device), key=new_key(kind))
    _refused(station, device, csr, "key-not-allowed", shown)


def test_p192_key(station, device, tmp_path):
    csr = openssl_csr(tmp_path, station.issuer.subject_for(device), "prime192v1")
    _refused(station, device, csr, "key-not-allowed", "192")


def test_ca_true_is_refused(station, device):
    csr = make_csr(station.issuer.subject_for(device),
                   extensions=[(x509.BasicConstraints(ca=True, path_length=None), True)])
    _refused(station, device, csr, "extension-refused", "CA:TRUE")


def test_subject_alt_names_are_refused(station, device):
    csr = make_csr(station.issuer.subject_for(device),
                   extensions=[(x509.SubjectAlternativeName([x509.DNSName("evil.example")]), False)])
    _refused(station, device, csr, "extension-refused", "subjectAltName")


def test_unknown_extension_is_refused(station, device):
    ext = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    csr = make_csr(station.issuer.subject_for(device), extensions=[(ext, False)])
    _refused(station, device, csr, "extension-refused", "1.3.6.1.4.1.99999.1")


def test_subject_must_match_exactly(station, device):
    wrong = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "somebody-else")])
    refusal = _refused(station, device, make_csr(wrong), "subject-mismatch", "CN=somebody-else")
    assert device.device_id in str(refusal)


def test_subject_with_extra_attribute_is_refused(station, device):
    subject = station.issuer.subject_for(device)
    extra = x509.Name(list(subject) + [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Mallory")])
    _refused(station, device, make_csr(extra), "subject-mismatch", "Mallory")


def test_repeated_public_key_is_refused(station, device):
    from station.profile import DeviceRef

    key = new_key()
    station.issuer.issue(make_csr(station.issuer.subject_for(device), key=key), device)
    other = DeviceRef(device_id=device.device_id + "FF", label=device.label + "B", model=device.model)
    _refused(station, other, make_csr(station.issuer.subject_for(other), key=key), "key-reused", "already certified")


def test_ed25519_is_accepted_only_when_configured(station_config):
    import dataclasses

    from station.policy import IssuancePolicy

    key = new_key("ed25519").public_key()
    with pytest.raises(PolicyRefusal):
        IssuancePolicy(station_config.policy).check_key(key)
    allowing = dataclasses.replace(station_config.policy, allowed_keys=("ec-p256", "ed25519"))
    assert IssuancePolicy(allowing).check_key(key) == "ed25519"


@pytest.mark.parametrize("field,value", [("device_id", "ABC DEF"), ("label", ""), ("model", "X,CN=evil"),
                                         ("device_id", "A" * 65), ("label", "SN_01"), ("label", "SN.01"),
                                         ("model", "M+1")])
def test_unsafe_device_values_never_reach_a_subject(station, field, value):
    import dataclasses

    from station.profile import DeviceRef

    device = dataclasses.replace(DeviceRef(device_id="00AA", label="L1", model="M"), **{field: value})
    with pytest.raises(PolicyRefusal) as info:
        station.issuer.subject_for(device)
    assert info.value.code == "bad-identity"


def test_ed25519_device_certificate_has_no_key_encipherment(station, device):
    import dataclasses

    from station.issuance import Issuer
    from station.policy import IssuancePolicy

    allowing = dataclasses.replace(station.cfg.policy, allowed_keys=("ec-p256", "ed25519"))
    issuer = Issuer(ca=station.ca, profile=station.cfg.profile, policy=IssuancePolicy(allowing),
                    record=station.audit)
    issued = issuer.issue(make_csr(issuer.subject_for(device), key=new_key("ed25519")), device)
    usage = issued.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_encipherment and not usage.key_agreement
