"""`station ca ...`: inspect the CA, export its chain, and the production set-up (CSR, import)."""
from __future__ import annotations

from pathlib import Path

import click
import tomlkit
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hsm.ca import (CertificateAuthority, aws_verification_certificate, certify_audit_key, check_issuing_import,
                    create_issuing_csr, fingerprint)
from hsm.errors import CAError
from hsm.token import KeySpec
from station.boot import load_chain, open_ca, open_token
from station.config import load_config
from station.errors import ConfigError, EnvironmentProblem, UsageError
from station.policy import describe_key


@click.group("ca")
def ca_group() -> None:
    """The issuing CA: show, export the chain, production CSR and import."""


def _config(ctx: click.Context):
    return load_config(ctx.obj.config_path())


@ca_group.command("show")
@click.pass_context
def ca_show(ctx: click.Context) -> None:
    """Print the chain: subjects, fingerprints, key types and where each key lives."""
    cfg = _config(ctx)
    flagged: list[str] = []
    with open_token(cfg) as token:
        ca = open_ca(cfg, token)
        for position, cert in enumerate(ca.chain):
            role = "issuing CA" if position == 0 else ("root CA" if position == len(ca.chain) - 1 else "intermediate")
            label = None
            if position == 0:
                label = cfg.hsm.issuing_key_label
                where = f"HSM token {cfg.hsm.token_label!r}, key {label!r} " \
                        f"({_protection(token.private_key_attributes(label))})"
            elif cfg.ca.setup == "development" and token.has_key(cfg.hsm.root_key_label) and \
                    _same_key(token.public_key(cfg.hsm.root_key_label), cert.public_key()):
                label = cfg.hsm.root_key_label
                where = f"HSM token {cfg.hsm.token_label!r}, key {label!r} (development set-up)"
            else:
                where = "offline (not on this station)"
            click.echo(f"[{position}] {role}")
            click.echo(f"    subject:     {cert.subject.rfc4514_string()}")
            click.echo(f"    issuer:      {cert.issuer.rfc4514_string()}")
            click.echo(f"    serial:      {cert.serial_number:x}")
            click.echo(f"    valid:       {cert.not_valid_before_utc:%Y-%m-%d} .. {cert.not_valid_after_utc:%Y-%m-%d}")
            click.echo(f"    key:         {describe_key(cert.public_key())}")
            click.echo(f"    sha256:      {fingerprint(cert)}")
            click.echo(f"    private key: {where}")
            if label is not None:
                _show_capabilities(token, label, flagged)
        audit_label = cfg.hsm.audit_key_label
        click.echo("[audit] checkpoint signing key")
        if token.has_key(audit_label):
            click.echo(f"    private key: HSM token {cfg.hsm.token_label!r}, key {audit_label!r} "
                       f"({_protection(token.private_key_attributes(audit_label))})")
            _show_capabilities(token, audit_label, flagged)
        else:
            click.echo(f"    private key: none (no key {audit_label!r} on the token: no signed checkpoints)")
    if flagged:
        raise CAError(f"key(s) {', '.join(map(repr, flagged))} on token {cfg.hsm.token_label!r} allow more than "
                      "signing; CA and audit keys must be sign-only (see the FLAG lines; docs/ca.md)")


def _show_capabilities(token, label: str, flagged: list[str]) -> None:
    """One line of what the token lets the key do; a FLAG line if it is more than signing."""
    allowed = [use for use, on in token.private_key_capabilities(label).items() if on]
    extra = [use for use in allowed if use != "sign"]
    click.echo(f"    allows:      {'sign only' if allowed == ['sign'] else ', '.join(allowed) or 'nothing'}")
    if extra:
        flagged.append(label)
        click.echo(f"    FLAG: key {label!r} allows {', '.join(extra)}: a CA or audit key must be sign-only")


def _protection(attrs: dict[str, bool]) -> str:
    """The key's flags as the token reports them (not what we expect them to be)."""
    return ", ".join([
        "sensitive" if attrs["sensitive"] else "NOT SENSITIVE",
        "not extractable" if not attrs["extractable"] else "EXTRACTABLE",
        "never extractable" if attrs["never_extractable"] else "was extractable",
    ])


def _same_key(a, b) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return a.public_bytes(*fmt) == b.public_bytes(*fmt)


@ca_group.command("export-chain")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def ca_export_chain(ctx: click.Context, file: Path) -> None:
    """Write the PEM chain: issuing CA first, then each parent up to the root."""
    cfg = _config(ctx)
    chain = load_chain(cfg.ca.chain)
    _write(file, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    click.echo(f"wrote {len(chain)} certificate(s) to {file}")


@ca_group.command("csr")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--common-name", default=None, help="CN of the issuing CA (default: from the organization).")
@click.pass_context
def ca_csr(ctx: click.Context, file: Path, common_name: str | None) -> None:
    """Production set-up: create the issuing key in the token (if absent) and write its CSR."""
    cfg = _config(ctx)
    with open_token(cfg) as token:
        csr = create_issuing_csr(token, issuing_label=cfg.hsm.issuing_key_label,
                                 key_spec=KeySpec.parse(cfg.ca.key_type), organization=cfg.ca.organization,
                                 country=cfg.ca.country,
                                 issuing_cn=common_name or f"{cfg.ca.organization} Device Issuing CA {cfg.station_id}")
    _write(file, csr.public_bytes(serialization.Encoding.PEM))
    click.echo(f"wrote the issuing CA CSR to {file}; have the offline root sign it, then `station ca import`")


@ca_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def ca_import(ctx: click.Context, file: Path) -> None:
    """Production set-up: install the signed issuing CA certificate and its chain (issuing first),
    and have it certify the audit key (ca/audit.pem, [audit] certificate)."""
    cfg = _config(ctx)
    try:
        chain = x509.load_pem_x509_certificates(file.read_bytes())
    except ValueError as exc:
        raise ConfigError(f"{file} is not a PEM certificate bundle ({exc})") from None
    with open_token(cfg) as token:
        try:
            check_issuing_import(token, cfg.hsm.issuing_key_label, chain)
            audit_cert, audit_public = _certify_audit_key(cfg, token, chain)
        except CAError as exc:
            raise CAError(f"{file}: {exc}; nothing was installed") from None
    if cfg.ca.chain.exists():
        # Copied, not moved: if writing the new chain fails, the old one is still in place.
        backup = cfg.ca.chain.with_suffix(".pem.previous")
        _write(backup, cfg.ca.chain.read_bytes())
        click.echo(f"previous chain kept as {backup}")
    chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    _write(cfg.ca.chain, chain_pem)
    click.echo(f"installed issuing CA {chain[0].subject.rfc4514_string()} ({fingerprint(chain[0])})")
    audit_path = cfg.audit.certificate or cfg.ca.chain.with_name("audit.pem")
    _write(audit_path, audit_cert.public_bytes(serialization.Encoding.PEM) + chain_pem)
    if cfg.audit.public_key is not None:
        _write(cfg.audit.public_key, audit_public.public_bytes(serialization.Encoding.PEM,
                                                               serialization.PublicFormat.SubjectPublicKeyInfo))
    if cfg.audit.certificate is None:
        _point_config_at(cfg, audit_path)
    click.echo(f"audit key {cfg.hsm.audit_key_label!r} certified by the issuing CA: {audit_path} "
               f"(verify the audit with: station audit verify --trust-anchor ROOT.pem)")


def _certify_audit_key(cfg, token, chain: list[x509.Certificate]):
    """The production path's audit certificate: the newly imported issuing CA certifies the
    audit key (generated sign-only if the token lacks it). Returns (certificate, public key)."""
    label = cfg.hsm.audit_key_label
    if token.has_key(label):
        public = token.public_key(label)
    else:
        public = token.generate_key(label, KeySpec.parse("ec-p256"))
        click.echo(f"generated the audit key {label!r} in the token")
    ca = CertificateAuthority(token=token, issuing_label=cfg.hsm.issuing_key_label, chain=chain)
    return certify_audit_key(ca, public, station_id=cfg.station_id, organization=cfg.ca.organization), public


def _point_config_at(cfg, audit_path: Path) -> None:
    """Set [audit] certificate in station.toml, keeping its comments and layout (tomlkit)."""
    doc = tomlkit.parse(cfg.path.read_text())
    if "audit" not in doc:
        doc.add("audit", tomlkit.table())
    try:
        value = str(audit_path.relative_to(cfg.base_dir))
    except ValueError:
        value = str(audit_path)
    doc["audit"]["certificate"] = value
    _write(cfg.path, tomlkit.dumps(doc).encode())
    click.echo(f"{cfg.path}: [audit] certificate = {value!r}")


@ca_group.command("aws-verification")
@click.argument("registration_code")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the verification certificate (PEM).")
@click.pass_context
def ca_aws_verification(ctx: click.Context, registration_code: str, out: Path) -> None:
    """Sign the AWS IoT CA-registration verification certificate (CN = REGISTRATION_CODE) with
    the issuing CA key; logged in the audit."""
    from station.boot import open_station

    if not registration_code.isalnum() or len(registration_code) > 64:
        raise UsageError(f"{registration_code!r} is not a registration code (1-64 letters and digits, "
                         "from `aws iot get-registration-code`)")
    cfg = _config(ctx)
    with open_station(cfg) as station:
        cert = aws_verification_certificate(station.ca, registration_code)
        station.audit.log_event("aws-verification-certificate-signed", operator="cli", data={
            "registration_code": registration_code, "serial": format(cert.serial_number, "x"),
            "sha256": fingerprint(cert), "issuing_ca_sha256": fingerprint(station.ca.certificate)})
    _write(out, cert.public_bytes(serialization.Encoding.PEM))
    click.echo(f"wrote the verification certificate (CN={registration_code}) to {out}; register the issuing CA "
               f"with: aws iot register-ca-certificate --ca-certificate file://ISSUING.pem "
               f"--verification-certificate file://{out}")


@ca_group.command("crl")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the CRL (PEM).")
@click.option("--next-update-days", default=7, show_default=True, type=click.IntRange(1, 366),
              help="Days until the CRL's nextUpdate: publish a new one before then.")
@click.pass_context
def ca_crl(ctx: click.Context, out: Path, next_update_days: int) -> None:
    """Revoke every certificate never confirmed on a device (undelivered, unknown) or replaced
    (superseded), and write the CRL signed by the issuing CA key (docs/ca.md, "Revocation")."""
    from station.audit.export_revocations import issue_crl
    from station.boot import open_station

    with open_station(_config(ctx)) as station:
        number, entries = issue_crl(station, out, next_update_days=next_update_days)
    click.echo(f"wrote CRL {number} with {entries} revoked certificate(s) to {out}; list them for AWS IoT with "
               "`station audit export --revocations --format csv --out FILE`")


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write {path}: {exc.strerror}") from None
