"""Signed checkpoints of the audit chain: when one is due, and writing it.

Part of AuditDB (station/audit/database.py), which supplies the connection, the lock,
`_transaction`, `_append`, `_read`, `_head` and `_checkpointed`: the last event id covered by
the newest checkpoint this process knows of. Whether a checkpoint is due is decided from that
counter in memory, without a query; the decision is checked again inside the checkpoint's own
transaction, where another process's newer checkpoint shows.
"""
from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric import ec

from station.audit import checkpoint as cp
from station.audit.chain import utc_timestamp
from station.audit.errors import CheckpointFailed


class CheckpointRecords:
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
        # The checkpoint-written event itself is not counted towards the next one.
        if self._signer is None or event_id - self._checkpointed - 1 < self._every:
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
            self._checkpointed = max(self._checkpointed, last_covered)
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
        # Durable now (unless nested in a caller's record, whose failure would stop the
        # station anyway): the next checkpoint is due `every` events after this one.
        self._checkpointed = max(self._checkpointed, head_id)
        return row["id"]

    def _last_checkpointed(self) -> int:
        rows = self._read("SELECT COALESCE(MAX(last_event_id), 0) AS n FROM checkpoints")
        return rows[0]["n"]

