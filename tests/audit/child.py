"""A separate station process for the failure and crash tests: `python child.py MODE DIR`.

It prints one line per step so the parent can act at a known point without timing.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from station.audit import AuditDB, AuditUnreadable, AuditWriteFailed, verify  # noqa: E402
from tests.audit.conftest import STATION, build_certificate, spki_sha256  # noqa: E402


def say(*words) -> None:
    print(*words, flush=True)


def try_open(directory: Path) -> None:
    try:
        AuditDB.open(directory / "audit.db", station_id=STATION).close()
        say("opened")
    except AuditWriteFailed as exc:
        say("AuditWriteFailed", exc)


def fill_disk(directory: Path) -> None:
    written = 0
    with AuditDB.open(directory / "audit.db", station_id=STATION) as db:
        try:
            while True:
                db.log_event("padding", data={"pad": "p" * 4000})
                written += 1
        except AuditWriteFailed as exc:
            say("AuditWriteFailed", exc)
    report = verify(directory / "audit.db")
    say("written", written, "verify", report.ok, report.events_checked)


def crash(directory: Path) -> None:
    """Leave one certificate delivered, one issued, one reserved and a device in flight, then
    write events until killed."""
    ca = ec.generate_private_key(ec.SECP256R1())
    db = AuditDB.open(directory / "audit.db", station_id=STATION)
    db.log_station_start("ab" * 32, ["cd" * 32], "test")
    for n, stop in enumerate(("delivered", "issued", "reserved"), start=1):
        device = f"D{n}"
        db.upsert_device(device, model="m", hw_rev="A", fw_version="1", label=None,
                         batch_id=None, state="in-flight")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = build_certificate(ca, key, 1000 + n, device)
        db.reserve_certificate(serial=cert.serial, spki_sha256=spki_sha256(key.public_key()),
                               subject=f"CN={device}", device_id=device, slot=str(n))
        if stop != "reserved":
            db.complete_certificate(cert.serial, cert_pem=cert.pem,
                                    fingerprint_sha256=cert.fingerprint,
                                    not_before=cert.cert.not_valid_before_utc,
                                    not_after=cert.cert.not_valid_after_utc)
        if stop == "delivered":
            db.set_certificate_status(cert.serial, "delivered")
            db.set_device_state(device, "passed")
    say("ready")
    n = 0
    while True:
        n += 1
        db.log_event("progress", slot="3", device_id="D3", data={"n": n, "pad": "x" * 500})
        say(n)


def check(directory: Path) -> None:
    try:
        report = verify(directory / "audit.db")
        say("ok" if report.ok else "bad", report.events_checked)
    except AuditUnreadable as exc:
        say("AuditUnreadable", exc)


def burst(directory: Path) -> None:
    """Wait for "go" on stdin, then append 60 events as fast as possible."""
    with AuditDB.open(directory / "audit.db", station_id=STATION) as db:
        say("ready")
        sys.stdin.readline()
        for n in range(60):
            db.log_event("burst", data={"pid": os.getpid(), "n": n})
    say("done")


if __name__ == "__main__":
    mode, where = sys.argv[1], Path(sys.argv[2])
    {"open": try_open, "fill": fill_disk, "crash": crash, "burst": burst, "verify": check}[mode](where)
