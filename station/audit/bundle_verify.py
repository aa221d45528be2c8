"""Offline check of a QA bundle (docs/audit.md, "The QA bundle"): no HSM, no token, no
database; only the bundle and a root certificate the verifier brings.

Order: the audit certificate up to the trust anchor; the manifest signature with its key;
every member's SHA-256 and the member list; the event chain; the checkpoints (signatures,
hashes, records); every certificate against the CA chain up to the anchor and against the
events that issued it. The first problem raises AuditTampered naming the member.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from hsm.ca import validate_to_anchor
from hsm.errors import CAError
from station.audit import bundle as b
from station.audit import checkpoint as cp
from station.audit.anchor import AnchoredKey, anchored_audit_key, check_station
from station.audit.chain import event_hash
from station.audit.errors import AuditTampered
from station.errors import UsageError


@dataclass
class BundleReport:
    path: Path
    anchored: AnchoredKey
    events: int = 0
    selected: int = 0
    checkpoints: int = 0
    certificates: int = 0
    members: tuple = ()

    def summary(self) -> str:
        return (f"{self.path}: bundle intact: {len(self.members)} members match the manifest signed by "
                f"{self.anchored.describe()}; {self.events} events ({self.selected} selected) chain to "
                f"{self.checkpoints} signed checkpoint(s); {self.certificates} certificates chain to the trust "
                "anchor and are accounted for by their events")


REQUIRED = (b.EVENTS, b.CHECKPOINTS, b.CA_CHAIN, b.AUDIT_CERTIFICATE, b.STATION, b.SUMMARY)


def _tampered(member: str, what: str) -> AuditTampered:
    return AuditTampered(f"bundle TAMPERED: member {member}: {what}")


class _Bundle:
    def __init__(self, path: Path):
        try:
            self.zf = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise UsageError(f"no bundle at {path}") from None
        except (zipfile.BadZipFile, OSError) as exc:
            raise AuditTampered(f"bundle TAMPERED: {path} is not a readable zip file ({exc})") from None
        names = self.zf.namelist()
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise _tampered(duplicate, "appears twice in the zip")
        self.names = set(names)

    def read(self, name: str) -> bytes:
        if name not in self.names:
            raise _tampered(name, "missing (removed?)")
        try:
            return self.zf.read(name)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise _tampered(name, f"damaged ({exc})") from None


def verify_bundle(path: Path, anchor: x509.Certificate) -> BundleReport:
    """Check the bundle at `path` against the trust anchor. Returns a BundleReport.
    Raises: AuditTampered (exit 1) naming the first member that fails; UsageError if absent."""
    path = Path(path)
    bundle = _Bundle(path)
    try:
        audit_chain = x509.load_pem_x509_certificates(bundle.read(b.AUDIT_CERTIFICATE))
    except ValueError:
        raise _tampered(b.AUDIT_CERTIFICATE, "is not a PEM certificate") from None
    try:
        anchored = anchored_audit_key(audit_chain, anchor)
    except AuditTampered as exc:
        raise _tampered(b.AUDIT_CERTIFICATE, str(exc)) from None
    manifest_bytes = bundle.read(b.MANIFEST)
    try:
        anchored.public_key.verify(bundle.read(b.SIGNATURE), manifest_bytes, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise _tampered(b.MANIFEST, f"signature ({b.SIGNATURE}) does not verify with the audit key") from None
    manifest = json.loads(manifest_bytes)
    if manifest.get("format") != b.BUNDLE_FORMAT:
        raise _tampered(b.MANIFEST, f"format is {manifest.get('format')!r}, not {b.BUNDLE_FORMAT!r}")
    listed = dict(reversed(line.split("  ", 1)) for line in manifest["members"])
    report = BundleReport(path=path, anchored=anchored, members=tuple(sorted(listed)))
    for name in sorted(bundle.names - set(listed) - {b.MANIFEST, b.SIGNATURE}):
        raise _tampered(name, "is not in the signed manifest (added?)")
    contents = {}
    for name, digest in sorted(listed.items()):
        if name == b.EVENTS:
            continue  # streamed below: it is the one large member
        data = bundle.read(name)
        if hashlib.sha256(data).hexdigest() != digest:
            raise _tampered(name, "SHA-256 does not match the signed manifest (modified?)")
        if not name.startswith(b.CERTIFICATES):
            contents[name] = data
    for name in REQUIRED:
        if name not in listed:
            raise _tampered(name, f"not listed in {b.MANIFEST}")
        if name not in bundle.names:
            raise _tampered(name, "missing (removed?)")
    checkpoints = [json.loads(line) for line in contents[b.CHECKPOINTS].decode("utf-8").splitlines()]
    wanted = {c["last_event_id"] for c in checkpoints} | {c["last_event_id"] + 1 for c in checkpoints}
    issued, covered = _check_events(bundle, listed[b.EVENTS], manifest, wanted, report)
    _check_checkpoints(checkpoints, covered, manifest, anchored, report)
    _check_certificates(bundle, listed, issued, contents[b.CA_CHAIN], anchor, report)
    return report


def _check_events(bundle: _Bundle, digest: str, manifest: dict, wanted: set, report: BundleReport):
    """Stream events.jsonl: its SHA-256 against the manifest and the chain. Returns ({serial:
    (event id, SHA-256 of the PEM)} of the selection's issued certificates, {event id: (hash,
    kind, data)} of the events the checkpoints name)."""
    first, last = manifest["events"]["first"], manifest["events"]["last"]
    issued, covered = {}, {}
    expected_id, prev_hash = first, None
    hasher = hashlib.sha256()
    try:
        with bundle.zf.open(b.EVENTS) as member:
            for raw in member:
                hasher.update(raw)
                row = json.loads(raw)
                eid = row["id"]
                if eid != expected_id:
                    raise _tampered(b.EVENTS, f"event {expected_id} missing: the chain jumps to {eid} (removed?)")
                if event_hash(row) != row["hash"]:
                    raise _tampered(b.EVENTS, f"event {eid}: hash does not match its content (edited?)")
                if prev_hash is not None and row["prev_hash"] != prev_hash:
                    raise _tampered(b.EVENTS, f"event {eid}: prev_hash is not the hash of event {eid - 1} "
                                    "(replaced?)")
                if row["station_id"] != manifest["station_id"]:
                    raise _tampered(b.EVENTS, f"event {eid}: recorded by station {row['station_id']!r}, the "
                                    f"bundle is for {manifest['station_id']!r}")
                if eid in wanted or (row["selected"] and row["kind"] == "certificate-issued"):
                    data = json.loads(row["data"])
                    if eid in wanted:
                        covered[eid] = (row["hash"], row["kind"], data)
                    if row["selected"] and row["kind"] == "certificate-issued":
                        issued[data["serial"]] = (eid, hashlib.sha256(data["cert_pem"].encode()).hexdigest())
                report.selected += bool(row["selected"])
                expected_id, prev_hash = eid + 1, row["hash"]
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise _tampered(b.EVENTS, f"damaged ({exc})") from None
    except (ValueError, KeyError, TypeError) as exc:
        if hasher.hexdigest() != digest:  # the bytes were changed: say that, not what broke
            raise _tampered(b.EVENTS, "SHA-256 does not match the signed manifest (modified?)") from None
        raise _tampered(b.EVENTS, f"unreadable event line ({type(exc).__name__}: {exc})") from None
    if hasher.hexdigest() != digest:
        raise _tampered(b.EVENTS, "SHA-256 does not match the signed manifest (modified?)")
    if expected_id != last + 1:
        raise _tampered(b.EVENTS, f"ends at event {expected_id - 1}, the manifest says {last} (truncated?)")
    if report.selected != manifest["events"]["selected"]:
        raise _tampered(b.EVENTS, f"{report.selected} events selected, the manifest says "
                        f"{manifest['events']['selected']}")
    report.events = last - first + 1
    return issued, covered


def _check_checkpoints(rows: list, events: dict, manifest: dict, anchored: AnchoredKey,
                       report: BundleReport) -> None:
    if not rows or rows[-1]["last_event_id"] + 1 != manifest["events"]["last"]:
        raise _tampered(b.CHECKPOINTS, "no checkpoint covers the last event of the bundle (removed?)")
    key_id = cp.key_id(anchored.public_key)
    for row in rows:
        cid, last = row["id"], row["last_event_id"]
        if not cp.signature_valid(anchored.public_key, row) or row["key_id"] != key_id:
            raise _tampered(b.CHECKPOINTS, f"checkpoint {cid}: signature does not verify with the audit key")
        if last not in events or events[last][0] != row["last_event_hash"]:
            raise _tampered(b.CHECKPOINTS, f"checkpoint {cid}: event {last} does not have the hash it signs")
        _hash, kind, record = events.get(last + 1, (None, None, {}))
        if kind != "checkpoint-written" or record.get("checkpoint_id") != cid or record.get(
                "signature_sha256") != hashlib.sha256(bytes.fromhex(row["signature"])).hexdigest():
            raise _tampered(b.CHECKPOINTS, f"checkpoint {cid}: event {last + 1} is not its record")
        report.checkpoints += 1
    try:
        # The audit certificate names one station; the log and the manifest must be that one's.
        check_station(anchored, {row["station_id"] for row in rows} | {manifest["station_id"]})
    except AuditTampered as exc:
        raise _tampered(b.CHECKPOINTS, str(exc)) from None


def _check_certificates(bundle: _Bundle, listed: dict, issued: dict, chain_pem: bytes, anchor: x509.Certificate,
                        report: BundleReport) -> None:
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        raise _tampered(b.CA_CHAIN, "is not a PEM certificate bundle") from None
    present = {name for name in listed if name.startswith(b.CERTIFICATES)}
    for serial, (eid, _pem) in sorted(issued.items()):
        if b.certificate_member(serial) not in present:
            raise _tampered(b.certificate_member(serial), f"missing: event {eid} issued certificate 0x{serial}")
    for name in sorted(present):
        data = bundle.read(name)
        serial = name[len(b.CERTIFICATES):].removesuffix(".pem")
        if serial not in issued or issued[serial][1] != hashlib.sha256(data).hexdigest():
            raise _tampered(name, "is not accounted for by a certificate-issued event of the selection (swapped?)")
        try:
            cert = x509.load_pem_x509_certificate(data)
            if format(cert.serial_number, "x") != serial:
                raise _tampered(name, f"holds certificate 0x{cert.serial_number:x}, not 0x{serial}")
            validate_to_anchor(cert, chain, anchor)
        except ValueError:
            raise _tampered(name, "is not a PEM certificate") from None
        except CAError as exc:
            raise _tampered(name, f"does not chain to the trust anchor ({exc})") from None
        report.certificates += 1
