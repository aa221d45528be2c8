"""Operators and batches (work orders) in the audit database.

Part of AuditDB (station/audit/database.py), which supplies the connection, the lock,
`_transaction`, `_append`, `_read` and `_checkpoint_if_due`.
"""
from __future__ import annotations

from station.audit import recovery
from station.audit.chain import utc_timestamp
from station.audit.fields import hex_digest
from station.errors import PolicyRefusal


class BatchRecords:
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

        One batch, one running process: the batch is held by this writer session until it
        closes; a batch held by another live session (a second `station run` on it) is refused.

        Raises: PolicyRefusal("batch-closed") if the batch was closed (never reopened);
        PolicyRefusal("batch-busy") if another live process runs it;
        PolicyRefusal("batch-mismatch") if it is open with another model or manifest;
        AuditWriteFailed; ValueError (empty batch_id or model, bad manifest hash).
        """
        if not batch_id or not model:
            raise ValueError("batch_id and model must not be empty")
        manifest = hex_digest(manifest_sha256, "manifest_sha256") if manifest_sha256 else None
        data = {"model": model, "expected_count": expected_count, "manifest_sha256": manifest}
        with self._transaction():
            row = self._conn.execute(
                "SELECT status, closed_at, model, manifest_sha256, holder_session FROM batches "
                "WHERE batch_id = ?", (batch_id,)).fetchone()
            if row and row[0] == "closed":
                raise PolicyRefusal("batch-closed", f"batch {batch_id} was closed at {row[1]} "
                                    "and cannot be reopened; open a new batch")
            if row and (row[2], row[3]) != (model, manifest):
                raise PolicyRefusal("batch-mismatch", f"batch {batch_id} is open for model "
                                    f"{row[2]} with manifest {row[3]}; refusing model {model} "
                                    f"with manifest {manifest}")
            if row and row[4] and row[4] != self.session_id:
                self._refuse_if_held(batch_id, row[4])
            if row is None:
                self._db["batches"].insert({
                    "batch_id": batch_id, "station_id": self.station_id, "model": model,
                    "operator": operator, "expected_count": expected_count,
                    "manifest_sha256": manifest, "status": "open",
                    "opened_at": utc_timestamp(), "holder_session": self.session_id})
            else:
                self._db["batches"].update(batch_id, {"holder_session": self.session_id})
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


    def devices_passed_in_batch(self, batch_id: str) -> int:
        """How many devices of `batch_id` are `passed` (for a resumed batch's expected count).

        Raises: AuditUnreadable.
        """
        rows = self._read("SELECT COUNT(*) AS n FROM devices WHERE batch_id = ? AND state = 'passed'",
                          (batch_id,))
        return rows[0]["n"]

    def _refuse_if_held(self, batch_id: str, holder: str) -> None:
        if holder not in recovery.live_sessions(self._conn, self.session_id):
            return  # its process is gone (crash or normal end): the batch may be resumed
        where = self._conn.execute("SELECT hostname, pid FROM sessions WHERE session_id = ?",
                                   (holder,)).fetchone() or ("?", "?")
        raise PolicyRefusal("batch-busy", f"batch {batch_id} is being run by another station "
                            f"process (pid {where[1]} on {where[0]}); one batch runs in one "
                            "process at a time")
