"""The AWS IoT Just-In-Time Provisioning template, generated from the certificate profile so the
two cannot disagree (docs/jitp.md).

JITP fills template parameters only from the device certificate's subject, and a declared
parameter missing from the subject fails provisioning (the certificate stays
PENDING_ACTIVATION). So the template declares exactly the attributes the profile puts in every
subject, plus AWS::IoT::Certificate::Id, which AWS always supplies.
"""
from __future__ import annotations

import json
import re
import string

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from station.config import ProfileConfig
from station.errors import ConfigError
from station.profile import SUBJECT_FIELDS

PREFIX = "AWS::IoT::Certificate::"
CERTIFICATE_ID = PREFIX + "Id"
# AWS IoT API reference: ThingName [a-zA-Z0-9:_-]+, attribute names [a-zA-Z0-9_.,@/:#-]+, values
# [a-zA-Z0-9_.,@/:#=\[\]-]*. Device values (model, id, label) are [A-Za-z0-9:-], inside all three;
# a template's fixed text decides whether its rendered value always fits.
THING_NAME = re.compile(r"[a-zA-Z0-9:_-]*")
ATTRIBUTE_VALUE = re.compile(r"[a-zA-Z0-9_.,@/:#=\[\]-]*")
TOPIC_PREFIX = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")
# Subject attribute -> thing attribute name (lowerCamel as AWS's own examples use).
ATTRIBUTE_NAMES = {"serial_number": "serialNumber", "organization": "organization",
                   "organizational_unit": "organizationalUnit", "country": "country", "state": "state",
                   "dn_qualifier": "dnQualifier"}
CLIENT = "${iot:Connection.Thing.ThingName}"  # an IoT policy variable, filled by AWS at connect


def parameter_name(jitp: str) -> str:
    return PREFIX + jitp


def profile_parameters(profile: ProfileConfig) -> dict[str, str]:
    """{profile field: JITP parameter} for every subject attribute the profile fills."""
    return {name: parameter_name(jitp) for name, _oid, jitp, _limit in SUBJECT_FIELDS
            if getattr(profile, name) is not None}


def _fixed_text(template: str) -> str:
    return "".join(text for text, *_ in string.Formatter().parse(template))


def policy_document(topic_prefix: str, region: str, account: str) -> dict:
    """The device's IoT policy: connect only as its own thing (client id = thing name, the
    certificate attached to it), publish/receive/subscribe only under PREFIX/<thing name>/."""
    arn = f"arn:aws:iot:{region}:{account}"
    own = f"{topic_prefix}/{CLIENT}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{arn}:client/{CLIENT}",
             "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}},
            {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": f"{arn}:topic/{own}/*"},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"{arn}:topicfilter/{own}/*"},
        ],
    }


def jitp_template(profile: ProfileConfig, *, topic_prefix: str = "devices", region: str = "*",
                  account: str = "*") -> dict:
    """The provisioning template for `profile`. Raises ConfigError if the profile's common name
    cannot always be a thing name."""
    if not TOPIC_PREFIX.fullmatch(topic_prefix):
        raise ConfigError(f"--policy-topic-prefix {topic_prefix!r}: expected topic levels of A-Z a-z 0-9 _ - "
                          "separated by /, without wildcards")
    if not THING_NAME.fullmatch(_fixed_text(profile.common_name)):
        raise ConfigError(f"[profile] common_name {profile.common_name!r}: its fixed text is not allowed in an AWS IoT "
                          "thing name ([a-zA-Z0-9:_-]); JITP names the thing after the common name")
    params = profile_parameters(profile)
    attributes = {ATTRIBUTE_NAMES[name]: {"Ref": param} for name, param in params.items()
                  if name in ATTRIBUTE_NAMES and ATTRIBUTE_VALUE.fullmatch(_fixed_text(getattr(profile, name)))}
    thing = {"ThingName": {"Ref": params["common_name"]}}
    if attributes:
        thing["AttributePayload"] = attributes
    return {
        "Parameters": {**{p: {"Type": "String"} for p in params.values()}, CERTIFICATE_ID: {"Type": "String"}},
        "Resources": {
            "thing": {"Type": "AWS::IoT::Thing", "OverrideSettings": {"AttributePayload": "MERGE"},
                      "Properties": thing},
            "certificate": {"Type": "AWS::IoT::Certificate",
                            "Properties": {"CertificateId": {"Ref": CERTIFICATE_ID}, "Status": "ACTIVE"}},
            # The policy document is a string, as AWS's JITP examples give it.
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {
                "PolicyDocument": json.dumps(policy_document(topic_prefix, region, account), separators=(",", ":"))}},
        },
    }


def registration_config(template: dict, role_arn: str) -> dict:
    """The --registration-config document of `aws iot register-ca-certificate`."""
    if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", role_arn):
        raise ConfigError(f"--role-arn {role_arn!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)")
    return {"templateBody": json.dumps(template, separators=(",", ":")), "roleArn": role_arn}


def parameters_from_certificate(cert: x509.Certificate) -> dict[str, str]:
    """What JITP reads from a device certificate: one parameter per subject attribute it knows,
    and the certificate id (SHA-256 of the DER certificate)."""
    values = {CERTIFICATE_ID: cert.fingerprint(hashes.SHA256()).hex()}
    for _name, oid, jitp, _limit in SUBJECT_FIELDS:
        found = cert.subject.get_attributes_for_oid(oid)
        if found:
            values[parameter_name(jitp)] = str(found[0].value)
    return values


def render(template: dict, params: dict[str, str]) -> dict:
    """The template's resources with every Ref resolved, as RegisterThing does. Raises KeyError
    naming a declared parameter the certificate does not supply (provisioning would fail)."""
    missing = [p for p in template["Parameters"] if p not in params and "Default" not in template["Parameters"][p]]
    if missing:
        raise KeyError(f"declared but not in the certificate: {', '.join(missing)}")

    def resolve(node):
        if isinstance(node, dict):
            if set(node) == {"Ref"}:
                return params[node["Ref"]]
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node
    return resolve(template["Resources"])
