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
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from station.errors import ConfigError

SOFTHSM_MODULE = "softhsm2"  # the `hsm.module` value meaning "the installed SoftHSM2"
KEY_TYPES = ("ec-p256", "ec-p384", "ec-p521", "rsa")
# Longest validity accepted: 100 years. The CA's own notAfter caps every device certificate
# anyway; far larger values only overflow the date arithmetic at issuance.
MAX_VALIDITY_DAYS = 36500
# The profile's subject templates, in the order station/profile.py writes them, each with its
# RFC 5280 upper bound (ub-*) in characters; and the placeholders a template may use.
SUBJECT_TEMPLATES = {"country": 2, "state": 128, "organization": 64, "organizational_unit": 64,
                     "dn_qualifier": 64, "serial_number": 64, "common_name": 64}
TEMPLATE_FIELDS = ("device_id", "model", "label")


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
    """Days from issuance to notAfter (1..MAX_VALIDITY_DAYS; never beyond the issuing CA's notAfter)."""
    backdate_seconds: int = 300
    """notBefore is this far in the past, so a device whose clock lags a little accepts its certificate."""
    key_agreement: bool = False
    """Add keyAgreement to keyUsage for EC device keys (for ECDH-based TLS suites)."""


@dataclass(frozen=True)
class PolicyConfig:
    allowed_keys: tuple[str, ...] = ("ec-p256", "ec-p384")
    """Device key types accepted in CSRs: ec-p256, ec-p384, ec-p521, rsa (never ed25519: AWS IoT
    does not accept Ed25519 device certificates)."""
    rsa_min_bits: int = 2048
    """Smallest RSA modulus accepted when "rsa" is allowed (AWS IoT requires >= 2048)."""


@dataclass(frozen=True)
class AuditConfig:
    database: Path
    """The station's SQLite audit database."""
    public_key: Path | None = None
    """PEM of the audit checkpoint key's public half, for `station audit verify` (UNANCHORED)."""
    certificate: Path | None = None
    """PEM of the audit-signing certificate (the issuing CA certifies the audit key), then its
    issuing CA chain: what `station audit verify --trust-anchor ROOT.pem` validates."""
    checkpoint_every: int = 1000
    """Write a signed checkpoint every this many events (and at each batch close)."""
    busy_timeout_ms: int = 10000
    """How long a write waits for another process's lock on the database before it fails
    (and the line halts saying so): a shared or slow disk may need longer, tests shorter."""


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
    baud: int = 115200
    """Line speed of every port, bits per second (8N1); protocol timeouts add the line time."""
    fast_baud: int = 0
    """With a device announcing the compact extension (docs/protocol.md section 9): the highest
    rate to switch its line to, the fastest both sides run up to this; 0 keeps `baud`."""
    compact: bool = True
    """Use the compact extension with devices that announce it (docs/protocol.md section 9)."""
    chain_root: bool = False
    """Compact extension: also send self-signed (root) certificates of the chain; AWS IoT JITP
    needs only the issuing CA, so they are left out by default."""
    model: str | None = None
    """The product this line makes; `station run --model` overrides it."""
    ports: dict[str, str] = field(default_factory=dict)
    """Fixture slots and their ports, e.g. {S1 = "/dev/serial/by-path/...", S2 = "..."}; used by
    `station run` when no --port is given. USB devices found by udev use [discovery] instead."""
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
    discovery: DiscoveryConfig = field(default_factory=lambda: DiscoveryConfig())
    ui: UiConfig = field(default_factory=UiConfig)
    scan: ScanConfig = field(default_factory=ScanConfig)
    sha256: str = field(default="")
    """SHA-256 of station.toml as read: logged at start so QA can tell what ran."""

    @property
    def base_dir(self) -> Path:
        return self.path.parent


# -- [discovery]: which USB serial devices the station takes, and in which slot ----------------
# One block: the model, its defaults and its reader. station/discovery/ uses it for matching,
# for the slot map and for the udev rules it generates (so rules and config cannot drift).

_HEX = frozenset("0123456789abcdef")


def _usb_id(text: str) -> bool:
    """"vvvv:pppp" in lower-case hex, or "vvvv:*"."""
    vendor, sep, product = text.partition(":")
    return bool(sep) and len(vendor) == 4 and set(vendor) <= _HEX and (
        product == "*" or (len(product) == 4 and set(product) <= _HEX))


def _plain_name(text: str) -> bool:
    """Letters, digits, - and _, at most 32: safe in a udev rule, a /dev path and a group."""
    return 0 < len(text) <= 32 and text.isascii() and all(c.isalnum() or c in "-_" for c in text)


@dataclass(frozen=True)
class DiscoveryConfig:
    allow: tuple[str, ...] = ()
    """USB "vendor:product" ids (4 hex digits each, as lsusb prints them; product may be "*")
    of the devices the station may provision. Empty: no device is taken."""
    serial_patterns: tuple[str, ...] = ()
    """Optional shell-style patterns (fnmatch: * ? [..]) for the USB serial number; when given,
    an allowlisted device must match one of them, and a device without a serial is ignored."""
    slots: dict[str, str] = field(default_factory=dict)
    """Slot name -> physical USB port (udev's ID_PATH, e.g. "pci-0000:00:14.0-usb-0:1:1.0").
    A device on a port not listed here is ignored. `station slots learn` writes this table."""
    group: str = "dialout"
    """Group that owns the device nodes of allowlisted devices (udev rules; mode 0660)."""
    poll_interval: float = 1.0
    """Seconds between enumerations when no udev daemon runs (containers, minimal systems)."""

    def slot_for(self, id_path: str | None) -> str | None:
        for slot, path in self.slots.items():
            if path == id_path:
                return slot
        return None


def _read_discovery(path: Path, doc: dict) -> DiscoveryConfig:
    d = _Reader(path, "discovery", doc.get("discovery", {}))
    allow = d.get("allow", list, [], expected='a list of "vendor:product" USB ids')
    for item in allow:
        if not isinstance(item, str) or not _usb_id(item.lower()):
            d.fail("allow", '"vendor:product" USB ids of 4 hex digits each (product may be "*")', item)
    patterns = d.get("serial_patterns", list, [], expected="a list of serial-number patterns")
    for item in patterns:
        if not isinstance(item, str) or not item or '"' in item or "|" in item:
            # the udev rules carry the patterns too, where " ends the value and | separates
            d.fail("serial_patterns", 'non-empty pattern strings without " or |', item)
    slots = d.get("slots", dict, {}, expected='a table of slot = "ID_PATH"')
    # The one slot-name rule (--port and [line] ports use it too). Imported here: identifiers
    # imports the profile, which imports this module.
    from station.identifiers import SLOT

    for slot, port_path in slots.items():
        if SLOT.problem(slot):
            d.fail(f"slots.{slot}", SLOT.rule, slot)
        if not isinstance(port_path, str) or not port_path or '"' in port_path:
            d.fail(f"slots.{slot}", "a physical port path (udev ID_PATH string)", port_path)
    if len(set(slots.values())) != len(slots):
        d.fail("slots", "a different physical port for every slot", slots)
    group = d.text("group", "dialout")
    if not _plain_name(group):
        d.fail("group", "a Linux group name", group)
    interval = float(d.get("poll_interval", (int, float), 1.0, expected="a number of seconds"))
    if not 0.05 <= interval <= 60:
        d.fail("poll_interval", "a number of seconds from 0.05 to 60", interval)
    d.done()
    return DiscoveryConfig(allow=tuple(i.lower() for i in allow), serial_patterns=tuple(patterns),
                           slots=dict(slots), group=group, poll_interval=interval)


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

    def positive(self, key: str, default: int, *, maximum: int | None = None) -> int:
        value = self.get(key, int, default, expected="a positive integer")
        if value <= 0:
            self.fail(key, "a positive integer", value)
        if maximum is not None and value > maximum:
            self.fail(key, f"a positive integer up to {maximum}", value)
        return value

    def done(self) -> None:
        if self.table:
            unknown = ", ".join(sorted(self.table))
            raise ConfigError(f"{self.where('')}: unknown key(s) {unknown}")


def check_profile(profile: ProfileConfig, *, where: str) -> None:
    """Refuse templates with unknown placeholders or a fixed part over the attribute's limit,
    and a profile without a common name."""
    for name, limit in SUBJECT_TEMPLATES.items():
        template = getattr(profile, name)
        if template is None:
            continue
        if not template.strip():
            raise ConfigError(f"{where} {name}: is empty; remove the key or give it a value "
                              f"(an empty subject field makes AWS JITP fail)")
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ConfigError(f"{where} {name}: bad template {template!r} ({exc})") from None
        for _text, field_name, _spec, _conversion in parsed:
            if field_name is not None and field_name not in TEMPLATE_FIELDS:
                raise ConfigError(f"{where} {name}: unknown placeholder {{{field_name}}} in {template!r} "
                                  f"(expected {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)})")
        fixed = sum(len(text) for text, *_ in parsed)
        if fixed > limit:
            raise ConfigError(f"{where} {name}: {fixed} characters without its placeholders, over the "
                              f"limit of {limit} for this subject attribute")
    if profile.common_name is None:
        raise ConfigError(f"{where} common_name: required")
    if profile.country is not None and not re.fullmatch(r"[A-Z]{2}", profile.country):
        raise ConfigError(f"{where} country: expected a two-letter ISO 3166 code, got {profile.country!r}")


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
        validity_days=p.positive("validity_days", 7300, maximum=MAX_VALIDITY_DAYS),
        backdate_seconds=p.get("backdate_seconds", int, 300, expected="an integer number of seconds"),
        key_agreement=p.get("key_agreement", bool, False, expected="true or false"),
    )
    p.done()
    if not (0 <= profile.backdate_seconds <= 86400):
        raise ConfigError(f"{path}: [profile] backdate_seconds: expected 0..86400, got {profile.backdate_seconds}")
    check_profile(profile, where=f"{path}: [profile]")

    pol = _Reader(path, "policy", doc.get("policy", {}))
    allowed = pol.get("allowed_keys", list, ["ec-p256", "ec-p384"], expected="a list of key types")
    for item in allowed:
        if item == "ed25519":
            pol.fail("allowed_keys", "no ed25519 (AWS IoT does not accept Ed25519 device certificates)", item)
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
        certificate=a.path("certificate", None),
        checkpoint_every=a.positive("checkpoint_every", 1000),
        busy_timeout_ms=a.positive("busy_timeout_ms", 10000, maximum=600000),
    )
    a.done()

    ln = _Reader(path, "line", doc.get("line", {}))
    line = LineConfig(
        label_source=ln.text("label_source", "manifest", choices=("manifest", "scan", "device-id")),
        reprovision=ln.text("reprovision", "refuse", choices=("refuse", "supervisor")),
        lock=ln.get("lock", bool, False, expected="true or false"),
        family=ln.text("family", "cip"),
        timeout_scale=float(ln.get("timeout_scale", (int, float), 1.0, expected="a number")),
        baud=ln.positive("baud", 115200),
        fast_baud=ln.get("fast_baud", int, 0, expected="a baud rate, or 0 for off"),
        compact=ln.get("compact", bool, True, expected="true or false"),
        chain_root=ln.get("chain_root", bool, False, expected="true or false"),
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

    discovery = _read_discovery(path, doc)
    ui, scan = _read_operator_tables(path, doc)

    unknown = set(doc) - {"station", "hsm", "ca", "profile", "policy", "audit", "line", "discovery", "ui", "scan"}
    if unknown:
        raise ConfigError(f"{path}: unknown table(s) {', '.join(sorted(unknown))}")
    return StationConfig(path=path, station_id=station_id, hsm=hsm, ca=ca, profile=profile, policy=policy,
                         audit=audit, line=line, discovery=discovery, ui=ui, scan=scan,
                         sha256=hashlib.sha256(raw).hexdigest())

