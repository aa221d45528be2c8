"""`station aws register-ca` against moto's AWS IoT: the issuing CA from the HSM station is
registered active, with the JITP template generated from the profile and the role; the
verification certificate and the registration are in the audit."""
from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest
from cryptography.hazmat.primitives import serialization

from station.aws.jitp import jitp_template, registration_config
from station.boot import open_station

moto = pytest.importorskip("moto", reason="moto (test extra) is not installed")
boto3 = pytest.importorskip("boto3")


def test_register_ca_with_moto(station_config, tmp_path, monkeypatch):
    from station.aws.register import register_ca

    for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "eu-central-1")):
        monkeypatch.setenv(var, value)
    cfg = dataclasses.replace(station_config, audit=dataclasses.replace(station_config.audit,
                                                                        database=tmp_path / "audit.db"))
    arn = "arn:aws:iam::123456789012:role/JITPRole"
    config = registration_config(jitp_template(cfg.profile), arn)
    with moto.mock_aws():
        client = boto3.client("iot", region_name="eu-central-1")
        # AWS's registration codes are 64 hex digits; moto hands out a UUID, so its dashes go.
        code = client.get_registration_code()["registrationCode"].replace("-", "")
        with open_station(cfg) as station:
            result = register_ca(client, station, config, code)
            issuing_pem = station.ca.certificate.public_bytes(serialization.Encoding.PEM).decode()
        described = client.describe_ca_certificate(certificateId=result["certificateId"])
    description = described["certificateDescription"]
    assert description["status"] == "ACTIVE"
    assert description["certificatePem"] == issuing_pem
    assert json.loads(described["registrationConfig"]["templateBody"]) == jitp_template(cfg.profile)
    assert described["registrationConfig"]["roleArn"] == arn
    db = sqlite3.connect(cfg.audit.database)
    kinds = [k for (k,) in db.execute("select kind from events where kind like 'aws-%' order by id")]
    assert kinds == ["aws-verification-certificate-signed", "aws-ca-registered"]
    logged = json.loads(db.execute("select data from events where kind = 'aws-ca-registered'").fetchone()[0])
    assert logged["certificateId"] == result["certificateId"] and logged["role_arn"] == arn
