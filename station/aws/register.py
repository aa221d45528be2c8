"""`station aws register-ca`: registers the issuing CA with AWS IoT through boto3, with the JITP
template generated from the profile (docs/jitp.md). boto3 is an optional extra
(`certificate-injection-station[aws]`), imported only here and only when the command runs.
"""
from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from hsm.ca import aws_verification_certificate, fingerprint
from station.errors import EnvironmentProblem


def iot_client(region: str | None):
    """A boto3 AWS IoT client; EnvironmentProblem (exit 3) if boto3 is not installed."""
    try:
        import boto3
    except ImportError:
        raise EnvironmentProblem("boto3 is not installed: pip install 'certificate-injection-station[aws]', or "
                                 "register with the AWS CLI as docs/jitp.md shows") from None
    return boto3.client("iot", region_name=region)


def register_ca(client, station, registration_config: dict, registration_code: str) -> dict:
    """Sign the verification certificate for `registration_code` with the issuing key (logged),
    then register the issuing CA, active, with auto-registration and the JITP template.
    `station` is an open station (boot.open_station). Returns {"certificateId", "certificateArn"}."""
    from botocore.exceptions import BotoCoreError, ClientError

    verification = aws_verification_certificate(station.ca, registration_code)
    station.audit.log_event("aws-verification-certificate-signed", operator="cli", data={
        "registration_code": registration_code, "serial": format(verification.serial_number, "x"),
        "sha256": fingerprint(verification), "issuing_ca_sha256": fingerprint(station.ca.certificate)})
    pem = serialization.Encoding.PEM
    try:
        answer = client.register_ca_certificate(
            caCertificate=station.ca.certificate.public_bytes(pem).decode(),
            verificationCertificate=verification.public_bytes(pem).decode(),
            setAsActive=True, allowAutoRegistration=True, registrationConfig=registration_config)
    except (BotoCoreError, ClientError) as exc:
        raise EnvironmentProblem(f"AWS IoT refused or could not be reached: {exc}") from None
    result = {"certificateId": answer["certificateId"], "certificateArn": answer["certificateArn"]}
    station.audit.log_event("aws-ca-registered", operator="cli", data={
        **result, "issuing_ca_sha256": fingerprint(station.ca.certificate),
        "role_arn": registration_config.get("roleArn")})
    return result
