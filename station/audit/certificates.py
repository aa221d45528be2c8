"""Certificates in the audit database: reservation before signing, the signed record, status
transitions (docs/audit.md).

Part of AuditDB (station/audit/database.py), which supplies the connection, the lock,
`_transaction`, `_append`, `_read` and `_checkpoint_if_due`.
"""
from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from station.audit import statuses as st
from station.audit.chain import serial_hex, utc_timestamp
from station.audit.fields import as_text, hex_digest
from station.errors import PolicyRefusal


class CertificateRecords:
    def public_key_known(self, spki_sha256: str) -> bool:
        """True if a certificate was ever reserved for this public key (SPKI DER SHA-256).

        Raises: ValueError (not a SHA-256 hex digest); AuditUnreadable.
        """
        digest = hex_digest(spki_sha256, "spki_sha256")
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
        digest = hex_digest(spki_sha256, "spki_sha256")
        device_id, batch_id, slot, operator = map(as_text, (device_id, batch_id, slot, operator))
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
        fingerprint = hex_digest(fingerprint_sha256, "fingerprint_sha256")
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
                               reason: str | None = None, durable: bool = True) -> None:
        """Move a certificate to `status` along an allowed transition (docs/audit.md).
        `delivered` also supersedes the device's earlier certificates (an earlier one that
        was never signed becomes `void`). `durable=False`: the change is in the chain when this
        returns and durable with the next COMMIT, not waited for (database.py); only for a
        change crash recovery restores by itself if it is lost.

        Raises: PolicyRefusal("certificate-unknown") / ("certificate-status") for a
        transition that is not allowed; ValueError (unknown status); AuditWriteFailed.
        """
        if status not in st.CERTIFICATE_STATUSES:
            raise ValueError(f"unknown certificate status {status!r}; expected one of "
                             f"{', '.join(st.CERTIFICATE_STATUSES)}")
        serial_text = serial_hex(serial)
        with self._transaction(durable):
            row = self._certificate_row(serial_text)
            event_id = self._change_status(row, status, reason)
            if status == st.DELIVERED and row["device_id"]:
                event_id = self._supersede_older(row) or event_id
        self._checkpoint_if_due(event_id)

    def settle_stored(self, device_id: str, stored_cert_sha256: str | None) -> dict:
        """Settle what this database says the device holds with what the device reports it
        stores (`stored_cert_sha256`: SHA-256 of the DER certificate it holds, None when it
        holds none). Of the device's certificates in `unknown` or `delivered`, the one stored
        becomes (or stays) `delivered` - superseding the device's older ones - and the others
        become `undelivered`. One transaction; each change is logged with its reason.

        Returns: {"delivered": [serial int...], "undelivered": [serial int...]}.
        Raises: AuditWriteFailed; ValueError (not a SHA-256 hex digest).
        """
        stored = hex_digest(stored_cert_sha256, "stored_cert_sha256") if stored_cert_sha256 else None
        result = {"delivered": [], "undelivered": []}
        shown = f"SHA-256 {stored[:16]}..." if stored else "no certificate"
        event_id = None
        with self._transaction():
            cur = self._conn.execute(
                "SELECT * FROM certificates WHERE device_id = ? AND status IN (?, ?) "
                "ORDER BY reserved_at, serial", (as_text(device_id), st.UNKNOWN, st.DELIVERED))
            names = [d[0] for d in cur.description]
            for row in [dict(zip(names, values)) for values in cur.fetchall()]:
                if stored is not None and row["fingerprint_sha256"] == stored:
                    if row["status"] == st.UNKNOWN:
                        event_id = self._change_status(row, st.DELIVERED, f"device reports it stores "
                                                       f"this certificate ({shown})")
                        event_id = self._supersede_older({**row, "status": st.DELIVERED}) or event_id
                        result["delivered"].append(int(row["serial"], 16))
                else:
                    event_id = self._change_status(row, st.UNDELIVERED, f"device reports it stores "
                                                   f"{shown}, not this certificate")
                    result["undelivered"].append(int(row["serial"], 16))
        if event_id is not None:
            self._checkpoint_if_due(event_id)
        return result

    def _certificate_row(self, serial_text: str) -> dict:
        cur = self._conn.execute("SELECT * FROM certificates WHERE serial = ?", (serial_text,))
        values = cur.fetchone()
        if values is None:
            raise PolicyRefusal("certificate-unknown", f"no certificate 0x{serial_text} "
                                "in the audit database")
        return dict(zip([d[0] for d in cur.description], values))

    def _change_status(self, row: dict, status: str, reason: str | None) -> int:
        current = row["status"]
        # One rule for the writer and for verify's replay: a signed certificate exists, so it
        # can be revoked or superseded, never voided.
        if not st.transition_allowed(current, status, signed=bool(row["cert_pem"])):
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


    def certificates_for_device(self, device_id: str) -> list[dict]:
        """All certificates ever reserved for `device_id`, oldest first.

        Returns: one dict per certificate with the table's columns (docs/audit.md); `serial`
        is the int, `serial_hex` the stored text.
        Raises: AuditUnreadable.
        """
        rows = self._read("SELECT * FROM certificates WHERE device_id = ? "
                          "ORDER BY reserved_at, serial", (as_text(device_id),))
        for row in rows:
            row["serial_hex"] = row["serial"]
            row["serial"] = int(row["serial"], 16)
        return rows



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


