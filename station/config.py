"""The station's configuration: one typed model read from station.toml.

Every field is documented where it is declared; fixtures/station.example.toml shows them all
with comments. Relative paths are relative to the directory of station.toml. (SoftHSM2's own
softhsm2.conf names its token directory by absolute path: after moving a work directory, fix
`directories.tokendir` there; a missing token directory is reported by name.) Every error names the file, the key and what was expected.
The PIN is not configuration: only *where* it comes from is (see station/pin.py).
"""
from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from station.errors import ConfigError

SOFTHSM_MODULE = "softhsm2"  # the `hsm.module` value meaning "the installed SoftHSM2"
KEY_TYPES = ("ec-p256", "ec-p384", "ec-p521", "rsa", "ed25519")


@dataclass(frozen=True)
class HsmConfig:
    module: str = SOFTHSM_MODULE
    """PKCS#11 module: "softhsm2" or the path of a vendor library (YubiHSM2, Luna, CloudHSM)."""
    softhsm_conf: Path | None = None
    """SoftHSM2 only: this station's private softhsm2.conf (never /etc/softhsm)."""
    token_label: str = "station-ca"
    """Label of the token holding the CA keys."""
    pin_env: str = "STATION_PIN"
    """Environment variable the user PIN is read from, if set."""
    pin_file: Path | None = None
    """A file holding the user PIN; must be mode 0600 (or stricter). Used when the variable is unset."""
    issuing_key_label: str = "issuing-ca"
    """Label (and CKA_ID) of the issuing CA key in the token."""
    root_key_label: str = "root-ca"
    """Development set-up only: label of the root key in the token."""
    audit_key_label: str = "audit"
    """Label of the key that signs audit checkpoints."""


@dataclass(frozen=True)
class CaConfig:
    chain: Path
    """PEM file: the issuing CA certificate first, then each parent up to the root."""
    key_type: str = "ec-p256"
    """CA key type created by `station init` / `station ca csr`: ec-p256, ec-p384 or rsa-3072."""
    organization: str = "Example Devices Ltd"
    """O of the CA certificates."""
    country: str | None = None
    """C of the CA certificates (two letters), optional."""
    setup: str = "development"
    """"development" (root and issuing CA both in the token) or "production" (offline root)."""


@dataclass(frozen=True)
class ProfileConfig:
    """The device certificate subject and validity. Templates may use {device_id}, {model},
    {label}; a template that renders empty refuses the device (AWS JITP would fail later)."""

    common_name: str = "{model}-{device_id}"
    serial_number: str | None = "{label}"
    organization: str | None = None
    organizational_unit: str | None = None
    country: str | None = None
    state: str | None = None
    dn_qualifier: str | None = None
    validity_days: int = 7300
    """Days from issuance to notAfter."""
    backdate_seconds: int = 300
    """notBefore is this far in the past, so a device whose clock lags a little accepts its certificate."""
    key_agreement: bool = False
    """Add keyAgreement to keyUsage for EC device keys (for ECDH-based TLS suites)."""


@dataclass(frozen=True)
class PolicyConfig:
    allowed_keys: tuple[str, ...] = ("ec-p256", "ec-p384")
    """Device key types accepted in CSRs: ec-p256, ec-p384, ec-p521, rsa, ed25519."""
    rsa_min_bits: int = 2048
    """Smallest RSA modulus accepted when "rsa" is allowed (AWS IoT requires >= 2048)."""


@dataclass(frozen=True)
class AuditConfig:
    database: Path
    """The station's SQLite audit database."""
    public_key: Path | None = None
    """PEM of the audit checkpoint key's public half, for `station audit verify`."""
    checkpoint_every: int = 1000
    """Write a signed checkpoint every this many events (and at each batch close)."""


@dataclass(frozen=True)
class LineConfig:
    """How the line runs: where labels come from, re-provisioning, locking, the device family."""

    label_source: str = "manifest"
    """"manifest" (the batch manifest maps device id -> label), "scan" (an operator scans each
    label; with a manifest it must agree) or "device-id" (label = device id; development only)."""
    reprovision: str = "refuse"
    """A device that already passed: "refuse", or "supervisor" (allowed with a recorded supervisor
    override; the old certificate is marked superseded)."""
    lock: bool = False
    """Send the irreversible LOCK after a device passed."""
    family: str = "cip"
    """Device family (driver) spoken on the line's ports."""
    timeout_scale: float = 1.0
    """Multiply every protocol timeout (slow boards, long cables)."""
    model: str | None = None
    """The product this line makes; `station run --model` overrides it."""
    ports: dict[str, str] = field(default_factory=dict)
    """Fixture slots and their ports, e.g. {S1 = "/dev/serial/by-path/...", S2 = "..."}; used by
    `station run` when no --port is given (until USB discovery assigns them)."""
    anchors: Path | None = None
    """PEM bundle of server trust anchors (e.g. Amazon Root CA 1) written and committed on every
    device with its certificate and chain; their fingerprints are recorded in the audit."""


# -- operator terminal: [ui] and [scan] (station/ui/, station/operator/; docs/ui.md) ------------

UI_LANGUAGES = ("en", "de")


@dataclass(frozen=True)
class UiConfig:
    """The operator terminal."""

    language: str = "en"
    """Language of every operator-facing text: "en" (default) or "de"."""
    manifests: Path | None = None
    """Folder of work-order manifests: scanning work order WO-7 opens (or resumes) batch WO-7
    with FOLDER/WO-7.csv as its manifest when that file exists. Default: none."""


@dataclass(frozen=True)
class ScanConfig:
    """How a scan is recognised (each a Python regular expression that must match the whole
    scan). A scan is tried against operator, supervisor, work_order, then label."""

    operator: str = r"OP-[A-Za-z0-9]+"
    """An operator badge: logs that operator in (recorded in the audit)."""
    supervisor: str = r"SV-[A-Za-z0-9]+"
    """A supervisor badge: approves the re-provisioning a slot is waiting for."""
    work_order: str = r"WO-[A-Za-z0-9]+"
    """A work-order code: opens (or resumes) the batch of that id."""
    label: str = r"[A-Za-z0-9][A-Za-z0-9._-]{2,63}"
    """A device label: bound to the slot waiting for one ([line] label_source = "scan")."""
    slot_prefix: str = ":"
    """Separator of a slot prefix: `S3:LABEL` or `S3:SV-ANNA` addresses slot S3 when several
    slots wait at once."""
    serial_port: str | None = None
    """A barcode scanner in serial (USB CDC) mode: its port (path or pyserial URL). Its scans
    feed the same router as the keyboard. Default: none (the scanner types like a keyboard)."""
    serial_baud: int = 9600
    """Line speed of the serial scanner."""


def _read_operator_tables(path: Path, doc: dict) -> tuple[UiConfig, ScanConfig]:
    """[ui] and [scan]: the operator terminal's language, manifests and scan patterns."""
    u = _Reader(path, "ui", doc.get("ui", {}))
    ui = UiConfig(language=u.text("language", "en", choices=UI_LANGUAGES), manifests=u.path("manifests", None))
    u.done()
    s = _Reader(path, "scan", doc.get("scan", {}))
    defaults = ScanConfig()
    patterns = {key: s.text(key, getattr(defaults, key)) for key in ("operator", "supervisor", "work_order", "label")}
    for key, pattern in patterns.items():
        try:
            re.compile(pattern)
        except re.error as exc:
            s.fail(key, f"a regular expression ({exc})", pattern)
    prefix = s.text("slot_prefix", ":")
    if len(prefix) != 1:
        s.fail("slot_prefix", "one character", prefix)
    scan = ScanConfig(**patterns, slot_prefix=prefix, serial_port=s.text("serial_port", None),
                      serial_baud=s.positive("serial_baud", 9600))
    s.done()
    return ui, scan


@dataclass(frozen=True)
class StationConfig:
    path: Path
    station_id: str
    hsm: HsmConfig
    ca: CaConfig
    profile: ProfileConfig
    policy: PolicyConfig
    audit: AuditConfig
    line: LineConfig = field(default_factory=LineConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    scan: ScanConfig = field(default_factory=ScanConfig)
    sha256: str = field(default="")
    """SHA-256 of station.toml as read: logged at start so QA can tell what ran."""

    @property
    def base_dir(self) -> Path:
        return self.path.parent


class _Reader:
    """Reads one TOML table, checking types and naming file and key in every error."""

    def __init__(self, path: Path, section: str, table: Any):
        self.file, self.section = path, section
        if not isinstance(table, dict):
            self.fail("", "a table")
        self.table = dict(table)

    def where(self, key: str) -> str:
        return f"{self.file}: [{self.section}]" + (f" {key}" if key else "")

    def fail(self, key: str, expected: str, got: Any = None):
        detail = f", got {got!r}" if got is not None else ""
        raise ConfigError(f"{self.where(key)}: expected {expected}{detail}")

    def get(self, key: str, kind: type, default: Any = ..., *, expected: str | None = None):
        if key not in self.table:
            if default is ...:
                raise ConfigError(f"{self.where(key)}: missing (expected {expected or kind.__name__})")
            return default
        value = self.table.pop(key)
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            self.fail(key, expected or kind.__name__, value)
        return value

    def text(self, key: str, default: Any = ..., *, choices: tuple[str, ...] | None = None) -> str | None:
        value = self.get(key, str, default, expected="a string")
        if value is not None and choices and value not in choices:
            self.fail(key, f"one of {', '.join(choices)}", value)
        return value

    def path(self, key: str, default: Any = ...) -> Path | None:
        value = self.get(key, str, default, expected="a path (string)")
        if value is None:
            return None
        p = Path(value)
        return p if p.is_absolute() else (self.file.parent / p)

    def positive(self, key: str, default: int) -> int:
        value = self.get(key, int, default, expected="a positive integer")
        if value <= 0:
            self.fail(key, "a positive integer", value)
        return value

    def done(self) -> None:
        if self.table:
            unknown = ", ".join(sorted(self.table))
            raise ConfigError(f"{self.where('')}: unknown key(s) {unknown}")


def load_config(path: Path | str) -> StationConfig:
    """Read and validate station.toml. Raises ConfigError naming the file and key."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found (run `station init --workdir DIR`, "
                          f"or pass --config / set STATION_CONFIG)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration ({exc.strerror})") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    path = path.resolve()

    top = _Reader(path, "station", doc.get("station", {}))
    station_id = top.get("id", str, expected="a station id string")
    if not station_id.strip():
        top.fail("id", "a non-empty station id")
    top.done()

    h = _Reader(path, "hsm", doc.get("hsm", {}))
    hsm = HsmConfig(
        module=h.text("module", SOFTHSM_MODULE),
        softhsm_conf=h.path("softhsm_conf", None),
        token_label=h.text("token_label", "station-ca"),
        pin_env=h.text("pin_env", "STATION_PIN"),
        pin_file=h.path("pin_file", None),
        issuing_key_label=h.text("issuing_key_label", "issuing-ca"),
        root_key_label=h.text("root_key_label", "root-ca"),
        audit_key_label=h.text("audit_key_label", "audit"),
    )
    if "pin" in h.table:
        raise ConfigError(f"{h.where('pin')}: a PIN is never written in the configuration; "
                          f"use pin_file (mode 0600) or the {hsm.pin_env} variable")
    if hsm.module == SOFTHSM_MODULE and hsm.softhsm_conf is None:
        h.fail("softhsm_conf", "the path of this station's softhsm2.conf (module is softhsm2)")
    h.done()

    c = _Reader(path, "ca", doc.get("ca", {}))
    ca = CaConfig(
        chain=c.path("chain"),
        key_type=c.text("key_type", "ec-p256", choices=("ec-p256", "ec-p384", "rsa-3072")),
        organization=c.text("organization", "Example Devices Ltd"),
        country=c.text("country", None),
        setup=c.text("setup", "development", choices=("development", "production")),
    )
    c.done()

    p = _Reader(path, "profile", doc.get("profile", {}))
    profile = ProfileConfig(
        common_name=p.text("common_name", "{model}-{device_id}"),
        serial_number=p.text("serial_number", "{label}"),
        organization=p.text("organization", None),
        organizational_unit=p.text("organizational_unit", None),
        country=p.text("country", None),
        state=p.text("state", None),
        dn_qualifier=p.text("dn_qualifier", None),
        validity_days=p.positive("validity_days", 7300),
        backdate_seconds=p.get("backdate_seconds", int, 300, expected="an integer number of seconds"),
        key_agreement=p.get("key_agreement", bool, False, expected="true or false"),
    )
    p.done()
    if not (0 <= profile.backdate_seconds <= 86400):
        raise ConfigError(f"{path}: [profile] backdate_seconds: expected 0..86400, got {profile.backdate_seconds}")
    from station.profile import check_profile  # the profile module owns the template rules

    check_profile(profile, where=f"{path}: [profile]")

    pol = _Reader(path, "policy", doc.get("policy", {}))
    allowed = pol.get("allowed_keys", list, ["ec-p256", "ec-p384"], expected="a list of key types")
    for item in allowed:
        if item not in KEY_TYPES:
            pol.fail("allowed_keys", f"key types from {', '.join(KEY_TYPES)}", item)
    policy = PolicyConfig(allowed_keys=tuple(allowed), rsa_min_bits=pol.positive("rsa_min_bits", 2048))
    if policy.rsa_min_bits < 2048:
        pol.fail("rsa_min_bits", "at least 2048 (AWS IoT refuses smaller RSA keys)", policy.rsa_min_bits)
    pol.done()

    a = _Reader(path, "audit", doc.get("audit", {}))
    audit = AuditConfig(
        database=a.path("database"),
        public_key=a.path("public_key", None),
        checkpoint_every=a.positive("checkpoint_every", 1000),
    )
    a.done()

    ln = _Reader(path, "line", doc.get("line", {}))
    line = LineConfig(
        label_source=ln.text("label_source", "manifest", choices=("manifest", "scan", "device-id")),
        reprovision=ln.text("reprovision", "refuse", choices=("refuse", "supervisor")),
        lock=ln.get("lock", bool, False, expected="true or false"),
        family=ln.text("family", "cip"),
        timeout_scale=float(ln.get("timeout_scale", (int, float), 1.0, expected="a number")),
        model=ln.text("model", None),
        ports=ln.get("ports", dict, {}, expected="a table of slot = \"port\""),
        anchors=ln.path("anchors", None),
    )
    for slot, port in line.ports.items():
        if not isinstance(port, str) or not port or not slot:
            ln.fail(f"ports.{slot}", "a port path or pyserial URL (string)", port)
    if not (0.1 <= line.timeout_scale <= 20):
        ln.fail("timeout_scale", "a number from 0.1 to 20", line.timeout_scale)
    ln.done()

    ui, scan = _read_operator_tables(path, doc)

    unknown = set(doc) - {"station", "hsm", "ca", "profile", "policy", "audit", "line", "ui", "scan"}
    if unknown:
        raise ConfigError(f"{path}: unknown table(s) {', '.join(sorted(unknown))}")
    return StationConfig(path=path, station_id=station_id, hsm=hsm, ca=ca, profile=profile, policy=policy,
                         audit=audit, line=line, ui=ui, scan=scan, sha256=hashlib.sha256(raw).hexdigest())

