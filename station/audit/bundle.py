"""The QA bundle: one zip file that proves a selection of the audit offline (docs/audit.md,
"The QA bundle").

Members: the selected events with every event that links them to a signed checkpoint, the
checkpoints, the certificates the selection issued, the CA chain, the audit certificate, the
station record, a summary for people, and MANIFEST.json (the SHA-256 of every member) with
MANIFEST.sig, an ECDSA-SHA256 signature by the audit key (the HSM key that signs checkpoints).
Written as a stream: events and certificates go from a cursor into the zip one at a time.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from station.audit import checkpoint as cp
from station.audit.chain import utc_timestamp
from station.atomic_file import atomic_output
from station.audit.export_selection import EVENT_COLUMNS, Selection, reading, rows
from station.errors import ConfigError, StationError

BUNDLE_FORMAT = "station-audit-bundle/1"
MANIFEST = "MANIFEST.json"
SIGNATURE = "MANIFEST.sig"
EVENTS = "events.jsonl"
CHECKPOINTS = "checkpoints.jsonl"
CA_CHAIN = "ca-chain.pem"
AUDIT_CERTIFICATE = "audit-certificate.pem"
STATION = "station.json"
SUMMARY = "SUMMARY.txt"
CERTIFICATES = "certificates/"


class NothingSelected(StationError):
    """No event matches the selection (exit code 1)."""


class NotCovered(StationError):
    """No signed checkpoint covers the last selected event yet: write one, then export."""


@dataclass
class BundleWritten:
    events: int
    selected: int
    checkpoints: int
    certificates: int
    manifest_sha256: str


def certificate_member(serial_hex: str) -> str:
    return f"{CERTIFICATES}{serial_hex}.pem"


class _Members:
    """The zip being written, and the SHA-256 of everything put in it."""

    def __init__(self, zf: zipfile.ZipFile):
        self.zf, self.digests = zf, {}

    def add(self, name: str, data: bytes) -> None:
        self.zf.writestr(name, data)
        self.digests[name] = hashlib.sha256(data).hexdigest()

    def stream(self, name: str, chunks) -> None:
        digest = hashlib.sha256()
        with self.zf.open(name, "w") as member:
            for chunk in chunks:
                member.write(chunk)
                digest.update(chunk)
        self.digests[name] = digest.hexdigest()


def event_range(conn, selection: Selection) -> tuple[int, int, int, dict]:
    """(first selected event, last event of the bundle, selected count, covering checkpoint).

    The bundle runs from the first selected event to the `checkpoint-written` record of the
    first checkpoint at or after the last selected one: every event in between is needed to
    recompute the links, since an event's hash covers its whole content."""
    condition, params = selection.where()
    first, last, count = conn.execute(f"SELECT MIN(id), MAX(id), COUNT(*) FROM events WHERE {condition}",
                                      params).fetchone()
    if not count:
        raise NothingSelected(f"no audit event matches {json.dumps(selection.describe())}")
    cover = next(rows(conn, "SELECT * FROM checkpoints WHERE last_event_id >= ? ORDER BY id LIMIT 1", (last,)),
                 None)
    if cover is None:
        raise NotCovered(f"no signed checkpoint covers event {last} yet; write one first "
                           "(`station audit export --format bundle` does)")
    return first, cover["last_event_id"] + 1, count, cover


def write_bundle(db_path: Path, selection: Selection, out_path: Path, *, signer: ec.EllipticCurvePrivateKey,
                 audit_certificate_pem: bytes, ca_chain_pem: bytes) -> BundleWritten:
    """Write the bundle for `selection` to `out_path`, its manifest signed by `signer` (the
    audit key; in production the HSM key, as for checkpoints).

    Raises: NothingSelected; StationError if no checkpoint covers the selection yet;
    AuditUnreadable; EnvironmentProblem (cannot write)."""
    condition, params = selection.where()
    with reading(db_path) as conn, atomic_output(out_path, "wb") as raw:
        first, last, count, _cover = event_range(conn, selection)
        kinds: Counter = Counter()
        with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            members = _Members(zf)
            members.stream(EVENTS, _event_lines(conn, condition, params, first, last, kinds))
            checkpoints = list(rows(conn, "SELECT * FROM checkpoints WHERE last_event_id BETWEEN ? AND ? "
                                          "ORDER BY id", (first, last - 1)))
            members.add(CHECKPOINTS, "".join(json.dumps(c, sort_keys=True) + "\n" for c in checkpoints).encode())
            issued = 0
            for event in rows(conn, f"SELECT data FROM events WHERE ({condition}) AND kind = 'certificate-issued' "
                                    "ORDER BY id", params):
                data = json.loads(event["data"])
                members.add(certificate_member(data["serial"]), data["cert_pem"].encode())
                issued += 1
            members.add(CA_CHAIN, ca_chain_pem)
            members.add(AUDIT_CERTIFICATE, audit_certificate_pem)
            station = _station_record(conn)
            members.add(STATION, json.dumps(station, indent=1, sort_keys=True).encode() + b"\n")
            members.add(SUMMARY, _summary(selection, station, first, last, count, checkpoints, issued,
                                          kinds).encode())
            manifest = json.dumps({
                "format": BUNDLE_FORMAT, "station_id": station["station_id"], "created_at": utc_timestamp(),
                "selection": selection.describe(), "events": {"first": first, "last": last, "selected": count},
                "checkpoints": [c["id"] for c in checkpoints], "audit_key_id": cp.key_id(signer.public_key()),
                # "SHA256  name", as sha256sum prints it: `grep -o` plus `sha256sum -c` check them.
                "members": [f"{digest}  {name}" for name, digest in sorted(members.digests.items())],
            }, indent=1, sort_keys=True).encode() + b"\n"
            zf.writestr(MANIFEST, manifest)
            zf.writestr(SIGNATURE, signer.sign(manifest, ec.ECDSA(hashes.SHA256())))
    return BundleWritten(events=last - first + 1, selected=count, checkpoints=len(checkpoints),
                         certificates=issued, manifest_sha256=hashlib.sha256(manifest).hexdigest())


def _event_lines(conn, condition: str, params, first: int, last: int, kinds: Counter):
    for event in rows(conn, f"SELECT {', '.join(EVENT_COLUMNS)}, ({condition}) AS selected FROM events "
                            "WHERE id BETWEEN ? AND ? ORDER BY id", (*params, first, last)):
        event["selected"] = bool(event["selected"])
        if event["selected"]:
            kinds[event["kind"]] += 1
        # `selected` is not a column: it is outside the event's hash, and covered by the manifest.
        yield (json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _station_record(conn) -> dict:
    station_id = conn.execute("SELECT value FROM meta WHERE key = 'station_id'").fetchone()[0]
    record = next(rows(conn, "SELECT * FROM stations WHERE station_id = ?", (station_id,)), {})
    if record.get("ca_fingerprints"):
        record["ca_fingerprints"] = json.loads(record["ca_fingerprints"])
    return {**record, "station_id": station_id}


def _summary(selection: Selection, station: dict, first: int, last: int, count: int, checkpoints: list,
             issued: int, kinds: Counter) -> str:
    chosen = ", ".join(f"{k} {v}" for k, v in selection.describe().items())
    lines = [
        f"Audit bundle of station {station['station_id']}",
        f"Selection: {chosen}",
        f"Software {station.get('software_version') or '?'}, configuration sha256 "
        f"{station.get('config_sha256') or '?'}",
        f"Events {first}..{last} ({count} selected; the others link the selection to its checkpoints)",
        f"Checkpoints: {', '.join(str(c['id']) for c in checkpoints)}",
        f"Devices passed: {kinds['device-passed']}, failed: {kinds['device-failed']}",
        f"Certificates issued: {issued}",
        "",
        "Check it offline: station audit verify THIS.zip --trust-anchor ROOT.pem",
        "or with openssl alone: docs/audit.md, \"Checking a bundle with openssl\".",
    ]
    return "\n".join(lines) + "\n"


def export_from_station(cfg, selection: Selection, out_path: Path) -> BundleWritten:
    """`station audit export --format bundle`: the bundle of `selection` from the station of
    `cfg`, its manifest signed with the audit key in the token; a checkpoint is written first if
    none covers the selection yet, and the export is logged (`audit-exported`).

    Raises: ConfigError (no audit certificate or audit key), HSM errors, and write_bundle's."""
    from hsm.signer import HsmEcPrivateKey
    from station.audit.database import AuditDB
    from station.boot import open_token

    if cfg.audit.certificate is None:
        raise ConfigError(f"{cfg.path}: [audit] certificate is not set: a bundle carries the audit certificate so "
                          "that QA can check it up to a root (run `station ca import`, or re-create the station)")
    try:
        audit_pem, chain_pem = cfg.audit.certificate.read_bytes(), cfg.ca.chain.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from None
    with open_token(cfg) as token:
        if not token.has_key(cfg.hsm.audit_key_label):
            raise ConfigError(f"no audit key {cfg.hsm.audit_key_label!r} on token {cfg.hsm.token_label!r}: the "
                              "bundle's manifest is signed with it")
        signer = HsmEcPrivateKey(token, cfg.hsm.audit_key_label)
        with AuditDB.open(cfg.audit.database, station_id=cfg.station_id,
                          checkpoint_every=cfg.audit.checkpoint_every,
                          busy_timeout=cfg.audit.busy_timeout_ms / 1000) as audit:
            try:
                with reading(cfg.audit.database) as conn:
                    event_range(conn, selection)
            except NotCovered:
                audit.set_checkpoint_signer(signer)
                audit.checkpoint()
            written = write_bundle(cfg.audit.database, selection, out_path, signer=signer,
                                   audit_certificate_pem=audit_pem, ca_chain_pem=chain_pem)
            audit.log_event("audit-exported", operator="cli", data={
                "format": "bundle", "selection": selection.describe(), "manifest_sha256": written.manifest_sha256})
    return written
