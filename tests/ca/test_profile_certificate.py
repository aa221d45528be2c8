"""The device certificate against its profile, issued through the real token: keyUsage by key
type, the exact validity, the issuing CA's end date as a cap, subject length limits, and the
audit record carrying the certificate's own validity."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from station.errors import PolicyRefusal
from station.issuance import Issuer
from station.policy import IssuancePolicy
from station.profile import DeviceRef, device_certificate_builder, subject_for
from tests.csr_factory import make_csr, new_key

UTC = dt.timezone.utc


def _issuer(station, **profile) -> Issuer:
    """The session station's issuer under a different [profile], RSA allowed."""
    policy = dataclasses.replace(station.cfg.policy, allowed_keys=("ec-p256", "ec-p384", "rsa"))
    return Issuer(ca=station.ca, profile=dataclasses.replace(station.cfg.profile, **profile),
                  policy=IssuancePolicy(policy), record=station.audit)


def _issue(issuer, device, kind="ec-p256") -> x509.Certificate:
    return issuer.issue(make_csr(issuer.subject_for(device), key=new_key(kind)), device).certificate


@pytest.mark.parametrize("configured", [False, True], ids=["default", "key_agreement"])
@pytest.mark.parametrize("kind", ["ec-p256", "ec-p384", "rsa-2048"])
def test_key_agreement_only_for_ec_keys_and_only_when_configured(station, device, kind, configured):
    usage = _issue(_issuer(station, key_agreement=configured), device, kind).extensions \
        .get_extension_for_class(x509.KeyUsage).value
    is_ec = kind.startswith("ec-")
    assert usage.digital_signature
    assert usage.key_agreement is (is_ec and configured)
    assert usage.key_encipherment is (not is_ec)


@pytest.mark.parametrize("days,backdate", [(365, 300), (30, 0), (1, 86400)])
def test_validity_is_exactly_the_configured_days_plus_the_backdating(station, device, days, backdate):
    start = dt.datetime.now(UTC).replace(microsecond=0)
    cert = _issue(_issuer(station, validity_days=days, backdate_seconds=backdate), device)
    end = dt.datetime.now(UTC)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=days, seconds=backdate)
    issued_at = cert.not_valid_before_utc + dt.timedelta(seconds=backdate)
    assert start <= issued_at <= end


def test_validity_stops_at_the_issuing_ca_end(station, device):
    ca_end = station.ca.certificate.not_valid_after_utc
    now = ca_end - dt.timedelta(days=10)
    key = new_key()
    builder = device_certificate_builder(station.cfg.profile, subject=station.issuer.subject_for(device),
                                         public_key=key.public_key(), issuer=station.ca.certificate, serial=1, now=now)
    # Signed by a throwaway key only to read the fields the builder set.
    cert = builder.sign(key, hashes.SHA256())
    assert cert.not_valid_after_utc == ca_end
    assert cert.not_valid_before_utc == now - dt.timedelta(seconds=station.cfg.profile.backdate_seconds)


@pytest.mark.parametrize("days", [30, 100_000], ids=["configured", "capped-by-ca"])
def test_the_audit_record_carries_the_certificate_validity(station, device, days):
    cert = _issue(_issuer(station, validity_days=days), device)
    (row,) = station.audit.certificates_for_device(device.device_id)
    assert dt.datetime.fromisoformat(row["not_before"]) == cert.not_valid_before_utc
    assert dt.datetime.fromisoformat(row["not_after"]) == cert.not_valid_after_utc


def test_a_common_name_over_64_characters_is_refused(station):
    # "SIM-1-" + 58 characters is exactly 64; one more is over the limit.
    assert len(subject_for(station.cfg.profile, DeviceRef("A" * 58, "L1", "SIM-1"))
               .get_attributes_for_oid(NameOID.COMMON_NAME)[0].value) == 64
    with pytest.raises(PolicyRefusal) as info:
        subject_for(station.cfg.profile, DeviceRef("A" * 59, "L1", "SIM-1"))
    assert info.value.code == "subject-too-long"
    assert "common_name" in str(info.value) and "65" in str(info.value) and "64" in str(info.value)


@pytest.mark.parametrize("field,limit", [("organization", 64), ("state", 128), ("dn_qualifier", 64)])
def test_a_fixed_subject_value_over_its_limit_is_refused(station, field, limit):
    long_profile = dataclasses.replace(station.cfg.profile, **{field: "X" * (limit + 1)})
    with pytest.raises(PolicyRefusal) as info:
        subject_for(long_profile, DeviceRef("00AA", "L1", "M"))
    assert info.value.code == "subject-too-long" and f"limit {limit}" in str(info.value)


def test_a_trailing_newline_in_a_device_value_is_refused(station):
    # re.match with a "$" pattern let "M\n" through and rendered CN "M\n-00AA".
    with pytest.raises(PolicyRefusal) as info:
        subject_for(station.cfg.profile, DeviceRef("00AA", "L1", "M\n"))
    assert info.value.code == "bad-identity"
