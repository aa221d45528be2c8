"""Writes engine events into the hash-chained audit log.

Unlike display subscribers it is called synchronously by the engine before anyone else sees
the event, and its failures are not swallowed: if the audit cannot be written, the engine
halts issuance (no step happens that the log does not know about)."""
from __future__ import annotations

import dataclasses

from station.engine import events as ev

# Events whose content is already recorded by the pipeline's own audit calls (device and
# certificate rows, each of which logs its own event), or that are display-only.
_NOT_LOGGED = (ev.SlotStateChanged, ev.BatchCounterChanged, ev.StepStarted)
# A device's progress, which decides nothing: in the chain at once, durable with the next
# COMMIT (the caller does not wait for its fsync). Every decision (bind, the certificate's
# reservation and issue, pass, fail, an override) is a durable record, and a durable record is
# only durable once everything before it is (docs/audit.md, "What is durable when").
_PROGRESS = (ev.StepFinished, ev.DeviceIdentified, ev.DeviceAttached, ev.LineRate)


class AuditWriter:
    def __init__(self, audit, batch_id: str, operator: str):
        self.audit, self.batch_id, self.operator = audit, batch_id, operator

    def record(self, event: ev.Event) -> None:
        if isinstance(event, _NOT_LOGGED):
            return
        # Events are flat (a dict at most): a shallow read of the fields, not asdict()'s deep
        # copy, which cost a few percent of the station's CPU on a saturated line.
        data = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)
                if f.name not in ("slot", "device_id")}
        if isinstance(event, ev.OverrideApproved):
            operator = event.supervisor
        else:
            operator = self.operator
        self.audit.log_event(event.kind, operator=operator, batch_id=self.batch_id,
                             slot=getattr(event, "slot", None), device_id=getattr(event, "device_id", None),
                             data=data, durable=not isinstance(event, _PROGRESS))
