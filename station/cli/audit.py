"""`station audit ...`: offline checks of the audit database (docs/audit.md).

Exit codes: 0 intact, 1 tampered (the first bad row on stderr) or the audit key not trusted
(its certificate does not chain to the trust anchor, or is not the token's key), 2 usage or
configuration, 3 the database cannot be opened.
"""
from __future__ import annotations

from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from station.audit import AuditTampered, verify
from station.audit.anchor import anchored_audit_key, check_station, load_certificates
from station.cli.params import Identifier
from station.errors import ConfigError, StationError, UsageError
from station.identifiers import BATCH_ID, DEVICE_ID
from station.text import printable


@click.group("audit")
def audit_group() -> None:
    """The chain-of-custody audit database."""


@audit_group.command("verify")
@click.argument("bundle", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Audit database (default: [audit] database in the configuration).")
@click.option("--trust-anchor", "anchor_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PEM root CA certificate you trust, from your own records (not from the station): the "
                   "audit certificate must chain to it, and the checkpoints are checked against its key.")
@click.option("--certificate", "cert_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PEM audit-signing certificate, then its issuing CA(s) (default: [audit] certificate "
                   "in the configuration).")
@click.option("--public-key", "key_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="PEM public key or certificate of the audit checkpoint key, taken as "
                                 "given (UNANCHORED; default: [audit] public_key in the configuration).")
@click.option("--skip-signatures", is_flag=True,
              help="Check the chain and tables only; checkpoint signatures are NOT verified.")
@click.option("--expect-head", metavar="ID:HASH", default=None,
              help="An event id and hash written down earlier (a run summary's `head`): the log must "
                   "still hold exactly that event, which detects truncation after the last checkpoint.")
@click.pass_context
def audit_verify(ctx: click.Context, bundle: Path | None, db_path: Path | None, anchor_path: Path | None,
                 cert_path: Path | None, key_path: Path | None, skip_signatures: bool, expect_head: str | None) -> None:
    """Check the hash chain, every checkpoint signature and the certificates table; or, given
    BUNDLE (from `station audit export --format bundle`), check that bundle offline."""
    if bundle is not None:
        _verify_bundle(bundle, anchor_path, db_path or cert_path or key_path or skip_signatures or expect_head)
        return
    if skip_signatures and (key_path or anchor_path or cert_path):
        raise UsageError("--skip-signatures excludes --public-key, --certificate and --trust-anchor")
    if key_path is not None and (anchor_path or cert_path):
        raise UsageError("--public-key excludes --trust-anchor and --certificate: with a trust anchor the "
                         "key comes from the audit certificate")
    if cert_path is not None and anchor_path is None:
        raise UsageError("--certificate needs --trust-anchor ROOT.pem: a certificate no anchor vouches for is "
                         "just a key (use --public-key for an UNANCHORED check)")
    expected = _parse_head(expect_head) if expect_head else None
    anchored = anchored_by = None
    if anchor_path is not None:
        db_path, anchored, anchored_by = _anchored(ctx, db_path, cert_path, anchor_path)
        public_key = anchored.public_key
    else:
        if db_path is None or (key_path is None and not skip_signatures):
            db_path, key_path = _from_config(ctx, db_path, key_path, skip_signatures)
        public_key = _load_public_key(key_path) if key_path is not None else None
    report = verify(db_path, public_key)
    report.anchored_by = anchored_by
    if not report.ok:
        raise AuditTampered(f"{db_path}: {report.summary()}")
    if anchored is not None:
        check_station(anchored, report.checkpoint_stations)
    if expected is not None:
        _check_head(db_path, *expected)
    # The summary can quote values read from the database, which an attacker may have edited.
    click.echo(printable(f"{db_path}: {report.summary()}"))


def _verify_bundle(bundle: Path, anchor_path: Path | None, other_options) -> None:
    """Offline: no configuration, token or database is read."""
    from station.audit.bundle_verify import verify_bundle

    if anchor_path is None or other_options:
        raise UsageError("a bundle is verified with --trust-anchor ROOT.pem alone (its audit certificate, chain "
                         "and events are inside it)")
    anchors = load_certificates(anchor_path, "trust anchor")
    if len(anchors) != 1:
        raise UsageError(f"{anchor_path}: give exactly one trust anchor certificate, not {len(anchors)}")
    click.echo(verify_bundle(bundle, anchors[0]).summary())


def _anchored(ctx: click.Context, db_path: Path | None, cert_path: Path | None, anchor_path: Path):
    """The audit key vouched for by the trust anchor, and, with the station's configuration
    and PIN at hand, checked against the token's audit key. Returns (db, AnchoredKey, description)."""
    # Without --db and --certificate the configuration must be there; with both it is only
    # used, if present, to compare the token's key.
    cfg = _optional_config(ctx, required=db_path is None or cert_path is None)
    if cfg is not None:
        db_path = db_path or cfg.audit.database
        cert_path = cert_path or cfg.audit.certificate
    if db_path is None or cert_path is None:
        raise ConfigError("no " + ("audit database" if db_path is None else "audit certificate")
                          + ": give --db and --certificate, or a configuration with [audit] database and "
                          "[audit] certificate")
    anchors = load_certificates(anchor_path, "trust anchor")
    if len(anchors) != 1:
        raise UsageError(f"{anchor_path}: give exactly one trust anchor certificate, not {len(anchors)}")
    anchored = anchored_audit_key(load_certificates(cert_path, "audit certificate"), anchors[0])
    token = _token_check(cfg, anchored.public_key) if cfg is not None else "token not checked: no configuration"
    return db_path, anchored, f"{anchored.describe()}; {token}"


def _optional_config(ctx: click.Context, required: bool):
    from station.config import load_config

    try:
        return load_config(ctx.obj.config_path())
    except ConfigError as exc:
        if not required:
            return None
        raise ConfigError(f"{exc}; or give --db and --certificate") from None


def _token_check(cfg, public_key) -> str:
    """Compare the token's audit key with the certified one. A token that cannot be opened here
    (no PIN, another machine) is said, not fatal: the anchor alone already vouches for the key."""
    from hsm.errors import HSMError
    from station.boot import open_token

    label = cfg.hsm.audit_key_label
    try:
        with open_token(cfg) as token:
            token_key = token.public_key(label)
    except (HSMError, StationError) as exc:
        return f"token not checked ({exc})"
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if token_key.public_bytes(*fmt) != public_key.public_bytes(*fmt):
        raise AuditTampered(f"audit key NOT TRUSTED: the audit certificate certifies another key than "
                            f"{label!r} on token {cfg.hsm.token_label!r}")
    return f"the token's audit key {label!r} is the certified key"


def _parse_head(text: str) -> tuple[int, str]:
    event_id, sep, digest = text.partition(":")
    if not sep or not event_id.isdigit() or len(digest) != 64:
        raise UsageError(f"--expect-head {text!r}: expected ID:HASH (an event id and its 64-hex-digit hash)")
    return int(event_id), digest.lower()


def _check_head(db_path: Path, event_id: int, digest: str) -> None:
    """The chain already verified; it must still contain the recorded event, unchanged."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT hash FROM events WHERE id = ?", (event_id,)).fetchone()
            newest = conn.execute("SELECT MAX(id) FROM events").fetchone()[0] or 0
    except sqlite3.Error as exc:
        raise AuditTampered(f"{db_path}: cannot read events to check the expected head ({exc})") from None
    if row is None:
        raise AuditTampered(f"{db_path}: audit TAMPERED: event {event_id} recorded earlier is missing; the log "
                            f"ends at event {newest} (truncated?)")
    if row[0] != digest:
        raise AuditTampered(f"{db_path}: audit TAMPERED: event {event_id} has hash {row[0][:16]}..., "
                            f"recorded earlier as {digest[:16]}...")


def _from_config(ctx: click.Context, db_path, key_path, skip_signatures):
    # Imported here so `station audit verify --db ... --public-key ...` works on a QA machine
    # with no station configuration at all.
    from station.config import load_config

    try:
        cfg = load_config(ctx.obj.config_path())
    except ConfigError as exc:
        raise ConfigError(f"{exc}; or give --db and --public-key (or --skip-signatures)") \
            from None
    db_path = db_path or cfg.audit.database
    if key_path is None and not skip_signatures:
        key_path = cfg.audit.public_key or cfg.audit.certificate
        if key_path is None:
            raise ConfigError(f"{cfg.path}: neither [audit] public_key nor [audit] certificate is set; give "
                              "--trust-anchor ROOT.pem --certificate PEM, --public-key PEM, or --skip-signatures "
                              "to check the chain only")
    return db_path, key_path


def _load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the audit public key {path}: {exc.strerror}") from None
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError:
        raise UsageError(f"{path} is not a PEM public key or certificate") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise UsageError(f"{path}: the audit key must be an EC key, not "
                         f"{type(key).__name__.removeprefix('_')}")
    return key


@audit_group.command("export")
@click.option("--batch", default=None, type=Identifier(BATCH_ID), help="Every event of this work order.")
@click.option("--since", default=None, metavar="DATE", help="Events from this date or ISO 8601 time (UTC).")
@click.option("--until", default=None, metavar="DATE", help="With --since: events before this time (a bare date "
                                                              "includes that day).")
@click.option("--device", default=None, type=Identifier(DEVICE_ID), help="Every event of this device.")
@click.option("--revocations", is_flag=True, help="List the certificates to revoke (undelivered, unknown, "
                                                  "superseded, revoked) with their AWS certificate ids.")
@click.option("--format", "fmt", required=True, type=click.Choice(["csv", "jsonl", "bundle", "json"]),
              help="csv: one row per device; jsonl: every event with its chain fields; bundle: a signed zip "
                   "for offline verification; json/csv with --revocations.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output file.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Audit database (default: [audit] database in the configuration; not with bundle).")
@click.pass_context
def audit_export(ctx: click.Context, batch, since, until, device, revocations: bool, fmt: str, out: Path,
                 db_path: Path | None) -> None:
    """Export the audit for QA: a batch, a date range or a device (docs/audit.md, "QA export")."""
    from station.audit import export
    from station.audit.export_selection import Selection, parse_moment

    if revocations:
        if batch or since or until or device or fmt not in ("csv", "json"):
            raise UsageError("--revocations lists every certificate to revoke: give --format csv or json and no "
                             "selection")
        from station.audit.export_revocations import write_revocations

        count = write_revocations(db_path or _config(ctx).audit.database, out, fmt)
        click.echo(f"wrote {count} certificate(s) to revoke to {out}")
        return
    if fmt == "json":
        raise UsageError("--format json is for --revocations; events are exported as jsonl")
    selection = Selection(batch=batch, device=device,
                          since=parse_moment(since, "--since") if since else None,
                          until=parse_moment(until, "--until", end_of_day=True) if until else None)
    if fmt == "bundle":
        if db_path is not None:
            raise UsageError("--db is not for bundles: the bundle is signed with the station's audit key, so it "
                             "is made from the station's configuration")
        from station.audit.bundle import export_from_station

        written = export_from_station(_config(ctx), selection, out)
        click.echo(f"wrote {out}: {written.events} events ({written.selected} selected), {written.checkpoints} "
                   f"checkpoint(s), {written.certificates} certificate(s); manifest sha256 {written.manifest_sha256}")
        return
    db_path = db_path or _config(ctx).audit.database
    if fmt == "csv":
        click.echo(f"wrote {export.write_csv(db_path, selection, out)} device(s) to {out}")
    else:
        click.echo(f"wrote {export.write_jsonl(db_path, selection, out)} event(s) to {out}")


def _config(ctx: click.Context):
    from station.config import load_config

    return load_config(ctx.obj.config_path())


@audit_group.command("report")
@click.option("--batch", required=True, type=Identifier(BATCH_ID), help="The work order to report on.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The HTML file to write.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Audit database (default: [audit] database in the configuration).")
@click.pass_context
def audit_report(ctx: click.Context, batch: str, out: Path, db_path: Path | None) -> None:
    """Write the batch report: one self-contained HTML file (docs/audit.md, "Batch report")."""
    from station.audit.report import write_batch_report

    figures = write_batch_report(db_path or _config(ctx).audit.database, batch, out)
    click.echo(f"wrote {out}: {figures.devices} device(s), yield {figures.yield_percent:.1f}%")
