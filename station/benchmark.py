"""`station bench issue`: how fast the token signs and how fast the station issues;
`station bench manifest`: how fast a batch manifest loads.

The benchmark always runs on a throwaway development station in a temporary directory (its
own SoftHSM2 token): it never signs with a real CA key, because a benchmark certificate
signed by the production CA would be a valid identity for a device that does not exist.

Figures, from one run:
  raw_signs_per_s        CKM_ECDSA P-256 signatures of a 32-byte digest through python-pkcs11
  issuances_per_s        full issuances: CSR parse and signature check, policy, subject, build,
                         HSM sign, verify against the issuing CA (issuance record in memory)
  durable_issuances_per_s  the same with the real SQLite audit record (WAL, synchronous=FULL:
                         two fsyncs per certificate), i.e. what the line actually gets
  manifest_load_s        Manifest.load of a generated manifest (device_id,label; every line
                         parsed, validated and checked for duplicates)
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Mechanism

from station.boot import open_station
from station.config import load_config
from station.engine.batch import Manifest
from station.errors import PolicyRefusal
from station.issuance import Issuer
from station.policy import IssuancePolicy
from station.profile import DeviceRef
from station.workdir import init_station


# Issue 10's target for one process on the 2-core machine (docs/performance.md).
TARGET_ISSUANCES_PER_S = 2000


class _MemoryRecord:
    """Issuance record for the in-memory figure: same uniqueness rule, no disk."""

    def __init__(self):
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    def public_key_known(self, spki_sha256: str) -> bool:
        return spki_sha256 in self._keys

    def reserve_certificate(self, *, spki_sha256: str, **_):
        with self._lock:
            if spki_sha256 in self._keys:
                raise PolicyRefusal("key-reused", "public key already certified")
            self._keys.add(spki_sha256)

    def complete_certificate(self, serial, **_):
        pass

    def set_certificate_status(self, serial, status, **_):
        pass


def _requests(issuer: Issuer, count: int, prefix: str) -> list[tuple[bytes, DeviceRef]]:
    out = []
    for i in range(count):
        device = DeviceRef(device_id=f"{prefix}{i:012X}", label=f"B{prefix}{i}", model="BENCH")
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (x509.CertificateSigningRequestBuilder().subject_name(issuer.subject_for(device))
               .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
        out.append((csr, device))
    return out


def _run(issuer: Issuer, work: list[tuple[bytes, DeviceRef]], threads: int) -> float:
    chunks = [work[i::threads] for i in range(threads)]
    errors: list[BaseException] = []

    def worker(items):
        try:
            for csr, device in items:
                issuer.issue(csr, device)
        except BaseException as exc:  # reported after the run
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return len(work) / elapsed


def _checks_floor(issuer: Issuer, ca_certificate: x509.Certificate, work: list[tuple[bytes, DeviceRef]],
                  raw_signs_per_s: float) -> float:
    """Issuances/s if an issuance did nothing but its three signature operations: the token's
    sign, the check of the CSR's own signature (policy) and the check of the issued
    certificate against the CA (the token's answer is never trusted unchecked). Building the
    certificate, the second CSR parser and the records come on top: no implementation of the
    same checks can beat this figure on this machine."""
    [(csr, device)] = _requests(issuer, 1, "F")
    certificate = issuer.issue(csr, device).certificate
    n = min(len(work), 500)
    start = time.perf_counter()
    for der, _ in work[:n]:
        x509.load_der_x509_csr(der).is_signature_valid  # noqa: B018 (the check is the work timed)
    csr_check = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for _ in range(n):
        certificate.verify_directly_issued_by(ca_certificate)
    certificate_check = (time.perf_counter() - start) / n
    return 1 / (1 / raw_signs_per_s + csr_check + certificate_check)


def bench_issue(count: int = 2000, threads: int = 2, durable_count: int = 200, progress=lambda msg: None) -> dict:
    with tempfile.TemporaryDirectory(prefix="station-bench-") as tmp:
        progress("creating a throwaway station with its own SoftHSM2 token")
        cfg = load_config(init_station(Path(tmp), station_id="bench", warn=lambda m: None))
        with open_station(cfg) as station:
            token, label = station.token, cfg.hsm.issuing_key_label
            digest = os.urandom(32)
            raw_n = max(count, 1000)
            token.sign_raw(label, Mechanism.ECDSA, digest)  # warm the handle cache
            start = time.perf_counter()
            for _ in range(raw_n):
                token.sign_raw(label, Mechanism.ECDSA, digest)
            raw = raw_n / (time.perf_counter() - start)

            progress(f"preparing {count + durable_count} device CSRs")
            memory_issuer = Issuer(ca=station.ca, profile=cfg.profile, policy=IssuancePolicy(cfg.policy),
                                   record=_MemoryRecord())
            work = _requests(memory_issuer, count, "A")
            durable_work = _requests(station.issuer, durable_count, "D")
            progress("issuing")
            single = _run(memory_issuer, work[: count // 2], 1)
            multi = _run(memory_issuer, work[count // 2:], threads)
            durable = _run(station.issuer, durable_work, threads)
            floor = _checks_floor(memory_issuer, station.ca.certificate, work, raw)
    best = max(single, multi)
    return {
        "raw_signs_per_s": round(raw, 1),
        "issuances_per_s": round(best, 1),
        "issuances_per_s_1_thread": round(single, 1),
        f"issuances_per_s_{threads}_threads": round(multi, 1),
        "durable_issuances_per_s": round(durable, 1),
        "full_over_raw": round(best / raw, 3),
        "checks_floor_issuances_per_s": round(floor, 1),
        "target_issuances_per_s": TARGET_ISSUANCES_PER_S,
        "meets_target": best >= TARGET_ISSUANCES_PER_S,
        "count": count,
        **machine_and_time(),
    }


def machine_and_time() -> dict:
    return {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_implementation()} "
                   f"{platform.python_version()}, {platform.system()} {platform.release()}",
        "when": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def bench_manifest(lines: int = 1_000_000, progress=lambda msg: None) -> dict:
    """Write a manifest of `lines` devices to a temporary file and time Manifest.load on it."""
    with tempfile.TemporaryDirectory(prefix="station-bench-") as tmp:
        path = Path(tmp) / "manifest.csv"
        progress(f"writing a manifest of {lines} devices")
        Manifest.write(path, ((f"{i:016X}", f"L-{i:08d}") for i in range(lines)))
        size = path.stat().st_size
        progress("loading it")
        start = time.perf_counter()
        manifest = Manifest.load(path)
        elapsed = time.perf_counter() - start
    return {
        "lines": lines,
        "devices_loaded": len(manifest.labels),
        "bytes": size,
        "manifest_load_s": round(elapsed, 3),
        "lines_per_s": round(lines / elapsed, 1),
        **machine_and_time(),
    }
