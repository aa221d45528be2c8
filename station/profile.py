"""The device certificate profile: the subject the station dictates and the certificate it builds.

The subject is rendered from the configured templates and the device's bound identity; it is
never copied from a CSR, and no extension a CSR asks for is ever copied either. The field
mapping to AWS IoT JITP template parameters is in docs/certificate-profile.md.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hsm.ca import key_usage
from station.config import SUBJECT_TEMPLATES, ProfileConfig
from station.errors import PolicyRefusal

UTC = dt.timezone.utc

# Only these characters may come from a device or a label into a subject. They are what chip
# UIDs, model names and printed labels use; they cannot smuggle RFC 4514 syntax or confusable
# characters into the certificate; every one of them fits a PrintableString (serialNumber and
# dnQualifier are encoded as PrintableString, which has no "_"); and every one is allowed in
# an AWS IoT thing name, which JITP templates usually build from CommonName or SerialNumber
# (thing names allow no "." or "+").
# Always fullmatch: with re.match, "$" also matches before a trailing newline ("M\n" passed).
_SAFE_VALUE = re.compile(r"[A-Za-z0-9:-]{1,64}")

_ATTRIBUTES = {
    "country": (NameOID.COUNTRY_NAME, "Country"),
    "state": (NameOID.STATE_OR_PROVINCE_NAME, "StateName"),
    "organization": (NameOID.ORGANIZATION_NAME, "Organization"),
    "organizational_unit": (NameOID.ORGANIZATIONAL_UNIT_NAME, "OrganizationalUnit"),
    "dn_qualifier": (NameOID.DN_QUALIFIER, "DistinguishedNameQualifier"),
    "serial_number": (NameOID.SERIAL_NUMBER, "SerialNumber"),
    "common_name": (NameOID.COMMON_NAME, "CommonName"),
}
# (profile field, subject OID, JITP parameter, upper bound from RFC 5280 ub-*), in subject order
SUBJECT_FIELDS = tuple((name, *_ATTRIBUTES[name], limit) for name, limit in SUBJECT_TEMPLATES.items())


@dataclass(frozen=True)
class DeviceRef:
    """The identity a subject is rendered from: the device's id and model as bound by the
    station, and the label scanned or taken from the manifest."""

    device_id: str
    label: str
    model: str


def subject_for(profile: ProfileConfig, device: DeviceRef) -> x509.Name:
    """The subject this device's certificate (and its CSR) must carry. Raises PolicyRefusal if
    a device value is unsafe or a field would render empty or too long."""
    values = {"device_id": device.device_id, "label": device.label, "model": device.model}
    for key, value in values.items():
        if not _SAFE_VALUE.fullmatch(value or ""):
            raise PolicyRefusal("bad-identity", f"{key} {value!r} is not 1-64 characters of A-Z a-z 0-9 : -")
    attrs = []
    for name, oid, jitp, limit in SUBJECT_FIELDS:
        template = getattr(profile, name)
        if template is None:
            continue
        rendered = template.format(**values).strip()
        if not rendered:
            raise PolicyRefusal("empty-subject-field",
                                f"profile field {name} (JITP {jitp}) renders empty for device {device.device_id}")
        if len(rendered) > limit:
            raise PolicyRefusal("subject-too-long",
                                f"profile field {name} renders {len(rendered)} characters (limit {limit})")
        attrs.append(x509.NameAttribute(oid, rendered))
    return x509.Name(attrs)


def device_certificate_builder(profile: ProfileConfig, *, subject: x509.Name, public_key,
                               issuer: x509.Certificate, serial: int,
                               now: dt.datetime | None = None) -> x509.CertificateBuilder:
    """The device certificate, as docs/certificate-profile.md specifies it."""
    now = (now or dt.datetime.now(UTC)).replace(microsecond=0)
    is_ec = isinstance(public_key, ec.EllipticCurvePublicKey)
    is_rsa = isinstance(public_key, rsa.RSAPublicKey)
    issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    usage = ["digital_signature"]
    if is_rsa:
        # Only RSA keys can encipher: EC and Ed25519 certificates must not carry
        # keyEncipherment; RSA device keys get it because TLS RSA key transport needs it.
        usage.append("key_encipherment")
    if is_ec and profile.key_agreement:
        usage.append("key_agreement")
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(now - dt.timedelta(seconds=profile.backdate_seconds))
        # Never beyond the issuing CA: a chain is only valid while every certificate in it is.
        .not_valid_after(min(now + dt.timedelta(days=profile.validity_days), issuer.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(*usage), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False)
    )
