"""`station aws ...`: the AWS IoT hand-off, generated from the configured profile (docs/jitp.md)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from station.audit.export import atomic_output
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
