"""`station bench export`: how long the QA exports of one large batch take, and how much memory
they need (docs/performance.md, "QA export").

The batch is synthetic but built the way a line writes it: the real schema, the real chain
encoding, ~17 events per device in a run's order, a real certificate per device (each device
key distinct, signed by a throwaway software CA) and a signed checkpoint every 1000 events.
Checkpoints and the bundle manifest are signed with a throwaway software key, never a token
key (docs/ca.md, "Why the benchmark never uses the real CA key"). Each export, and the
offline check of the bundle, runs in a fresh interpreter so that its peak memory is its own.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import multiprocessing
import os
import platform
import resource
import sqlite3
import tempfile
import time
from pathlib import Path

import sqlite_utils
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hsm.ca import AUDIT_SIGNING_EKU, key_usage
from station.audit import checkpoint as cp
from station.audit.chain import GENESIS_HASH, canonical_json, event_hash, utc_timestamp
from station.audit.schema import create_schema

STATION = "bench-station"
STEP_SECONDS = {"identify": 0.02, "bind": 0.003, "keygen": 0.3, "issue": 0.03, "write": 0.15, "commit": 0.06,
                "prove": 0.04}


class _Writer:
    """Appends chained events (and checkpoints every 1000) inside one transaction."""

    def __init__(self, conn: sqlite3.Connection, audit_key, every: int = 1000):
        self.conn, self.key, self.every = conn, audit_key, every
        self.head, self.prev, self.since_checkpoint, self.checkpoints = 0, GENESIS_HASH, 0, 0
        self.clock = dt.datetime(2026, 11, 23, 6, 0, tzinfo=dt.timezone.utc)

    def event(self, kind: str, *, batch_id=None, slot=None, device_id=None, operator=None, data=None) -> None:
        self.clock += dt.timedelta(milliseconds=40)
        row = {"id": self.head + 1, "ts": utc_timestamp(self.clock), "station_id": STATION, "kind": kind,
               "operator": operator, "batch_id": batch_id, "slot": slot, "device_id": device_id,
               "data": canonical_json(data or {}).decode(), "prev_hash": self.prev}
        row["hash"] = event_hash(row)
        self.conn.execute("INSERT INTO events (id, ts, station_id, kind, operator, batch_id, slot, device_id, data, "
                          "prev_hash, hash) VALUES (:id, :ts, :station_id, :kind, :operator, :batch_id, :slot, "
                          ":device_id, :data, :prev_hash, :hash)", row)
        self.head, self.prev = row["id"], row["hash"]
        if kind != "checkpoint-written":
            self.since_checkpoint += 1
            if self.since_checkpoint >= self.every:
                self.checkpoint()

    def checkpoint(self) -> None:
        self.checkpoints += 1
        row = {"id": self.checkpoints, "station_id": STATION, "last_event_id": self.head,
               "last_event_hash": self.prev, "event_count": self.head, "ts": utc_timestamp(self.clock),
               "key_id": cp.key_id(self.key.public_key())}
        row["signature"] = cp.sign(self.key, row)
        self.conn.execute("INSERT INTO checkpoints VALUES (:id, :station_id, :last_event_id, :last_event_hash, "
                          ":event_count, :ts, :key_id, :signature)", row)
        self.since_checkpoint = 0
        self.event("checkpoint-written", data={
            "checkpoint_id": row["id"], "last_event_id": row["last_event_id"],
            "signature_sha256": hashlib.sha256(bytes.fromhex(row["signature"])).hexdigest()})


def _throwaway_ca():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench throwaway CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(key_usage("key_cert_sign", "crl_sign"), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _audit_certificate(ca_key, ca_cert, audit_key) -> x509.Certificate:
    """An audit-signing certificate shaped as hsm.ca.certify_audit_key makes it, so the bundle
    verifies under the throwaway CA as its anchor."""
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{STATION} audit checkpoints")]))
            .issuer_name(ca_cert.subject).public_key(audit_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(ca_cert.not_valid_before_utc)
            .not_valid_after(ca_cert.not_valid_after_utc)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage("digital_signature"), critical=True)
            .add_extension(x509.ExtendedKeyUsage([AUDIT_SIGNING_EKU]), critical=False)
            .sign(ca_key, hashes.SHA256()))


def build_batch(path: Path, devices: int, batch_id: str = "WO-BENCH", progress=lambda m: None) -> tuple:
    """Write a synthetic audit database of one batch of `devices` devices. Returns (CA
    certificate, audit key, audit certificate)."""
    ca_key, ca_cert = _throwaway_ca()
    audit_key = ec.generate_private_key(ec.SECP256R1())
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN")
    create_schema(sqlite_utils.Database(conn))
    conn.execute("INSERT INTO meta VALUES ('station_id', ?)", (STATION,))
    conn.execute("INSERT INTO stations (station_id, created_at, config_sha256, ca_fingerprints, software_version) "
                 "VALUES (?, ?, ?, ?, ?)", (STATION, utc_timestamp(), "0" * 64, "[]", "bench"))
    w = _Writer(conn, audit_key)
    w.event("batch-opened", batch_id=batch_id, operator="op-1", data={"model": "SIM-1", "expected_count": devices})
    for n in range(devices):
        if n and n % 1000 == 0:
            progress(f"{n} devices written")
        device_id, slot, label = f"{n:016X}", f"S{n % 8 + 1}", f"L-{n:08d}"
        common = {"batch_id": batch_id, "slot": slot, "device_id": device_id, "operator": "op-1"}
        w.event("device-attached", batch_id=batch_id, slot=slot, operator="op-1", data={"port": f"/dev/ttyUSB{n % 8}"})
        w.event("device-identified", **common, data={"model": "SIM-1", "hw_rev": "A", "fw_version": "1.0.0",
                                                     "state": "blank"})
        w.event("device-recorded", batch_id=batch_id, device_id=device_id, data={
            "model": "SIM-1", "label": label, "batch_id": batch_id, "state": "in-flight"})
        for step in ("identify", "bind", "keygen"):
            w.event("step-finished", **common, data={"step": step, "ok": True, "duration_s": STEP_SECONDS[step],
                                                     "detail": ""})
        key = ec.generate_private_key(ec.SECP256R1())
        spki = hashlib.sha256(key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()
        serial = x509.random_serial_number()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"SIM-1-{device_id}")])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
                .public_key(key.public_key()).serial_number(serial).not_valid_before(ca_cert.not_valid_before_utc)
                .not_valid_after(ca_cert.not_valid_after_utc).sign(ca_key, hashes.SHA256()))
        pem, sha = cert.public_bytes(serialization.Encoding.PEM).decode(), cert.fingerprint(hashes.SHA256()).hex()
        serial_hex = format(serial, "x")
        w.event("certificate-reserved", **common, data={"serial": serial_hex, "spki_sha256": spki,
                                                        "subject": subject.rfc4514_string(), **common,
                                                        "status": "reserved"})
        w.event("certificate-issued", **common, data={"serial": serial_hex, "status": "issued", "cert_pem": pem,
                                                      "fingerprint_sha256": sha})
        for step in ("issue", "write"):
            w.event("step-finished", **common, data={"step": step, "ok": True, "duration_s": STEP_SECONDS[step],
                                                     "detail": ""})
        w.event("certificate-status-changed", **common, data={"serial": serial_hex, "from": "issued",
                                                              "to": "delivered", "reason": "committed"})
        w.event("step-finished", **common, data={"step": "commit", "ok": True, "duration_s": 0.06, "detail": ""})
        w.event("certificate-status-changed", **common, data={"serial": serial_hex, "from": "delivered",
                                                              "to": "verified", "reason": "proof verified"})
        w.event("step-finished", **common, data={"step": "prove", "ok": True, "duration_s": 0.04, "detail": ""})
        w.event("device-passed", **common, data={"label": label, "serial_hex": serial_hex,
                                                 "fingerprint_sha256": sha, "duration_s": 0.6})
        conn.execute("INSERT INTO devices (device_id, station_id, model, label, batch_id, state, updated_at) "
                     "VALUES (?, ?, 'SIM-1', ?, ?, 'passed', ?)", (device_id, STATION, label, batch_id, utc_timestamp(w.clock)))
        conn.execute("INSERT INTO certificates (serial, spki_sha256, station_id, subject, device_id, batch_id, slot, "
                     "operator, status, status_reason, cert_pem, fingerprint_sha256, reserved_at, updated_at) VALUES "
                     "(?, ?, ?, ?, ?, ?, ?, 'op-1', 'verified', 'proof verified', ?, ?, ?, ?)",
                     (serial_hex, spki, STATION, subject.rfc4514_string(), device_id, batch_id, slot, pem, sha,
                      utc_timestamp(), utc_timestamp()))
    w.event("batch-closed", batch_id=batch_id, data={"certificates": {"verified": devices}})
    w.checkpoint()
    conn.execute("COMMIT")
    conn.close()
    return ca_cert, audit_key, _audit_certificate(ca_key, ca_cert, audit_key)


def _export_child(fmt: str, db: str, out: str, pems: tuple[bytes, bytes, bytes], queue) -> None:
    """Run one export in this fresh interpreter; report seconds and peak RSS (MiB)."""
    from station.audit.bundle import write_bundle
    from station.audit.export import write_csv, write_jsonl
    from station.audit.export_selection import Selection

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    selection = Selection(batch="WO-BENCH")
    start = time.perf_counter()
    if fmt == "csv":
        write_csv(Path(db), selection, Path(out))
    elif fmt == "jsonl":
        write_jsonl(Path(db), selection, Path(out))
    elif fmt == "bundle":
        key = serialization.load_pem_private_key(pems[0], None)
        write_bundle(Path(db), selection, Path(out), signer=key, audit_certificate_pem=pems[1],
                     ca_chain_pem=pems[2])
    elif fmt == "verify":  # the bundle written before, checked offline
        from station.audit.bundle_verify import verify_bundle

        verify_bundle(Path(out), x509.load_pem_x509_certificate(pems[2]))
    elapsed = time.perf_counter() - start
    queue.put((elapsed, before / 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def bench_export(devices: int = 10_000, progress=lambda m: None) -> dict:
    """Build a batch of `devices` and time each export format in a fresh process."""
    figures: dict = {"devices": devices}
    with tempfile.TemporaryDirectory(prefix="station-bench-export-") as tmp:
        db = Path(tmp) / "audit.db"
        progress(f"writing a synthetic audit of {devices} devices")
        start = time.perf_counter()
        ca_cert, audit_key, audit_cert = build_batch(db, devices, progress=progress)
        figures["build_s"] = round(time.perf_counter() - start, 1)
        with sqlite3.connect(db) as conn:
            figures["events"] = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        figures["database_mib"] = round(db.stat().st_size / 2**20, 1)
        pems = (audit_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()),
                audit_cert.public_bytes(serialization.Encoding.PEM), ca_cert.public_bytes(serialization.Encoding.PEM))
        spawn = multiprocessing.get_context("spawn")
        for fmt in ("csv", "jsonl", "bundle", "verify"):
            progress(f"exporting {fmt}" if fmt != "verify" else "verifying the bundle offline")
            out = Path(tmp) / f"export.{'bundle' if fmt == 'verify' else fmt}"
            queue = spawn.Queue()
            child = spawn.Process(target=_export_child, args=(fmt, str(db), str(out), pems, queue))
            child.start()
            elapsed, base, peak = queue.get(timeout=3600)
            child.join()
            figures[f"{fmt}_s"] = round(elapsed, 2)
            figures[f"{fmt}_peak_rss_mib"] = round(peak, 1)
            figures[f"{fmt}_rss_growth_mib"] = round(peak - base, 1)
            figures[f"{fmt}_output_mib"] = round(out.stat().st_size / 2**20, 1)
    figures["machine"] = (f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
                          f"{platform.system()} {platform.release()}")
    figures["when"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return figures
