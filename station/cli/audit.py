"""`station audit ...`: offline checks of the audit database (docs/audit.md).

Exit codes: 0 intact, 1 tampered (the first bad row on stderr), 2 usage or configuration,
3 the database cannot be opened.
"""
from __future__ import annotations

from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from station.audit import AuditTampered, verify
from station.errors import ConfigError, UsageError


@click.group("audit")
def audit_group() -> None:
    """The chain-of-custody audit database."""


@audit_group.command("verify")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Audit database (default: [audit] database in the configuration).")
@click.option("--public-key", "key_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="PEM public key or certificate of the audit checkpoint key "
                                 "(default: [audit] public_key in the configuration).")
@click.option("--skip-signatures", is_flag=True,
              help="Check the chain and tables only; checkpoint signatures are NOT verified.")
@click.option("--expect-head", metavar="ID:HASH", default=None,
              help="An event id and hash written down earlier (a run summary's `head`): the log must "
                   "still hold exactly that event, which detects truncation after the last checkpoint.")
@click.pass_context
def audit_verify(ctx: click.Context, db_path: Path | None, key_path: Path | None,
                 skip_signatures: bool, expect_head: str | None) -> None:
    """Check the hash chain, every checkpoint signature and the certificates table."""
    if skip_signatures and key_path is not None:
        raise UsageError("--skip-signatures and --public-key exclude each other")
    if db_path is None or (key_path is None and not skip_signatures):
        db_path, key_path = _from_config(ctx, db_path, key_path, skip_signatures)
    public_key = _load_public_key(key_path) if key_path is not None else None
    expected = _parse_head(expect_head) if expect_head else None
    report = verify(db_path, public_key)
    if not report.ok:
        raise AuditTampered(f"{db_path}: {report.summary()}")
    if expected is not None:
        _check_head(db_path, *expected)
    click.echo(f"{db_path}: {report.summary()}")


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
        key_path = cfg.audit.public_key
        if key_path is None:
            raise ConfigError(f"{cfg.path}: [audit] public_key is not set; give --public-key "
                              "PEM, or --skip-signatures to check the chain only")
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
