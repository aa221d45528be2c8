"""`station aws ...`: the AWS IoT hand-off, generated from the configured profile (docs/jitp.md)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from station.atomic_file import atomic_output
from station.aws.jitp import jitp_template, registration_config
from station.config import load_config


@click.group("aws")
def aws_group() -> None:
    """AWS IoT Just-In-Time Provisioning: template and CA registration documents."""


def _template(ctx: click.Context, topic_prefix: str, region: str, account: str) -> dict:
    cfg = load_config(ctx.obj.config_path())
    return jitp_template(cfg.profile, topic_prefix=topic_prefix, region=region, account=account)


_prefix = click.option("--policy-topic-prefix", "topic_prefix", default="devices", show_default=True,
                       help="The device may publish, receive and subscribe under PREFIX/<thing name>/ only.")
_region = click.option("--region", default="*", show_default=True, help="AWS region in the policy's ARNs.")
_account = click.option("--account-id", "account", default="*", show_default=True,
                        help="AWS account id in the policy's ARNs.")
_out = click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output JSON file.")


def _write_json(path: Path, document: dict) -> None:
    with atomic_output(path) as out:
        out.write(json.dumps(document, indent=2) + "\n")


@aws_group.command("jitp-template")
@_prefix
@_region
@_account
@_out
@click.pass_context
def aws_jitp_template(ctx: click.Context, topic_prefix: str, region: str, account: str, out: Path) -> None:
    """Write the JITP provisioning template for the configured [profile]."""
    template = _template(ctx, topic_prefix, region, account)
    _write_json(out, template)
    click.echo(f"wrote {out}: parameters {', '.join(template['Parameters'])}")


@aws_group.command("registration-config")
@click.option("--role-arn", required=True, help="IAM role AWS IoT assumes to provision (JITP).")
@_prefix
@_region
@_account
@_out
@click.pass_context
def aws_registration_config(ctx: click.Context, role_arn: str, topic_prefix: str, region: str, account: str,
                            out: Path) -> None:
    """Write the --registration-config document (template body + role) for
    `aws iot register-ca-certificate --allow-auto-registration`."""
    _write_json(out, registration_config(_template(ctx, topic_prefix, region, account), role_arn))
    click.echo(f"wrote {out}; register the issuing CA as docs/jitp.md shows")


@aws_group.command("register-ca")
@click.option("--role-arn", required=True, help="IAM role AWS IoT assumes to provision (JITP).")
@click.option("--aws-region", "aws_region", default=None, help="AWS region to register in (default: boto3's).")
@_prefix
@_region
@_account
@click.pass_context
def aws_register_ca(ctx: click.Context, role_arn: str, aws_region: str | None, topic_prefix: str, region: str,
                    account: str) -> None:
    """Register the issuing CA with AWS IoT through boto3 (the optional `aws` extra): verification
    certificate signed through the token, auto-registration on, the JITP template attached."""
    from station.aws.register import iot_client, register_ca
    from station.boot import open_station

    config = registration_config(_template(ctx, topic_prefix, region, account), role_arn)
    client = iot_client(aws_region)
    code = client.get_registration_code()["registrationCode"]
    with open_station(load_config(ctx.obj.config_path())) as station:
        result = register_ca(client, station, config, code)
    click.echo(f"registered the issuing CA: {result['certificateId']} ({result['certificateArn']})")
