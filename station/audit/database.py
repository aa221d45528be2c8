"""AuditDB: the station's chain-of-custody record (docs/audit.md).

Every state change is written together with its hash-chained event, committed with WAL +
synchronous=FULL before the method returns. This module holds the connection, the group commit
and the chain append; the records live one concern a module: checkpointing.py, batches.py,
devices.py, certificates.py, recovery.py. One connection serves all threads of a process;
other processes are serialised by SQLite's write lock, taken (`BEGIN IMMEDIATE`) before the
chain head is read, so two writers can never fork the chain.

Group commit: a record is written inside a SAVEPOINT of the open transaction (its "group");
the last writer to arrive commits the group, so records that came in while the previous
commit was on its way to disk share one COMMIT and one fsync. A durable record's caller
returns only once the COMMIT holding its record is durable; if that COMMIT fails, every caller
of the group gets AuditWriteFailed and nothing of theirs is recorded. A record that fails by
itself (a refusal, a bad argument) is rolled back to its savepoint and leaves the others alone.

Deferred records (`durable=False`: a step's progress, never a decision) are checked in their
caller's thread but their caller does not wait for the fsync: the next COMMIT carries them,
made by a later writer or by the committer thread within moments. A deferred status change is
written under the lock like any record (its transition is checked there); a deferred plain
event does not even take the lock: it waits in `_pending`, in order, and whoever holds the
connection next appends it to the chain before its own record. So any later record of the same
thread comes after it in the chain, and a durable record returns only once everything before
it is durable (COMMITs are in chain order). If a COMMIT carrying deferred records fails, every
later write of this process raises AuditWriteFailed, so the line halts at its next record
instead of going on with a log that lost something (docs/audit.md, "What is durable when").
"""
from __future__ import annotations

import collections
import os
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from station.audit import recovery
from station.audit.batches import BatchRecords
from station.audit.certificates import CertificateRecords
from station.audit.chain import GENESIS_HASH, canonical_json, event_hash, utc_timestamp
from station.audit.checkpointing import CheckpointRecords
from station.audit.devices import DeviceRecords
from station.audit.errors import AuditUnreadable, AuditWriteFailed, write_failure
from station.audit.fields import as_text, hex_digest
from station.audit.schema import create_schema
from station.audit.tables import RowWriter
from station.errors import ConfigError

DEFAULT_BUSY_TIMEOUT = 10.0


class AuditDB(CheckpointRecords, BatchRecords, DeviceRecords, CertificateRecords,
              recovery.CrashRecovery):
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
        self._db = RowWriter(conn)  # the records' row writes (tables.py)
        self._every = checkpoint_every
        # The connection runs one statement at a time: `_conn_lock` is held while a record is
        # written or a group committed. `_lock` is for readers outside a record: it also waits
        # for the open group, so nobody reads a record whose COMMIT may still fail.
        self._conn_lock = threading.RLock()
        self._lock = _ReadLock(self)
        self._reader_depth = 0
        self._reader_owner: int | None = None  # the thread holding `_lock`
        self._arrivals = 0  # writers in _transaction, waiting for or holding _conn_lock
        self._arrivals_lock = threading.Lock()
        self._group: _Group | None = None
        self._writer: int | None = None  # thread id inside a record's body
        self._chain_head: tuple[int, str] | None = None  # valid while a group is open
        self._checkpointed = 0  # last_event_id of the newest checkpoint known to this process
        self._rconn: sqlite3.Connection | None = None
        self._rlock = threading.Lock()
        self._signer = None
        self._closed = False
        self.commits = 0  # COMMITs made (fsyncs); with `records_committed`, the group sizes
        self.records_committed = 0
        self.records_deferred = 0  # of those, records whose writers did not wait
        self.groups_lost = 0  # groups whose COMMIT (or transaction) failed
        # Deferred records: the thread that commits a group nobody waits for, woken by
        # `_commit_wanted`; and the failure that lost deferred records (sticky: see _transaction).
        self._committer: threading.Thread | None = None
        self._commit_wanted = threading.Event()
        self._deferred_lost: AuditWriteFailed | None = None
        # Deferred plain events not yet in the chain: (kind, fields, data text, timestamp).
        # deque.append and popleft are atomic, so writers add to it without any lock.
        self._pending: collections.deque = collections.deque()

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
            # Readers outside a record get a connection of their own: WAL shows them the last
            # committed state, so they neither see a group that may still fail nor wait for
            # its fsync.
            self._rconn = sqlite3.connect(str(path), timeout=busy_timeout,
                                          isolation_level=None, check_same_thread=False)
            self._rconn.execute("PRAGMA query_only=ON")
            self._checkpointed = self._last_checkpointed()
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
            create_schema(sqlite_utils.Database(self._conn))
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
            self._commit_wanted.set()  # the committer sees `_closed` and ends
            self._conn.close()
            if self._rconn is not None:
                with self._rlock:
                    self._rconn.close()

    def __enter__(self) -> "AuditDB":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _transaction(self, durable: bool = True):
        """One record: everything written inside is committed together, durably before the
        block exits, or (`durable=False`) by the next COMMIT without waiting for it (group
        commit, see the module docstring). SQLite errors become AuditWriteFailed; any
        exception rolls back everything written inside, and only that."""
        me = threading.get_ident()
        if self._writer == me:  # nested inside this thread's own record: part of it
            with self._savepoint():
                yield
            return
        with self._arrivals_lock:
            self._arrivals += 1
        self._conn_lock.acquire()
        try:
            self._check_writable()
            group = self._open_group()
            self._writer = me
            try:
                self._append_pending(group)
                with self._savepoint():
                    yield
            finally:
                self._writer = None
            group.members += 1
            group.deferred += not durable
        finally:
            with self._arrivals_lock:
                self._arrivals -= 1
                last = self._arrivals == 0
            try:
                # The last writer in commits for everyone; a thread that holds the connection
                # re-entrantly (close) must commit itself, as nobody else can get in. A
                # deferred record's writer hands the COMMIT to the committer thread instead.
                if self._group is not None and self._reader_depth:
                    self._commit_group()
                elif self._group is not None and last:
                    if durable:
                        self._commit_group()
                    else:
                        self._wake_committer()
            finally:
                self._conn_lock.release()
        if not durable:
            return
        group.done.wait()
        if group.error is not None:
            raise AuditWriteFailed(str(group.error)) from group.error

    def _check_writable(self) -> None:
        if self._closed:
            raise AuditWriteFailed(f"audit database is closed: {self.path}")
        if self._deferred_lost is not None:
            # Records this process put in the chain were lost: going on would hide that.
            raise AuditWriteFailed(f"earlier records could not be committed, nothing more is "
                                   f"written: {self._deferred_lost}")

    def _wake_committer(self) -> None:
        # Deferred events call this without the connection lock: the thread is started once,
        # under a lock, however many slots defer their first event at the same moment.
        with self._arrivals_lock:
            if self._committer is None:
                self._committer = threading.Thread(target=self._commit_deferred, daemon=True,
                                                   name="audit-committer")
                self._committer.start()
        self._commit_wanted.set()

    def _commit_deferred(self) -> None:
        """The committer thread: commits a group that only deferred records are waiting on.
        A group with a writer still on its way in is left to that writer (the last commits)."""
        while True:
            self._commit_wanted.wait()
            self._commit_wanted.clear()
            with self._conn_lock:
                if self._closed:
                    return
                if self._arrivals:
                    continue  # a writer is on its way in: it appends the pending and commits
                if self._pending and self._deferred_lost is None:
                    try:
                        self._append_pending(self._open_group())
                    except AuditWriteFailed:
                        continue  # the group is abandoned and its loss recorded
                if self._group is not None:
                    self._commit_group()

    def _append_pending(self, group: "_Group") -> None:
        """Put the deferred events waiting in `_pending` into the chain, in the open group
        (under `_conn_lock`). A failure here loses the whole group."""
        while self._pending:
            kind, fields, text, ts = self._pending.popleft()
            try:
                self._append_text(kind, fields, text, ts)
            except sqlite3.Error as exc:
                group.deferred += 1
                self._abandon_group(exc)
                raise write_failure(exc, self.path) from exc
            group.members += 1
            group.deferred += 1

    def _open_group(self) -> "_Group":
        if self._group is None:
            try:
                # IMMEDIATE takes the write lock before we read the chain head, so another
                # process cannot append between our read and our insert.
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise write_failure(exc, self.path) from exc
            self._group = _Group()
        return self._group

    @contextmanager
    def _savepoint(self):
        head = self._chain_head
        try:
            self._conn.execute("SAVEPOINT record")
        except sqlite3.Error as exc:
            self._abandon_group(exc)
            raise write_failure(exc, self.path) from exc
        try:
            yield
            self._conn.execute("RELEASE record")
        except BaseException as exc:
            self._chain_head = head
            try:
                self._conn.execute("ROLLBACK TO record")
                self._conn.execute("RELEASE record")
            except sqlite3.Error:
                # SQLite ended the whole transaction (I/O error, disk full): every record of
                # the group went with it.
                self._abandon_group(exc)
            if isinstance(exc, sqlite3.Error):
                raise write_failure(exc, self.path) from exc
            raise

    def _commit_group(self) -> None:
        """COMMIT the open group (one fsync) and wake its writers. Never raises: a failure is
        given to every writer of the group."""
        group, self._group, self._chain_head = self._group, None, None
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            group.error = write_failure(exc, self.path)
            self.groups_lost += 1
            self._rollback()
            if group.deferred:
                self._deferred_lost = group.error
        else:
            self.commits += 1
            self.records_committed += group.members
            self.records_deferred += group.deferred
        group.done.set()

    def _abandon_group(self, exc: BaseException) -> None:
        group, self._group, self._chain_head = self._group, None, None
        self._rollback()
        if group is not None:
            self.groups_lost += 1
            group.error = (write_failure(exc, self.path) if isinstance(exc, sqlite3.Error)
                           else AuditWriteFailed(f"audit write failed on {self.path}: {exc}"))
            if group.deferred:
                self._deferred_lost = group.error
            group.done.set()

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the original error is the one to report

    def _head(self) -> tuple[int, str]:
        """The chain head inside the open group: read once after BEGIN IMMEDIATE (another
        process may have appended before), then kept in memory by `_append`."""
        if self._chain_head is None:
            row = self._conn.execute(
                "SELECT id, hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
            self._chain_head = (row[0], row[1]) if row else (0, GENESIS_HASH)
        return self._chain_head

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
        fields = {"operator": operator, "batch_id": batch_id, "slot": slot, "device_id": device_id}
        return self._append_text(kind, fields, _event_text(kind, data), utc_timestamp())

    def _append_text(self, kind: str, fields: dict, text: str, ts: str) -> int:
        prev_id, prev_hash = self._head()
        row = {"id": prev_id + 1, "ts": ts, "station_id": self.station_id, "kind": str(kind),
               **{name: as_text(value) for name, value in fields.items()}, "data": text,
               "prev_hash": prev_hash}
        row["hash"] = event_hash(row)
        self._conn.execute(_INSERT_EVENT, row)
        self._chain_head = (row["id"], row["hash"])
        return row["id"]

    @contextmanager
    def _reading(self):
        """The connection to read from: inside the caller's own record (or while it holds
        the connection) the writer's, which sees the record's own rows; otherwise the
        reader connection, which sees only what is committed and never waits for a group."""
        me = threading.get_ident()
        if self._rconn is None or me in (self._writer, self._reader_owner):
            with self._lock:
                yield self._conn
            return
        with self._rlock:
            if self._closed:
                raise AuditUnreadable(f"audit database is closed: {self.path}")
            yield self._rconn

    def _read(self, sql: str, params=()) -> list[dict]:
        with self._reading() as conn:
            try:
                cur = conn.execute(sql, params)
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
                  data: dict | None = None, durable: bool = True) -> int:
        """Append one event (a provisioning step, a refusal, an override...).

        `durable=False` for a step's progress that decides nothing: the event is checked and
        queued, put in the chain by the next writer and made durable by the next COMMIT,
        neither of which this call waits for (module docstring); it returns None.

        Returns: the event id (1, 2, 3... without gaps); None for a deferred event.
        Raises: AuditWriteFailed (nothing recorded); ValueError (empty kind, data not JSON);
        CheckpointFailed if this event made a checkpoint due and it could not be signed
        (the event itself IS recorded; its id is in the exception's `event_id`).
        """
        if not kind:
            raise ValueError("event kind must not be empty")
        if not durable:
            self._check_writable()
            fields = {"operator": operator, "batch_id": batch_id, "slot": slot,
                      "device_id": device_id}
            self._pending.append((kind, fields, _event_text(kind, data), utc_timestamp()))
            self._wake_committer()
            return None
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
        digest = hex_digest(config_sha256, "config_sha256")
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


class _Group:
    """The records of one open transaction, made durable (or lost) by one COMMIT."""

    __slots__ = ("members", "deferred", "done", "error")

    def __init__(self):
        self.members = 0
        self.deferred = 0  # members whose writers did not wait (durable=False)
        self.done = threading.Event()
        self.error: AuditWriteFailed | None = None


class _ReadLock:
    """`with db._lock:` for reading outside a record: holds the connection, and first waits
    until the open group (other writers' records not yet committed) is committed, so a reader
    never sees a record that may still be lost. Re-entrant; a writer reading inside its own
    record goes straight through."""

    def __init__(self, db: AuditDB):
        self._db = db

    def __enter__(self):
        db = self._db
        while True:
            db._conn_lock.acquire()
            group = db._group
            me = threading.get_ident()
            if group is None or db._reader_depth or db._writer == me:
                db._reader_depth += 1
                if db._reader_depth == 1:
                    db._reader_owner = me
                return self
            db._conn_lock.release()
            group.done.wait()

    def __exit__(self, *exc) -> None:
        db = self._db
        db._reader_depth -= 1
        if db._reader_depth == 0:
            db._reader_owner = None
        db._conn_lock.release()


_INSERT_EVENT = ("INSERT INTO events (id, ts, station_id, kind, operator, batch_id, slot, "
                 "device_id, data, prev_hash, hash) VALUES (:id, :ts, :station_id, :kind, "
                 ":operator, :batch_id, :slot, :device_id, :data, :prev_hash, :hash)")


def _event_text(kind: str, data: dict | None) -> str:
    """The event's data as canonical JSON text; ValueError names the event if it is not JSON."""
    try:
        return canonical_json(data or {}).decode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"event {kind!r}: data is not JSON-serialisable ({exc})") from exc


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
