"""AuditDB: the station's chain-of-custody record (docs/audit.md).

Every state change is written together with its hash-chained event in one `BEGIN IMMEDIATE`
transaction, committed with WAL + synchronous=FULL before the method returns. One connection
serves all threads of a process behind a lock; other processes are serialised by SQLite's
write lock, taken before the chain head is read, so two writers can never fork the chain.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import sqlite_utils
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from station.audit import checkpoint as cp
from station.audit import recovery
from station.audit import statuses as st
from station.audit.chain import (GENESIS_HASH, canonical_json, event_hash, serial_hex,
                                 utc_timestamp)
from station.audit.errors import (AuditUnreadable, AuditWriteFailed, CheckpointFailed,
                                  write_failure)
from station.audit.schema import create_schema
from station.errors import ConfigError, PolicyRefusal

DEFAULT_BUSY_TIMEOUT = 10.0


def _text(value) -> str | None:
    """Identifiers (slot, device, batch, operator) are stored as TEXT. SQLite would turn an int
    slot into text on the way in, and the hash, computed before, would then not match."""
    return None if value is None else str(value)


def _hex_digest(value: str, what: str) -> str:
    text = (value or "").strip().lower().replace(":", "")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{what} must be a SHA-256 in hex (64 digits), got {value!r}")
    return text


class AuditDB:
    """The audit database of one station. Thread-safe; several processes may open one file.

    Create with `AuditDB.open(...)`; every write method is durable when it returns, or raises
    `AuditWriteFailed` (nothing of that call was recorded).
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, station_id: str,
                 checkpoint_every: int):
        self.path = path
        self.station_id = station_id
        self.session_id = uuid.uuid4().hex
        self._conn = conn
        self._db = sqlite_utils.Database(conn)
        self._every = checkpoint_every
        self._lock = threading.RLock()
        self._signer = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, path: Path, *, station_id: str, checkpoint_every: int = 1000,
             busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> "AuditDB":
        """Open (creating if needed) the audit database at `path` for station `station_id`.

        Sets WAL and synchronous=FULL, creates the schema, and registers this process as a
        writer session. The first write happens here, so an unwritable database is refused
        before anything is issued.

        Returns: the open AuditDB.
        Raises: AuditWriteFailed (read-only, disk full, locked longer than `busy_timeout`
        seconds, cannot create the file); AuditUnreadable (the file is not a SQLite database);
        ConfigError (the database belongs to another station); ValueError (bad arguments).
        """
        path = Path(path)
        if not station_id:
            raise ValueError("station_id must not be empty")
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
        try:
            conn = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise _open_failure(exc, path) from exc
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise AuditWriteFailed(f"audit database cannot use WAL ({mode}): {path}")
            conn.execute("PRAGMA synchronous=FULL")
            self = cls(path, conn, station_id, checkpoint_every)
            self._register(station_id)
        except sqlite3.Error as exc:
            conn.close()
            raise _open_failure(exc, path) from exc
        except BaseException:
            conn.close()
            raise
        return self

    def _register(self, station_id: str) -> None:
        now = utc_timestamp()
        with self._transaction():
            create_schema(self._db)
            owner = self._conn.execute(
                "SELECT value FROM meta WHERE key = 'station_id'").fetchone()
            if owner is None:
                self._db["meta"].insert({"key": "station_id", "value": station_id})
            elif owner[0] != station_id:
                raise ConfigError(f"audit database {self.path} belongs to station "
                                  f"{owner[0]!r}, not {station_id!r}")
            self._db["stations"].insert({"station_id": station_id, "created_at": now},
                                        ignore=True)
            self._db["sessions"].insert({
                "session_id": self.session_id, "station_id": station_id,
                "hostname": recovery.hostname(), "pid": os.getpid(), "opened_at": now})

    def close(self) -> None:
        """Mark this writer session closed and close the connection. Idempotent.

        Raises nothing: if the database has become unwritable the session simply stays
        open, and `recover_after_crash` treats it by its (then dead) pid.
        """
        with self._lock:
            if self._closed:
                return
            try:
                with self._transaction():
                    self._db["sessions"].update(self.session_id,
                                                {"closed_at": utc_timestamp()})
            except AuditWriteFailed:
                pass
            self._closed = True
            self._conn.close()

    def __enter__(self) -> "AuditDB":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _transaction(self):
        """One BEGIN IMMEDIATE ... COMMIT under the process lock. SQLite errors become
        AuditWriteFailed; any exception rolls back everything written inside."""
        with self._lock:
            if self._closed:
                raise AuditWriteFailed(f"audit database is closed: {self.path}")
            try:
                # IMMEDIATE takes the write lock before we read the chain head, so another
                # process cannot append between our read and our insert.
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise write_failure(exc, self.path) from exc
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    try:
                        self._conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the original error is the one to report
                if isinstance(exc, sqlite3.Error):
                    raise write_failure(exc, self.path) from exc
                raise

    def _head(self) -> tuple[int, str]:
        row = self._conn.execute(
            "SELECT id, hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS_HASH)

    def head(self) -> tuple[int, str]:
        """(id, hash) of the newest event. Written down outside the station (the run summary
        prints it), it lets `station audit verify --expect-head` detect a truncated log.

        Raises: AuditUnreadable.
        """
        rows = self._read("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1")
        return (rows[0]["id"], rows[0]["hash"]) if rows else (0, GENESIS_HASH)

    def _append(self, kind: str, *, operator=None, batch_id=None, slot=None, device_id=None,
                data: dict | None = None) -> int:
        """Append one chained event inside the current transaction; returns its id."""
        try:
            text = canonical_json(data or {}).decode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"event {kind!r}: data is not JSON-serialisable ({exc})") from exc
        prev_id, prev_hash = self._head()
        row = {"id": prev_id + 1, "ts": utc_timestamp(), "station_id": self.station_id,
               "kind": str(kind), "operator": _text(operator), "batch_id": _text(batch_id),
               "slot": _text(slot), "device_id": _text(device_id), "data": text,
               "prev_hash": prev_hash}
        row["hash"] = event_hash(row)
        self._db["events"].insert(row)
        return row["id"]

    def _read(self, sql: str, params=()) -> list[dict]:
        with self._lock:
            try:
                cur = self._conn.execute(sql, params)
            except sqlite3.Error as exc:
                raise AuditUnreadable(f"cannot read audit database {self.path}: {exc}") from exc
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

    def _row(self, table: str, key_column: str, key) -> dict | None:
        rows = self._read(f"SELECT * FROM {table} WHERE {key_column} = ?", (key,))
        return rows[0] if rows else None

    # ------------------------------------------------------------------ events

    def log_event(self, kind: str, *, operator: str | None = None, batch_id: str | None = None,
                  slot: str | None = None, device_id: str | None = None,
                  data: dict | None = None) -> int:
        """Append one event (a provisioning step, a refusal, an override...).

        Returns: the event id (1, 2, 3... without gaps).
        Raises: AuditWriteFailed (nothing recorded); ValueError (empty kind, data not JSON);
        CheckpointFailed if this event made a checkpoint due and it could not be signed
        (the event itself IS recorded; its id is in the exception's `event_id`).
        """
        if not kind:
            raise ValueError("event kind must not be empty")
        with self._transaction():
            event_id = self._append(kind, operator=operator, batch_id=batch_id, slot=slot,
                                    device_id=device_id, data=data)
        self._checkpoint_if_due(event_id)
        return event_id

    def log_station_start(self, config_sha256: str, ca_fingerprints: list[str],
                          software_version: str) -> int:
        """Record a station start: hash of station.toml, CA chain fingerprints, version.

        Returns: the event id of the `station-started` event.
        Raises: AuditWriteFailed; ValueError (config_sha256 not a SHA-256 hex digest).
        """
        digest = _hex_digest(config_sha256, "config_sha256")
        fingerprints = [str(f) for f in ca_fingerprints]
        now = utc_timestamp()
        with self._transaction():
            self._db["stations"].update(self.station_id, {
                "config_sha256": digest, "ca_fingerprints": canonical_json(fingerprints).decode(),
                "software_version": software_version, "last_started_at": now})
            event_id = self._append("station-started", data={
                "config_sha256": digest, "ca_fingerprints": fingerprints,
                "software_version": software_version, "hostname": recovery.hostname(),
                "pid": os.getpid(), "session_id": self.session_id})
        self._checkpoint_if_due(event_id)
        return event_id

    # ------------------------------------------------------------------ checkpoints

    def set_checkpoint_signer(self, signer) -> None:
        """Use `signer` (an `ec.EllipticCurvePrivateKey`, e.g. the HSM audit key) for
        checkpoints from now on; None switches automatic checkpoints off.

        Raises: TypeError if `signer` is not an EC private key.
        """
        if signer is not None and not isinstance(signer, ec.EllipticCurvePrivateKey):
            raise TypeError("the checkpoint signer must be an ec.EllipticCurvePrivateKey")
        with self._lock:
            self._signer = signer

    def checkpoint(self) -> int:
        """Sign the current chain head and store it as a checkpoint, followed by a
        `checkpoint-written` event in the same transaction.

        Returns: the checkpoint id (1, 2, 3...).
        Raises: CheckpointFailed (no signer set, or the signer failed); AuditWriteFailed.
        """
        return self._write_checkpoint(due_only=False)

    def _checkpoint_if_due(self, event_id: int) -> None:
        if self._signer is None:
            return
        with self._lock:
            # A cheap read first: most writes are not due, and a write transaction for
            # nothing would take the lock every other process is waiting for.
            due = self._conn.execute(
                "SELECT (SELECT COALESCE(MAX(id), 0) FROM events) - COALESCE((SELECT "
                "last_event_id FROM checkpoints ORDER BY id DESC LIMIT 1), 0) - 1").fetchone()[0]
        if due < self._every:
            return
        try:
            self._write_checkpoint(due_only=True)
        except CheckpointFailed as exc:
            exc.event_id = event_id
            raise

    def _write_checkpoint(self, *, due_only: bool) -> int | None:
        signer = self._signer
        if signer is None:
            raise CheckpointFailed("no audit signing key is set: cannot write a checkpoint")
        with self._transaction():
            head_id, head_hash = self._head()
            last = self._conn.execute(
                "SELECT id, last_event_id FROM checkpoints ORDER BY id DESC LIMIT 1").fetchone()
            last_id, last_covered = last if last else (0, 0)
            # The checkpoint-written event itself is not counted towards the next one.
            if due_only and head_id - last_covered - 1 < self._every:
                return None
            count = self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            row = {"id": last_id + 1, "station_id": self.station_id,
                   "last_event_id": head_id, "last_event_hash": head_hash,
                   "event_count": count, "ts": utc_timestamp()}
            try:
                row["key_id"] = cp.key_id(signer.public_key())
                row["signature"] = cp.sign(signer, row)
            except Exception as exc:  # the HSM signer raises its own error types
                raise CheckpointFailed(f"audit checkpoint could not be signed: {exc}") from exc
            self._db["checkpoints"].insert(row)
            self._append("checkpoint-written", data={
                "checkpoint_id": row["id"], "last_event_id": head_id,
                "signature_sha256": hashlib.sha256(bytes.fromhex(row["signature"])).hexdigest()})
        return row["id"]

    # ------------------------------------------------------------------ operators, batches

    def record_operator_login(self, operator_id: str, name: str | None = None) -> None:
        """Record an operator login (creates the operator on first login).

        Raises: AuditWriteFailed; ValueError (empty operator_id).
        """
        if not operator_id:
            raise ValueError("operator_id must not be empty")
        now = utc_timestamp()
        with self._transaction():
            known = self._conn.execute("SELECT name FROM operators WHERE operator_id = ?",
                                       (operator_id,)).fetchone()
            if known:
                self._db["operators"].update(operator_id, {
                    "last_login_at": now, "name": name if name is not None else known[0]})
            else:
                self._db["operators"].insert({"operator_id": operator_id, "name": name,
                                              "first_login_at": now, "last_login_at": now})
            event_id = self._append("operator-logged-in", operator=operator_id,
                                    data={"name": name})
        self._checkpoint_if_due(event_id)

    def open_batch(self, batch_id: str, *, model: str, operator: str,
                   expected_count: int | None, manifest_sha256: str | None) -> None:
        """Open a batch (work order). Opening a batch that is already open with the same model
        and manifest resumes it (a `batch-resumed` event), e.g. after a restart.

        Raises: PolicyRefusal("batch-closed") if the batch was closed (never reopened);
        PolicyRefusal("batch-mismatch") if it is open with another model or manifest;
        AuditWriteFailed; ValueError (empty batch_id or model, bad manifest hash).
        """
        if not batch_id or not model:
            raise ValueError("batch_id and model must not be empty")
        manifest = _hex_digest(manifest_sha256, "manifest_sha256") if manifest_sha256 else None
        data = {"model": model, "expected_count": expected_count, "manifest_sha256": manifest}
        with self._transaction():
            row = self._conn.execute(
                "SELECT status, closed_at, model, manifest_sha256 FROM batches "
                "WHERE batch_id = ?", (batch_id,)).fetchone()
            if row and row[0] == "closed":
                raise PolicyRefusal("batch-closed", f"batch {batch_id} was closed at {row[1]} "
                                    "and cannot be reopened; open a new batch")
            if row and (row[2], row[3]) != (model, manifest):
                raise PolicyRefusal("batch-mismatch", f"batch {batch_id} is open for model "
                                    f"{row[2]} with manifest {row[3]}; refusing model {model} "
                                    f"with manifest {manifest}")
            if row is None:
                self._db["batches"].insert({
                    "batch_id": batch_id, "station_id": self.station_id, "model": model,
                    "operator": operator, "expected_count": expected_count,
                    "manifest_sha256": manifest, "status": "open",
                    "opened_at": utc_timestamp()})
            event_id = self._append("batch-resumed" if row else "batch-opened",
                                    operator=operator, batch_id=batch_id, data=data)
        self._checkpoint_if_due(event_id)

    def close_batch(self, batch_id: str) -> None:
        """Close a batch for good; writes a checkpoint if a signer is set.

        Raises: PolicyRefusal("batch-unknown" / "batch-closed"); AuditWriteFailed;
        CheckpointFailed (the batch IS closed; only the checkpoint is missing).
        """
        with self._transaction():
            row = self._conn.execute("SELECT status FROM batches WHERE batch_id = ?",
                                     (batch_id,)).fetchone()
            if row is None:
                raise PolicyRefusal("batch-unknown", f"no batch {batch_id} to close")
            if row[0] == "closed":
                raise PolicyRefusal("batch-closed", f"batch {batch_id} is already closed")
            self._db["batches"].update(batch_id, {"status": "closed",
                                                  "closed_at": utc_timestamp()})
            counts = dict(self._conn.execute(
                "SELECT status, COUNT(*) FROM certificates WHERE batch_id = ? GROUP BY status",
                (batch_id,)).fetchall())
            self._append("batch-closed", batch_id=batch_id, data={"certificates": counts})
        if self._signer is not None:
            self.checkpoint()

    # ------------------------------------------------------------------ devices

    def upsert_device(self, device_id: str, *, model: str, hw_rev: str, fw_version: str,
                      label: str | None, batch_id: str | None, state: str) -> None:
        """Create or update a device and log a `device-recorded` event with all its fields.

        Raises: AuditWriteFailed; ValueError (empty device_id, unknown state).
        """
        if device_id is None or device_id == "":
            raise ValueError("device_id must not be empty")
        _check_device_state(state)
        device_id = _text(device_id)
        fields = {"model": model, "hw_rev": hw_rev, "fw_version": fw_version, "label": label,
                  "batch_id": _text(batch_id), "state": state}
        with self._transaction():
            self._db["devices"].upsert({
                "device_id": device_id, "station_id": self.station_id, "reason": None,
                "session_id": self.session_id, "updated_at": utc_timestamp(), **fields},
                pk="device_id")
            event_id = self._append("device-recorded", batch_id=batch_id, device_id=device_id,
                                    data=fields)
        self._checkpoint_if_due(event_id)

    def set_device_state(self, device_id: str, state: str, *, reason: str | None = None) -> None:
        """Move a device to `state` (detected, in-flight, passed, failed, interrupted).

        Raises: ValueError (unknown device or state); AuditWriteFailed.
        """
        _check_device_state(state)
        with self._transaction():
            event_id = self._set_device_state(device_id, state, reason)
        self._checkpoint_if_due(event_id)

    def _set_device_state(self, device_id: str, state: str, reason: str | None) -> int:
        device_id = _text(device_id)
        row = self._conn.execute("SELECT state, batch_id FROM devices WHERE device_id = ?",
                                 (device_id,)).fetchone()
        if row is None:
            raise ValueError(f"unknown device {device_id!r}: record it with upsert_device first")
        self._db["devices"].update(device_id, {"state": state, "reason": reason,
                                               "session_id": self.session_id,
                                               "updated_at": utc_timestamp()})
        return self._append("device-state-changed", batch_id=row[1], device_id=device_id,
                            data={"from": row[0], "to": state, "reason": reason})

    # ------------------------------------------------------------------ certificates

    def public_key_known(self, spki_sha256: str) -> bool:
        """True if a certificate was ever reserved for this public key (SPKI DER SHA-256).

        Raises: ValueError (not a SHA-256 hex digest); AuditUnreadable.
        """
        digest = _hex_digest(spki_sha256, "spki_sha256")
        return bool(self._read("SELECT 1 FROM certificates WHERE spki_sha256 = ?", (digest,)))

    def reserve_certificate(self, *, serial: int, spki_sha256: str, subject: str,
                            device_id: str | None, batch_id: str | None = None,
                            slot: str | None = None, operator: str | None = None) -> None:
        """Record, durably, that certificate `serial` is about to be signed for this key.
        Call before the CA signs. A refusal is itself logged (`certificate-refused`).

        Raises: PolicyRefusal("key-reused") if this public key was ever reserved before,
        atomically across threads and processes (UNIQUE constraint); PolicyRefusal
        ("serial-reused") if the serial exists; AuditWriteFailed; ValueError (bad serial,
        digest or empty subject).
        """
        serial_text = serial_hex(serial)
        digest = _hex_digest(spki_sha256, "spki_sha256")
        device_id, batch_id, slot, operator = map(_text, (device_id, batch_id, slot, operator))
        if not subject:
            raise ValueError("subject must not be empty")
        record = {"serial": serial_text, "spki_sha256": digest, "subject": subject,
                  "device_id": device_id, "batch_id": batch_id, "slot": slot,
                  "operator": operator}
        now = utc_timestamp()
        try:
            with self._transaction():
                self._refuse_if_known(serial_text, digest)
                try:
                    self._db["certificates"].insert({
                        **record, "station_id": self.station_id, "status": st.RESERVED,
                        "reserved_at": now, "updated_at": now, "session_id": self.session_id})
                except sqlite3.IntegrityError:
                    # Unreachable while every writer takes BEGIN IMMEDIATE; the constraint is
                    # the guarantee, the check above only gives the better message.
                    self._refuse_if_known(serial_text, digest)
                    raise
                event_id = self._append("certificate-reserved", operator=operator,
                                        batch_id=batch_id, slot=slot, device_id=device_id,
                                        data={**record, "status": st.RESERVED})
        except PolicyRefusal as refusal:
            with self._transaction():
                self._append("certificate-refused", operator=operator, batch_id=batch_id,
                             slot=slot, device_id=device_id, data={
                                 "code": refusal.code, "reason": str(refusal),
                                 "serial": serial_text, "spki_sha256": digest})
            raise
        self._checkpoint_if_due(event_id)

    def _refuse_if_known(self, serial_text: str, digest: str) -> None:
        prior = self._conn.execute(
            "SELECT serial, device_id FROM certificates WHERE spki_sha256 = ?",
            (digest,)).fetchone()
        if prior:
            raise PolicyRefusal("key-reused", f"public key already certified (serial "
                                f"0x{prior[0]}, device {prior[1]})")
        if self._conn.execute("SELECT 1 FROM certificates WHERE serial = ?",
                              (serial_text,)).fetchone():
            raise PolicyRefusal("serial-reused", f"certificate serial 0x{serial_text} "
                                "was already used")

    def complete_certificate(self, serial: int, *, cert_pem: str, fingerprint_sha256: str,
                             not_before: datetime, not_after: datetime) -> None:
        """Record the signed certificate (status `issued`), durably, before it leaves the
        station. The PEM must match the reservation: same serial and public key, and its
        SHA-256 must be `fingerprint_sha256`. Naive datetimes are taken as UTC.

        Raises: PolicyRefusal("certificate-unknown" / "certificate-status" /
        "certificate-mismatch"); AuditWriteFailed; ValueError (bad digest).
        """
        serial_text = serial_hex(serial)
        fingerprint = _hex_digest(fingerprint_sha256, "fingerprint_sha256")
        with self._transaction():
            row = self._certificate_row(serial_text)
            if row["status"] != st.RESERVED:
                raise PolicyRefusal("certificate-status", f"certificate 0x{serial_text} is "
                                    f"{row['status']}, not reserved: cannot record it as issued")
            _check_pem_matches(cert_pem, serial, row["spki_sha256"], fingerprint)
            fields = {"status": st.ISSUED, "cert_pem": cert_pem,
                      "fingerprint_sha256": fingerprint,
                      "not_before": utc_timestamp(not_before),
                      "not_after": utc_timestamp(not_after)}
            self._db["certificates"].update(serial_text, {**fields,
                                                          "updated_at": utc_timestamp()})
            event_id = self._append("certificate-issued", operator=row["operator"],
                                    batch_id=row["batch_id"], slot=row["slot"],
                                    device_id=row["device_id"],
                                    data={"serial": serial_text, **fields})
        self._checkpoint_if_due(event_id)

    def set_certificate_status(self, serial: int, status: str, *,
                               reason: str | None = None) -> None:
        """Move a certificate to `status` along an allowed transition (docs/audit.md).
        `delivered` also supersedes the device's earlier certificates (an earlier one that
        was never signed becomes `void`).

        Raises: PolicyRefusal("certificate-unknown") / ("certificate-status") for a
        transition that is not allowed; ValueError (unknown status); AuditWriteFailed.
        """
        if status not in st.CERTIFICATE_STATUSES:
            raise ValueError(f"unknown certificate status {status!r}; expected one of "
                             f"{', '.join(st.CERTIFICATE_STATUSES)}")
        serial_text = serial_hex(serial)
        with self._transaction():
            row = self._certificate_row(serial_text)
            event_id = self._change_status(row, status, reason)
            if status == st.DELIVERED and row["device_id"]:
                event_id = self._supersede_older(row) or event_id
        self._checkpoint_if_due(event_id)

    def _certificate_row(self, serial_text: str) -> dict:
        cur = self._conn.execute("SELECT * FROM certificates WHERE serial = ?", (serial_text,))
        values = cur.fetchone()
        if values is None:
            raise PolicyRefusal("certificate-unknown", f"no certificate 0x{serial_text} "
                                "in the audit database")
        return dict(zip([d[0] for d in cur.description], values))

    def _change_status(self, row: dict, status: str, reason: str | None) -> int:
        current = row["status"]
        allowed = status in st.TRANSITIONS[current]
        if status == st.VOID and current == st.UNDELIVERED and row["cert_pem"]:
            allowed = False  # it was signed: it exists, so it must be revoked, not voided
        if not allowed:
            raise PolicyRefusal("certificate-status", f"certificate 0x{row['serial']} is "
                                f"{current}; it cannot become {status}")
        self._db["certificates"].update(row["serial"], {
            "status": status, "status_reason": reason, "updated_at": utc_timestamp()})
        return self._append("certificate-status-changed", operator=row["operator"],
                            batch_id=row["batch_id"], slot=row["slot"],
                            device_id=row["device_id"], data={
                                "serial": row["serial"], "from": current, "to": status,
                                "reason": reason})

    def _supersede_older(self, newer: dict) -> int | None:
        cur = self._conn.execute(
            "SELECT * FROM certificates WHERE device_id = ? AND serial != ? AND status IN "
            f"({', '.join('?' * len(st.REPLACEABLE))}) ORDER BY reserved_at",
            (newer["device_id"], newer["serial"], *sorted(st.REPLACEABLE)))
        names = [d[0] for d in cur.description]
        event_id = None
        for values in cur.fetchall():
            old = dict(zip(names, values))
            target = st.SUPERSEDED if old["cert_pem"] else st.VOID
            event_id = self._change_status(old, target, f"replaced by 0x{newer['serial']}")
        return event_id

    def devices_passed_in_batch(self, batch_id: str) -> int:
        """How many devices of `batch_id` are `passed` (for a resumed batch's expected count).

        Raises: AuditUnreadable.
        """
        rows = self._read("SELECT COUNT(*) AS n FROM devices WHERE batch_id = ? AND state = 'passed'",
                          (batch_id,))
        return rows[0]["n"]

    def devices_with_label(self, label: str) -> list[dict]:
        """Every device this database has bound to `label` (a label belongs to one device).

        Returns: dicts with the devices table's columns. Raises: AuditUnreadable.
        """
        return self._read("SELECT * FROM devices WHERE label = ? ORDER BY device_id", (label,))

    def certificates_for_device(self, device_id: str) -> list[dict]:
        """All certificates ever reserved for `device_id`, oldest first.

        Returns: one dict per certificate with the table's columns (docs/audit.md); `serial`
        is the int, `serial_hex` the stored text.
        Raises: AuditUnreadable.
        """
        rows = self._read("SELECT * FROM certificates WHERE device_id = ? "
                          "ORDER BY reserved_at, serial", (_text(device_id),))
        for row in rows:
            row["serial_hex"] = row["serial"]
            row["serial"] = int(row["serial"], 16)
        return rows

    # ------------------------------------------------------------------ recovery

    def recover_after_crash(self) -> dict:
        """Close the unfinished work of writers that died (this one excluded): their in-flight
        devices become `interrupted`, their reserved/issued certificates `undelivered`, each
        change logged as an event. Work of live writers (another running process) is left.

        Returns: {"devices_interrupted": [device_id...], "certificates_undelivered":
        [serial int...], "sessions_closed": [session_id...]} (empty lists if nothing to do).
        Raises: AuditWriteFailed.
        """
        result = {"devices_interrupted": [], "certificates_undelivered": [],
                  "sessions_closed": []}
        with self._transaction():
            live = recovery.live_sessions(self._conn, self.session_id)
            marks = ", ".join("?" * len(live))
            devices = self._conn.execute(
                f"SELECT device_id FROM devices WHERE state = ? AND "
                f"(session_id IS NULL OR session_id NOT IN ({marks})) ORDER BY device_id",
                (st.IN_FLIGHT, *live)).fetchall()
            for (device_id,) in devices:
                self._set_device_state(device_id, st.INTERRUPTED,
                                       "station stopped while this device was in flight")
                result["devices_interrupted"].append(device_id)
            cur = self._conn.execute(
                f"SELECT * FROM certificates WHERE status IN (?, ?) AND "
                f"(session_id IS NULL OR session_id NOT IN ({marks})) ORDER BY serial",
                (*sorted(st.UNCONFIRMED), *live))
            names = [d[0] for d in cur.description]
            for values in cur.fetchall():
                row = dict(zip(names, values))
                self._change_status(row, st.UNDELIVERED,
                                    "station stopped before delivery was confirmed")
                result["certificates_undelivered"].append(int(row["serial"], 16))
            for session_id in recovery.unclosed_dead_sessions(self._conn, live):
                self._db["sessions"].update(session_id, {"closed_at": utc_timestamp()})
                result["sessions_closed"].append(session_id)
            if result["devices_interrupted"] or result["certificates_undelivered"]:
                self._append("crash-recovered", data={
                    "devices_interrupted": result["devices_interrupted"],
                    "certificates_undelivered": [format(s, "x") for s in
                                                 result["certificates_undelivered"]],
                    "sessions_closed": result["sessions_closed"]})
        return result


def _check_device_state(state: str) -> None:
    if state not in st.DEVICE_STATES:
        raise ValueError(f"unknown device state {state!r}; expected one of "
                         f"{', '.join(st.DEVICE_STATES)}")


def _check_pem_matches(cert_pem: str, serial: int, spki_sha256: str, fingerprint: str) -> None:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError, AttributeError) as exc:
        raise PolicyRefusal("certificate-mismatch", f"certificate 0x{serial:x}: the PEM does "
                            f"not parse ({exc})") from exc
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    problems = []
    if cert.serial_number != serial:
        problems.append(f"its serial is 0x{cert.serial_number:x}")
    if hashlib.sha256(spki).hexdigest() != spki_sha256:
        problems.append("its public key is not the reserved one")
    if cert.fingerprint(hashes.SHA256()).hex() != fingerprint:
        problems.append("its SHA-256 fingerprint is not the one given")
    if problems:
        raise PolicyRefusal("certificate-mismatch", f"certificate 0x{serial:x} does not match "
                            f"its reservation: {'; '.join(problems)}")


def _open_failure(exc: sqlite3.Error, path: Path) -> Exception:
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
        return AuditUnreadable(f"{path} is not a readable audit database ({exc})")
    if name.startswith("SQLITE_CANTOPEN") and not path.parent.is_dir():
        return AuditWriteFailed(f"cannot create audit database {path}: the directory "
                                f"{path.parent} does not exist")
    if name.startswith("SQLITE_CANTOPEN") and not os.access(path.parent, os.W_OK):
        return AuditWriteFailed(f"audit database is read-only: {path} "
                                "(its directory is not writable)")
    return write_failure(exc, path)
