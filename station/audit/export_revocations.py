"""The certificates that must not stay usable, for the CRL and for AWS IoT (docs/ca.md,
"Revocation").

A signed certificate that was never confirmed on a device (`undelivered`; `unknown`: its
COMMIT was interrupted) or that re-provisioning replaced (`superseded`) still exists and would
authenticate whoever holds its key. `station ca crl` moves them to `revoked` (each change an
audit event, the RFC 5280 reason as status_reason), numbers the CRL from the audit
(`crl-issued` events) and lists every revoked certificate; `station audit export --revocations`
lists the same serials with their AWS certificate ids (SHA-256 of the DER certificate).
"""
from __future__ import annotations

import datetime as dt
import json
from hashlib import sha256
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from station.audit import statuses as st
from station.atomic_file import atomic_output
from station.audit.export import csv_text
from station.audit.export_selection import reading, rows

# Status -> the RFC 5280 reason the CRL gives. Unconfirmed certificates were never put into
# service on a device; superseded ones were replaced by the device's newer certificate.
TO_REVOKE = {st.UNDELIVERED: x509.ReasonFlags.cessation_of_operation,
             st.UNKNOWN: x509.ReasonFlags.cessation_of_operation,
             st.SUPERSEDED: x509.ReasonFlags.superseded}
LISTED = (*TO_REVOKE, st.REVOKED)
FIELDS = ("serial", "aws_certificate_id", "device_id", "batch_id", "status", "reason", "since")


def reason_for(status: str, status_reason: str | None) -> x509.ReasonFlags:
    if status in TO_REVOKE:
        return TO_REVOKE[status]
    try:
        return x509.ReasonFlags(status_reason)
    except ValueError:
        return x509.ReasonFlags.unspecified


def revocations(conn) -> list[dict]:
    """Every signed certificate to revoke or revoked, oldest first (FIELDS)."""
    marks = ", ".join("?" * len(LISTED))
    return [{"serial": r["serial"], "aws_certificate_id": r["fingerprint_sha256"], "device_id": r["device_id"],
             "batch_id": r["batch_id"], "status": r["status"],
             "reason": reason_for(r["status"], r["status_reason"]).value, "since": r["updated_at"]}
            for r in rows(conn, f"SELECT * FROM certificates WHERE status IN ({marks}) AND cert_pem IS NOT NULL "
                                "ORDER BY reserved_at, serial", LISTED)]


def write_revocations(db_path: Path, out_path: Path, fmt: str) -> int:
    """The list for `aws iot update-certificate --new-status REVOKED`, as csv or json."""
    with reading(db_path) as conn:
        listed = revocations(conn)
    with atomic_output(out_path) as out:
        out.write(csv_text(listed) if fmt == "csv" else json.dumps(listed, indent=1) + "\n")
    return len(listed)


def last_crl_number(conn) -> int:
    found = conn.execute("SELECT data FROM events WHERE kind = 'crl-issued' ORDER BY id DESC LIMIT 1").fetchone()
    return json.loads(found[0])["crl_number"] if found else 0


def issue_crl(station, out_path: Path, *, next_update_days: int) -> tuple[int, int]:
    """Revoke what must be revoked, sign the CRL with the issuing key and record it.
    `station` is an open station (boot.open_station). Returns (CRL number, entries)."""
    from hsm.crl import Revoked, build_crl

    db_path = station.audit.path
    with reading(db_path) as conn:
        pending = [r for r in revocations(conn) if r["status"] in TO_REVOKE]
    for row in pending:
        station.audit.set_certificate_status(int(row["serial"], 16), st.REVOKED, reason=row["reason"])
    with reading(db_path) as conn:
        number = last_crl_number(conn) + 1
        listed = revocations(conn)
    entries = [Revoked(int(r["serial"], 16), dt.datetime.fromisoformat(r["since"]), x509.ReasonFlags(r["reason"]))
               for r in listed]
    crl = build_crl(station.ca, entries, number=number, next_update_days=next_update_days)
    der = crl.public_bytes(serialization.Encoding.DER)
    with atomic_output(out_path, "wb") as out:
        out.write(crl.public_bytes(serialization.Encoding.PEM))
        # Recorded (durably) before the file is renamed into place: a CRL the audit does not
        # know is never published. If the record fails, the temporary file goes with it.
        station.audit.log_event("crl-issued", operator="cli", data={
            "crl_number": number, "entries": len(entries), "revoked_now": [r["serial"] for r in pending],
            "this_update": crl.last_update_utc.isoformat(), "next_update": crl.next_update_utc.isoformat(),
            "sha256": sha256(der).hexdigest()})
    return number, len(entries)
