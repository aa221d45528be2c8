"""Offline verification of an audit database (docs/audit.md, "What verify checks").

Opens the file read-only and never writes. Checks, in order: the file itself, the hash chain,
the checkpoints (coverage, then signatures when the audit public key is given), and the
certificates table replayed from the log. Stops at the first problem and names its row.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from json.encoder import encode_basestring
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from station.audit import checkpoint as cp
from station.audit.chain import (CANONICAL_ORDER, GENESIS_HASH, NEEDS_ESCAPE, PLAIN_ROW,
                                 event_hash)
from station.audit.errors import AuditUnreadable
from station.audit.statuses import transition_allowed

REQUIRED_TABLES = {"meta", "events", "checkpoints", "certificates"}
# The hashed columns in canonical order, then the stored hash: the hot loop's one query.
_EVENTS = f"SELECT {', '.join(CANONICAL_ORDER)}, hash FROM events ORDER BY id"
# Certificate columns the log fully determines; the others are bookkeeping.
REPLAYED_COLUMNS = ("spki_sha256", "subject", "device_id", "batch_id", "slot", "operator",
                    "status", "status_reason", "cert_pem", "fingerprint_sha256", "not_before",
                    "not_after")


@dataclass
class VerifyReport:
    """Result of verify(). When ok is False, first_bad_table/first_bad_row name the first
    problem found (an event or checkpoint id, or a certificate serial in hex) and reason says
    what is wrong, e.g. "event 57: hash does not match its content (edited?)"."""

    ok: bool
    events_checked: int = 0
    checkpoints_checked: int = 0
    certificates_checked: int = 0
    signatures_checked: bool = False
    head_event_id: int = 0
    head_hash: str = GENESIS_HASH
    first_bad_table: str | None = None
    first_bad_row: int | str | None = None
    reason: str | None = None
    checkpoint_stations: set = field(default_factory=set)
    """The station ids the checkpoints were signed for (a signed field)."""
    anchored_by: str | None = None
    """What vouches for the audit key (station/audit/anchor.py), set by the caller that
    validated it; None means the key was taken as given: UNANCHORED."""

    def summary(self) -> str:
        """One line for an operator. Never says "signatures verified" for a key no trust
        anchor vouches for: such a key proves nothing against whoever could replace it."""
        if not self.ok:
            return f"audit TAMPERED: {self.reason}"
        if not self.signatures_checked:
            signatures = "signatures NOT checked: no audit public key given"
        elif self.anchored_by:
            signatures = f"signatures verified against {self.anchored_by}"
        else:
            signatures = ("signatures checked against an UNANCHORED key: it proves nothing against "
                          "whoever could replace that key; give --trust-anchor ROOT.pem")
        return (f"audit intact: {self.events_checked} events, {self.checkpoints_checked} "
                f"checkpoints ({signatures}), {self.certificates_checked} certificates; "
                f"head event {self.head_event_id} {self.head_hash}")


class _Bad(Exception):
    def __init__(self, table: str | None, row, reason: str):
        super().__init__(reason)
        self.table, self.row, self.reason = table, row, reason


def verify(path: Path, audit_public_key: ec.EllipticCurvePublicKey | None = None) -> VerifyReport:
    """Verify the audit database at `path` without modifying it.

    Returns: a VerifyReport (ok True, or the first bad row and the reason). Without
    `audit_public_key` the checkpoint signatures are not checked (signatures_checked False).
    Raises: AuditUnreadable if the file is missing, cannot be opened, or is not an audit
    database; TypeError if audit_public_key is not an EC public key.
    """
    path = Path(path)
    if audit_public_key is not None and not isinstance(audit_public_key,
                                                       ec.EllipticCurvePublicKey):
        raise TypeError("the audit public key must be an EC public key")
    if not path.is_file():
        raise AuditUnreadable(f"no audit database at {path}")
    conn = open_read_only(path)
    report = VerifyReport(ok=True, signatures_checked=audit_public_key is not None)
    try:
        _check(conn, path, audit_public_key, report)
    except _Bad as bad:
        report.ok = False
        report.first_bad_table, report.first_bad_row, report.reason = bad.table, bad.row, bad.reason
    except sqlite3.Error as exc:
        raise AuditUnreadable(f"cannot read audit database {path}: {exc}") from exc
    finally:
        conn.close()
    return report


def open_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to the audit database at `path` (also what the exports read
    through). Raises AuditUnreadable."""
    uri = path.resolve().as_uri()
    conn = None
    try:
        conn = sqlite3.connect(uri + "?mode=ro", uri=True)
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        if getattr(exc, "sqlite_errorname", "") != "SQLITE_CANTOPEN":
            raise AuditUnreadable(f"{path} is not a readable audit database ({exc})") from exc
    # A WAL database in a read-only directory (QA's copy on read-only media): a reader needs
    # to create the -shm index, which it cannot. With no WAL content to miss, the file can be
    # read as immutable; with WAL content, reading it that way would verify a stale log.
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise AuditUnreadable(f"cannot open {path} read-only: its {wal.name} holds recent "
                              "events and the directory is not writable; copy both files "
                              "to a writable directory")
    try:
        return sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as exc:
        raise AuditUnreadable(f"cannot open audit database {path}: {exc}") from exc


def _rows(conn: sqlite3.Connection, sql: str):
    cur = conn.execute(sql)
    names = [d[0] for d in cur.description]
    for values in cur:
        yield dict(zip(names, values))


def _check(conn, path: Path, public_key, report: VerifyReport) -> None:
    # A damaged schema page raises here: verify() says the file cannot be read.
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not REQUIRED_TABLES <= tables:
        raise AuditUnreadable(f"{path} is not an audit database (missing tables: "
                              f"{', '.join(sorted(REQUIRED_TABLES - tables))})")
    damage = conn.execute("PRAGMA quick_check").fetchone()[0]
    if damage != "ok":
        # A damaged file cannot be judged intact or tampered: exit 3, like an unreadable one.
        # quick_check lists every bad page; the first line that names one says enough.
        first = next((line for line in damage.splitlines() if not line.startswith("***")), damage)
        raise AuditUnreadable(f"audit database {path} is damaged ({first.strip()}); it cannot be "
                              "verified: verify a backup copy")
    checkpoints = list(_rows(conn, "SELECT * FROM checkpoints ORDER BY id"))
    covered = {c["last_event_id"] for c in checkpoints}
    covered |= {c["last_event_id"] + 1 for c in checkpoints}
    seen: dict[int, dict] = {}  # only the events checkpoints refer to
    written: dict[int, int] = {}  # checkpoint id -> event recording it
    replay = _CertificateReplay()

    prev_id, prev_hash = 0, GENESIS_HASH
    # The hot loop of verify (every event, issue 10): one streaming query of tuples, the
    # canonical text of the common row from one %-format (chain.PLAIN_ROW), no call per row
    # but the C ones. Any row the template cannot write exactly takes event_hash.
    sha256, plain, needs_escape, escape = hashlib.sha256, PLAIN_ROW, NEEDS_ESCAPE.search, encode_basestring
    # The decoder's C scanner, which raw_decode and json.loads wrap: (value, end) or
    # StopIteration.
    parse, loads = json.JSONDecoder().scan_once, json.loads
    apply = replay.apply
    for row in conn.execute(_EVENTS):
        batch_id, data, device_id, eid, kind, operator, row_prev, slot, station, ts, stored = row
        if eid != prev_id + 1:
            where = ("the log starts at event %d" % eid if prev_id == 0
                     else f"chain jumps from {prev_id} to {eid}")
            raise _Bad("events", prev_id + 1, f"event {prev_id + 1} missing: {where} (deleted?)")
        try:
            # A NULL or bytes value makes the concatenation (or escape) raise TypeError.
            short = batch_id + device_id + kind + operator + row_prev + slot + station + ts
            text = None if needs_escape(short) or eid.__class__ is not int else plain % (
                batch_id, escape(data), device_id, eid, kind, operator, row_prev, slot,
                station, ts)
        except TypeError:
            text = None
        computed = (event_hash(dict(zip(CANONICAL_ORDER, row))) if text is None
                    else sha256(text.encode()).hexdigest())
        if computed != stored:
            raise _Bad("events", eid, f"event {eid}: hash does not match its content (edited?)")
        if row_prev != prev_hash:
            if eid == 1:
                raise _Bad("events", 1, "event 1: prev_hash is not the genesis value (64 zeros): "
                           "the log's start was replaced")
            # Each row is self-consistent, so one of the two was rewritten with its hash
            # recomputed; the earlier one is named first.
            raise _Bad("events", prev_id, f"event {prev_id}: its hash is not the one event {eid} "
                       f"links to (event {prev_id} edited and rehashed, or event {eid} replaced?)")
        try:
            # The scanner refuses leading whitespace and stops before trailing text: json.loads
            # judges those.
            value, end = parse(data, 0)
            if end != len(data):
                value = loads(data)
        except (StopIteration, ValueError, TypeError):
            try:
                value = loads(data)
            except (ValueError, TypeError):
                raise _Bad("events", eid, f"event {eid}: data is not JSON") from None
        if value.__class__ is not dict:  # the writer logs objects only; a forged row may not
            raise _Bad("events", eid, f"event {eid}: data is not a JSON object")
        if eid in covered:
            seen[eid] = {"hash": stored, "kind": kind, "data": value}
        if kind == "checkpoint-written":
            written[value.get("checkpoint_id")] = eid
        if kind.__class__ is str and kind.startswith("certificate-"):
            apply(eid, kind, value)
        prev_id, prev_hash = eid, stored
    report.events_checked, report.head_event_id, report.head_hash = prev_id, prev_id, prev_hash

    _check_checkpoints(checkpoints, seen, written, prev_id, public_key, report)
    report.certificates_checked = replay.compare(
        _rows(conn, "SELECT * FROM certificates ORDER BY serial"))


def _check_checkpoints(checkpoints, seen, written, head_id, public_key, report) -> None:
    key_id = cp.key_id(public_key) if public_key is not None else None
    previous_cover = -1
    for number, row in enumerate(checkpoints, start=1):
        cid, last = row["id"], row["last_event_id"]
        if cid != number:
            raise _Bad("checkpoints", number, f"checkpoint {number} missing (deleted?)")
        if last <= previous_cover:
            raise _Bad("checkpoints", cid, f"checkpoint {cid}: covers event {last}, not after "
                       f"checkpoint {cid - 1} (reordered?)")
        if last + 1 not in seen:  # `seen` holds no event past the head
            raise _Bad("checkpoints", cid, f"events after checkpoint {cid} deleted: it covers "
                       f"event {last} and is recorded by event {last + 1}, but the log ends at "
                       f"event {head_id} (truncated?)")
        signed_hash = seen[last]["hash"] if last else GENESIS_HASH
        if row["last_event_hash"] != signed_hash:
            raise _Bad("checkpoints", cid, f"checkpoint {cid}: event {last} does not have the "
                       "hash it signs (log rewritten?)")
        if row["event_count"] != last:
            raise _Bad("checkpoints", cid, f"checkpoint {cid}: event count {row['event_count']} "
                       f"does not match the log ({last})")
        record = seen[last + 1]
        if record["kind"] != "checkpoint-written" or record["data"].get("checkpoint_id") != cid:
            raise _Bad("checkpoints", cid, f"checkpoint {cid}: event {last + 1} is not its "
                       "checkpoint-written record (inserted?)")
        if record["data"].get("last_event_id") != last:
            raise _Bad("checkpoints", cid, f"checkpoint {cid}: event {last + 1} records it as "
                       f"covering event {record['data'].get('last_event_id')}, not {last} (edited?)")
        if record["data"].get("signature_sha256") != _sha256_hex(row["signature"]):
            raise _Bad("checkpoints", cid, f"checkpoint {cid}: signature differs from the one "
                       f"logged in event {last + 1} (replaced?)")
        if public_key is not None:
            if not cp.signature_valid(public_key, row):
                other = (f" (signed by key {row['key_id'][:16]}..., not the given audit key)"
                         if row["key_id"] != key_id else "")
                raise _Bad("checkpoints", cid,
                           f"checkpoint {cid}: signature does not verify{other}")
            if row["key_id"] != key_id:
                raise _Bad("checkpoints", cid, f"checkpoint {cid}: key_id was edited")
        previous_cover = last
        report.checkpoints_checked = cid
        report.checkpoint_stations.add(row["station_id"])
    missing = sorted(c for c in written if not isinstance(c, int) or c > len(checkpoints))
    if missing:
        raise _Bad("checkpoints", missing[0], f"checkpoint {missing[0]} missing: event "
                   f"{written[missing[0]]} records it (deleted?)")


def _sha256_hex(hex_text: str) -> str | None:
    try:
        return hashlib.sha256(bytes.fromhex(hex_text)).hexdigest()
    except (ValueError, TypeError):
        return None


class _CertificateReplay:
    """Rebuilds each certificate's row from the certificate-* events."""

    def __init__(self):
        self.state: dict[str, dict] = {}
        self.last_event: dict[str, int] = {}

    def apply(self, eid: int, kind: str, data: dict) -> None:
        """Replays one certificate-* event."""
        if kind == "certificate-refused":
            return
        serial = data.get("serial")
        known = self.state.get(serial)
        if kind == "certificate-reserved":
            if known is not None:
                raise _Bad("events", eid, f"event {eid}: certificate 0x{serial} reserved twice")
            self.state[serial] = {c: data.get(c) for c in REPLAYED_COLUMNS}
        elif known is None:
            raise _Bad("events", eid, f"event {eid}: certificate 0x{serial} changes but was "
                       "never reserved")
        elif kind == "certificate-issued":
            self._check_transition(eid, serial, known, data.get("status"))
            known.update({c: data[c] for c in REPLAYED_COLUMNS if c in data})
        elif kind == "certificate-status-changed":
            if data.get("from") != known["status"]:
                raise _Bad("events", eid, f"event {eid}: certificate 0x{serial} leaves status "
                           f"{data.get('from')} but the log had it {known['status']}")
            self._check_transition(eid, serial, known, data.get("to"))
            known["status"], known["status_reason"] = data.get("to"), data.get("reason")
        self.last_event[serial] = eid

    @staticmethod
    def _check_transition(eid: int, serial, known: dict, new) -> None:
        # The log and the table can be rewritten together after the last checkpoint; a move
        # the station never makes (un-revoking, say) still shows.
        if not transition_allowed(known["status"], new, signed=known["cert_pem"] is not None):
            raise _Bad("events", eid, f"event {eid}: certificate 0x{serial} moves from "
                       f"{known['status']} to {new}, which the station never does (forged?)")

    def compare(self, rows) -> int:
        checked = 0
        for row in rows:
            serial = row["serial"]
            expected = self.state.pop(serial, None)
            if expected is None:
                raise _Bad("certificates", serial, f"certificate 0x{serial}: not in the log "
                           "(inserted outside the station?)")
            for column in REPLAYED_COLUMNS:
                if row[column] != expected[column]:
                    shown = (f"is {row[column]!r} in the table but {expected[column]!r} in the "
                             "log" if column != "cert_pem" else "differs from the log")
                    raise _Bad("certificates", serial, f"certificate 0x{serial}: {column} "
                               f"{shown} (event {self.last_event[serial]})")
            checked += 1
        if self.state:
            serial = sorted(self.state)[0]
            raise _Bad("certificates", serial, f"certificate 0x{serial}: in the log (event "
                       f"{self.last_event[serial]}) but missing from the table (deleted?)")
        return checked
