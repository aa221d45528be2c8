"""The JITP template is generated from the profile: it declares exactly the subject attributes
the profile fills, and every parameter it declares is present in real certificates issued by
the HSM CA under that profile, resolved as AWS does."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography import x509

from station.aws.jitp import CERTIFICATE_ID, jitp_template, parameters_from_certificate, registration_config, render
from station.boot import open_ca, open_token
from station.config import ProfileConfig
from station.errors import ConfigError
from station.profile import DeviceRef, device_certificate_builder, subject_for
from tests.cli_runner import assert_clean_failure, run_station

PROFILES = {
    "cn-only": (ProfileConfig(serial_number=None), {"CommonName"}),
    "cn-serial": (ProfileConfig(), {"CommonName", "SerialNumber"}),
    "all": (ProfileConfig(common_name="{model}-{device_id}", serial_number="{label}", organization="Example Devices Ltd",
                          organizational_unit="Line-{model}", country="DE", state="Bavaria",
                          dn_qualifier="q-{device_id}"),
            {"CommonName", "SerialNumber", "Organization", "OrganizationalUnit", "Country", "StateName",
             "DistinguishedNameQualifier"}),
}


@pytest.fixture(scope="module")
def ca(station_config):
    token = open_token(station_config)
    yield open_ca(station_config, token)
    token.close()


def _issue(ca, profile: ProfileConfig, n: int) -> x509.Certificate:
    device = DeviceRef(device_id=f"{0xA1B2C3D4E5F60000 + n:016X}", label=f"LBL-{n:04d}", model="SIM-1")
    key = ec.generate_private_key(ec.SECP256R1())
    return ca.sign(device_certificate_builder(profile, subject=subject_for(profile, device),
                                              public_key=key.public_key(), issuer=ca.certificate,
                                              serial=x509.random_serial_number()))


@pytest.mark.parametrize("name", list(PROFILES))
def test_template_declares_exactly_what_the_profile_fills_and_real_certificates_supply_it(ca, name):
    profile, fields = PROFILES[name]
    template = json.loads(json.dumps(jitp_template(profile)))  # valid JSON, round trip
    declared = set(template["Parameters"])
    assert declared == {f"AWS::IoT::Certificate::{f}" for f in fields} | {CERTIFICATE_ID}
    for n in range(3):
        cert = _issue(ca, profile, n)
        params = parameters_from_certificate(cert)
        resources = render(template, params)  # raises if a declared parameter is missing
        thing = resources["thing"]["Properties"]
        assert thing["ThingName"] == params["AWS::IoT::Certificate::CommonName"] == f"SIM-1-{0xA1B2C3D4E5F60000 + n:016X}"
        assert resources["certificate"]["Properties"] == {"CertificateId": params[CERTIFICATE_ID], "Status": "ACTIVE"}
        if "SerialNumber" in fields:
            assert thing["AttributePayload"]["serialNumber"] == f"LBL-{n:04d}"
    # A parameter the subject lacks is what makes AWS leave the certificate PENDING_ACTIVATION.
    if name == "cn-only":
        with pytest.raises(KeyError, match="SerialNumber"):
            render(jitp_template(PROFILES["cn-serial"][0]), parameters_from_certificate(_issue(ca, profile, 9)))


def test_attributes_only_from_values_aws_accepts_and_a_policy_for_the_own_client_id():
    profile = PROFILES["all"][0]
    template = jitp_template(profile, topic_prefix="fleet/telemetry")
    attributes = template["Resources"]["thing"]["Properties"]["AttributePayload"]
    # "Example Devices Ltd" has spaces, which a thing attribute value may not hold.
    assert set(attributes) == {"serialNumber", "organizationalUnit", "country", "state", "dnQualifier"}
    policy = json.loads(template["Resources"]["policy"]["Properties"]["PolicyDocument"])
    connect, pubsub, subscribe = policy["Statement"]
    assert connect["Resource"].endswith(":client/${iot:Connection.Thing.ThingName}")
    assert connect["Condition"] == {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
    assert pubsub["Resource"].endswith(":topic/fleet/telemetry/${iot:Connection.Thing.ThingName}/*")
    assert subscribe["Resource"].endswith(":topicfilter/fleet/telemetry/${iot:Connection.Thing.ThingName}/*")
    with pytest.raises(ConfigError, match="thing name"):
        jitp_template(ProfileConfig(common_name="Device {device_id}"))
    with pytest.raises(ConfigError, match="prefix"):
        jitp_template(profile, topic_prefix="a/#")


def test_cli_writes_the_template_and_the_registration_config(station_config, tmp_path):
    out = tmp_path / "template.json"
    result = run_station("--config", station_config.path, "aws", "jitp-template", "--out", out)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text()) == jitp_template(station_config.profile)
    reg = tmp_path / "registration.json"
    arn = "arn:aws:iam::123456789012:role/JITPRole"
    assert run_station("--config", station_config.path, "aws", "registration-config", "--role-arn", arn,
                       "--out", reg).returncode == 0
    document = json.loads(reg.read_text())
    assert document == registration_config(jitp_template(station_config.profile), arn)
    assert json.loads(document["templateBody"]) == jitp_template(station_config.profile)
    assert_clean_failure(run_station("--config", station_config.path, "aws", "registration-config", "--role-arn",
                                     "admin", "--out", reg), 2, "IAM role ARN")
