"""Devices in the audit database: their record and state.

Part of AuditDB (station/audit/database.py), which supplies the connection, the lock,
`_transaction`, `_append`, `_read` and `_checkpoint_if_due`.
"""
from __future__ import annotations

from station.audit import recovery
from station.audit import statuses as st
from station.audit.chain import utc_timestamp
from station.audit.fields import as_text
from station.errors import PolicyRefusal


class DeviceRecords:
    def upsert_device(self, device_id: str, *, model: str, hw_rev: str, fw_version: str,
                      label: str | None, batch_id: str | None, state: str,
                      durable: bool = True) -> None:
        """Create or update a device and log a `device-recorded` event with all its fields.
        Marking it `in-flight` is refused while another live writer has it in flight: checked
        inside the write, under SQLite's write lock, so two station processes cannot both
        take one device (the engine's earlier check only refuses sooner). `durable=False`:
        checked and written now, durable with the next COMMIT, not waited for (database.py).

        Raises: PolicyRefusal("device-in-flight"); AuditWriteFailed; ValueError (empty
        device_id, unknown state).
        """
        if device_id is None or device_id == "":
            raise ValueError("device_id must not be empty")
        _check_device_state(state)
        device_id = as_text(device_id)
        fields = {"model": model, "hw_rev": hw_rev, "fw_version": fw_version, "label": label,
                  "batch_id": as_text(batch_id), "state": state}
        with self._transaction(durable):
            if state == st.IN_FLIGHT:
                holder = _in_flight_elsewhere(self._conn, device_id, self.session_id)
                if holder:
                    raise PolicyRefusal("device-in-flight", f"device {device_id} is being provisioned "
                                                            f"by another station process ({holder})")
            self._db["devices"].upsert({
                "device_id": device_id, "station_id": self.station_id, "reason": None,
                "session_id": self.session_id, "updated_at": utc_timestamp(), **fields},
                pk="device_id")
            event_id = self._append("device-recorded", batch_id=batch_id, device_id=device_id,
                                    data=fields)
        self._checkpoint_if_due(event_id)

    def set_device_state(self, device_id: str, state: str, *, reason: str | None = None,
                         durable: bool = True) -> None:
        """Move a device to `state` (detected, in-flight, passed, failed, interrupted).
        `durable=False`: as for upsert_device.

        Raises: ValueError (unknown device or state); AuditWriteFailed.
        """
        _check_device_state(state)
        with self._transaction(durable):
            event_id = self._set_device_state(device_id, state, reason)
        self._checkpoint_if_due(event_id)

    def _set_device_state(self, device_id: str, state: str, reason: str | None) -> int:
        device_id = as_text(device_id)
        row = self._conn.execute("SELECT state, batch_id FROM devices WHERE device_id = ?",
                                 (device_id,)).fetchone()
        if row is None:
            raise ValueError(f"unknown device {device_id!r}: record it with upsert_device first")
        self._db["devices"].update(device_id, {"state": state, "reason": reason,
                                               "session_id": self.session_id,
                                               "updated_at": utc_timestamp()})
        return self._append("device-state-changed", batch_id=row[1], device_id=device_id,
                            data={"from": row[0], "to": state, "reason": reason})


    def device_in_flight_elsewhere(self, device_id: str) -> str | None:
        """If another live writer (a second station process on this database) has `device_id`
        in flight, say which ("pid N on HOST"); else None. A dead writer's in-flight device is
        crash recovery's business, not a reason to refuse.

        Raises: AuditUnreadable.
        """
        with self._reading() as conn:
            return _in_flight_elsewhere(conn, as_text(device_id), self.session_id)

    def devices_with_label(self, label: str) -> list[dict]:
        """Every device this database has bound to `label` (a label belongs to one device).

        Returns: dicts with the devices table's columns. Raises: AuditUnreadable.
        """
        return self._read("SELECT * FROM devices WHERE label = ? ORDER BY device_id", (label,))



def _check_device_state(state: str) -> None:
    if state not in st.DEVICE_STATES:
        raise ValueError(f"unknown device state {state!r}; expected one of "
                         f"{', '.join(st.DEVICE_STATES)}")


def _in_flight_elsewhere(conn, device_id: str, session_id: str) -> str | None:
    """"pid N on HOST" of a live writer other than `session_id` holding `device_id` in flight."""
    row = conn.execute(
        "SELECT d.session_id, s.hostname, s.pid FROM devices d JOIN sessions s "
        "ON s.session_id = d.session_id WHERE d.device_id = ? AND d.state = ?",
        (device_id, st.IN_FLIGHT)).fetchone()
    if row is None or row[0] == session_id or row[0] not in recovery.live_sessions(conn, session_id):
        return None
    return f"pid {row[2]} on {row[1]}"
