"""The tamper-evident chain-of-custody audit database (docs/audit.md).

Public API: AuditDB (the writer), verify() / VerifyReport (offline check), the errors, and
the certificate statuses.
"""
from station.audit.database import AuditDB
from station.audit.errors import (AuditTampered, AuditUnreadable, AuditWriteFailed,
                                  CheckpointFailed)
from station.audit.statuses import CERTIFICATE_STATUSES, DEVICE_STATES
from station.audit.verify import VerifyReport, verify

__all__ = ["AuditDB", "AuditTampered", "AuditUnreadable", "AuditWriteFailed",
           "CheckpointFailed", "CERTIFICATE_STATUSES", "DEVICE_STATES", "VerifyReport",
           "verify"]
