"""Fixtures for the audit tests: real SQLite files in tmp_path, software EC keys standing in
for the HSM audit key (the API takes any ec.EllipticCurvePrivateKey), real certificates."""
from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from station.audit import AuditDB

STATION = "line1-station3"


@dataclass
class Issued:
    serial: int
    spki_sha256: str
    pem: str
    fingerprint: str
    cert: x509.Certificate


def spki_sha256(public_key) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


@pytest.fixture(scope="session")
def ca_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def audit_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "audit.db"


@pytest.fixture
def audit_db(db_path):
    db = AuditDB.open(db_path, station_id=STATION)
    yield db
    db.close()


def build_certificate(ca_key, device_key, serial: int, device_id: str) -> Issued:
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(device_id))])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(device_key.public_key()).serial_number(serial)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=365))
            .sign(ca_key, hashes.SHA256()))
    return Issued(serial, spki_sha256(device_key.public_key()),
                  cert.public_bytes(serialization.Encoding.PEM).decode(),
                  cert.fingerprint(hashes.SHA256()).hex(), cert)


@pytest.fixture
def issue(ca_key):
    """issue(db, device_id, status="delivered") -> Issued: the engine's path through the
    audit API for one device (reserve, sign, complete, then status steps)."""
    serials = iter(range(0x1000, 0x100000))

    def _issue(db: AuditDB, device_id: str, status: str = "delivered", *, slot="1",
               batch_id=None) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        issued = build_certificate(ca_key, key, next(serials) << 100, device_id)
        db.reserve_certificate(serial=issued.serial, spki_sha256=issued.spki_sha256,
                               subject=f"CN={device_id}", device_id=device_id,
                               batch_id=batch_id, slot=slot, operator="op7")
        if status == "reserved":
            return issued
        db.complete_certificate(issued.serial, cert_pem=issued.pem,
                                fingerprint_sha256=issued.fingerprint,
                                not_before=issued.cert.not_valid_before_utc,
                                not_after=issued.cert.not_valid_after_utc)
        for step in {"issued": [], "delivered": ["delivered"],
                     "verified": ["delivered", "verified"]}[status]:
            db.set_certificate_status(issued.serial, step)
        return issued

    return _issue
