"""`station init`: a complete development station from nothing, inside one work directory.

    DIR/station.toml            configuration, every path in it relative to DIR
    DIR/hsm/softhsm2.conf       SoftHSM2 configuration private to this station
    DIR/hsm/tokens/             the token (root, issuing and audit keys live only here)
    DIR/hsm/user.pin            generated user PIN, mode 0600
    DIR/hsm/so.pin              generated security-officer PIN, mode 0600
    DIR/ca/chain.pem            issuing CA certificate, then the root
    DIR/ca/audit-public.pem     public half of the audit checkpoint key
    DIR/ca/audit.pem            the audit key's certificate (issued by the issuing CA), then the chain
    DIR/audit.db                the audit database

An existing station is never destroyed: init refuses, and with force=True it moves the old
token and CA files aside (to DIR/replaced-<time>/) instead of deleting them.
"""
from __future__ import annotations

import datetime as dt
import re
import secrets
import shutil
from pathlib import Path

import tomlkit
from cryptography.hazmat.primitives import serialization

from hsm import softhsm
from hsm.ca import CertificateAuthority, certify_audit_key, create_development_ca
from hsm.token import KeySpec, Token
from station.errors import UsageError
from station.pin import write_pin_file

# The layout and comments of a new station.toml. Values that come from the command line are
# set through tomlkit (`_station_toml`), which quotes and escapes them: formatting them into
# the text would let a `"` or `\` make a file that cannot be read back.
STATION_TOML = """\
# Station configuration written by `station init`. Relative paths are relative to this file.
# Every key is documented in fixtures/station.example.toml.

[station]
id = ""

[hsm]
module = "softhsm2"
softhsm_conf = "hsm/softhsm2.conf"
token_label = ""
pin_file = "hsm/user.pin"
issuing_key_label = "issuing-ca"
root_key_label = "root-ca"
audit_key_label = "audit"

[ca]
setup = "development"
chain = "ca/chain.pem"
key_type = ""
organization = ""

[profile]
common_name = "{model}-{device_id}"
serial_number = "{label}"
organization = ""
organizational_unit = "Production line"
validity_days = 7300
backdate_seconds = 300

[policy]
allowed_keys = ["ec-p256", "ec-p384"]

[line]
label_source = "manifest"
reprovision = "refuse"
lock = false
family = "cip"

[audit]
database = "audit.db"
public_key = "ca/audit-public.pem"
certificate = "ca/audit.pem"
checkpoint_every = 1000
"""

# A station id names the station in the audit and in its issuing CA's name: letters, digits
# and . _ - only, so it is safe in file names, subjects and logs.
STATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
# X.509 upper bound for commonName and organizationName (RFC 5280, ub-common-name).
NAME_MAX = 64


def _station_toml(*, station_id: str, token_label: str, key_type: str, organization: str) -> str:
    doc = tomlkit.parse(STATION_TOML)
    doc["station"]["id"] = station_id
    doc["hsm"]["token_label"] = token_label
    doc["ca"]["key_type"] = key_type
    doc["ca"]["organization"] = organization
    doc["profile"]["organization"] = organization
    return tomlkit.dumps(doc)


def _ca_names(station_id: str, organization: str) -> dict[str, str]:
    return {"root": f"{organization} Development Root CA",
            "issuing": f"{organization} Device Issuing CA {station_id}"}


def check_init_input(station_id: str, organization: str) -> None:
    """Refuse (UsageError, exit code 2) what would make an unusable station or CA name."""
    if not STATION_ID.fullmatch(station_id):
        raise UsageError(f"--station-id {station_id!r}: use 1-32 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit")
    if not organization.strip() or any(not ch.isprintable() for ch in organization):
        raise UsageError(f"--organization {organization!r}: must be printable text, not empty")
    if len(organization) > NAME_MAX:
        raise UsageError(f"--organization is {len(organization)} characters; an X.509 organization name "
                         f"holds at most {NAME_MAX}")
    for role, name in _ca_names(station_id, organization).items():
        if len(name) > NAME_MAX:
            raise UsageError(f"--organization is too long: the {role} CA's name {name!r} would be {len(name)} "
                             f"characters, X.509 allows {NAME_MAX} (shorten --organization by "
                             f"{len(name) - NAME_MAX})")


_MANAGED = ("station.toml", "hsm", "ca", "audit.db", "audit.db-wal", "audit.db-shm")


def init_station(workdir: Path, *, force: bool = False, station_id: str = "station-1",
                 organization: str = "Example Devices Ltd", key_type: str = "ec-p256",
                 warn=print) -> Path:
    """Create a development station in `workdir`; returns the path of its station.toml.

    Raises: UsageError for a bad station id or organization (before anything is touched), or
    when `workdir` already holds a station and force is False."""
    check_init_input(station_id, organization)
    workdir = Path(workdir).resolve()
    existing = [name for name in _MANAGED if (workdir / name).exists()]
    if existing:
        if not force:
            raise UsageError(f"{workdir} already holds a station ({', '.join(existing)}); refusing to replace its CA. "
                             f"Use another --workdir, or --force to move the old station aside")
        backup = workdir / f"replaced-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}"
        backup.mkdir(parents=True)
        for name in existing:
            shutil.move(str(workdir / name), str(backup / name))
        if (backup / "hsm" / "softhsm2.conf").exists():
            # The SoftHSM2 configuration names its token directory by absolute path: point the
            # moved copy at the moved tokens, so the old station can be opened from the backup.
            softhsm.write_config(backup / "hsm" / "softhsm2.conf", backup / "hsm" / "tokens")
        warn(f"WARNING: --force: the previous station (its token with the CA keys, its CA chain and audit "
             f"database) was moved to {backup}. Devices certified by the old CA will not chain to the new one.")

    try:
        return _create(workdir, station_id=station_id, organization=organization, key_type=key_type)
    except BaseException:
        # Half a station is no station: remove what this call created (nothing was there
        # before, see above), so the next `station init` starts clean instead of refusing.
        for name in _MANAGED:
            path = workdir / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
        raise


def _create(workdir: Path, *, station_id: str, organization: str, key_type: str) -> Path:
    hsm_dir, ca_dir = workdir / "hsm", workdir / "ca"
    ca_dir.mkdir(parents=True, exist_ok=True)
    hsm_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf = hsm_dir / "softhsm2.conf"
    softhsm.write_config(conf, hsm_dir / "tokens")
    user_pin, so_pin = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    write_pin_file(hsm_dir / "user.pin", user_pin)
    write_pin_file(hsm_dir / "so.pin", so_pin)
    token_label = "station-ca"
    softhsm.init_token(conf, token_label, so_pin, user_pin)

    spec = KeySpec.parse(key_type)
    names = _ca_names(station_id, organization)
    with Token(softhsm.find_module(), token_label, user_pin, softhsm_conf=conf) as token:
        root, issuing = create_development_ca(
            token, root_label="root-ca", issuing_label="issuing-ca", key_spec=spec, organization=organization,
            country=None, root_cn=names["root"], issuing_cn=names["issuing"])
        audit_public = token.generate_key("audit", KeySpec.parse("ec-p256"))
        ca = CertificateAuthority(token=token, issuing_label="issuing-ca", chain=[issuing, root])
        audit_cert = certify_audit_key(ca, audit_public, station_id=station_id, organization=organization)
    (ca_dir / "chain.pem").write_bytes(ca.chain_pem())
    (ca_dir / "audit.pem").write_bytes(audit_cert.public_bytes(serialization.Encoding.PEM) + ca.chain_pem())
    (ca_dir / "audit-public.pem").write_bytes(audit_public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    config_path = workdir / "station.toml"
    config_path.write_text(_station_toml(station_id=station_id, token_label=token_label, key_type=key_type,
                                         organization=organization))
    return config_path
