"""The audit's trust rests on the PKI, not on a key file beside it.

Real token (the session station: SoftHSM2, its audit key signing real checkpoints), real
SQLite, the real `station audit verify` in a subprocess. The attacker can write the whole
station directory: drop the triggers, edit an event, recompute every hash after it, re-sign
every checkpoint with a key of their own and replace the key or certificate files. Under
--trust-anchor that must fail; taken as given (no anchor) it cannot, and the output says so.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hsm.ca import AUDIT_SIGNING_EKU, certify_audit_key, key_usage
from station.audit import checkpoint as cp
from station.audit.chain import GENESIS_HASH, canonical_json, event_hash
from station.errors import ExitCode
from tests.ca.conftest import device, station  # noqa: F401 (the session's real station)
from tests.cli_runner import assert_clean_failure, run_station
from tests.csr_factory import make_csr

PEM = serialization.Encoding.PEM


def pem(*certs) -> bytes:
    return b"".join(c.public_bytes(PEM) for c in certs)


@pytest.fixture(scope="module")
def signed_copy_source(station, tmp_path_factory):
    """A copy of the station's own audit database, its last checkpoint signed by the token."""
    station.audit.log_event("anchor-test", operator="qa")
    station.audit.checkpoint()
    station.audit.log_event("anchor-test-after", operator="qa")
    path = tmp_path_factory.mktemp("anchor") / "source.db"
    with sqlite3.connect(station.cfg.audit.database) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    return path


@pytest.fixture
def db(signed_copy_source, tmp_path):
    path = tmp_path / "audit.db"
    with sqlite3.connect(signed_copy_source) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    return path


@pytest.fixture
def root(station, tmp_path):
    path = tmp_path / "root.pem"
    path.write_bytes(pem(station.ca.chain[-1]))
    return path


@pytest.fixture
def audit_cert(station):
    return station.cfg.audit.certificate


def forge(path, attacker: ec.EllipticCurvePrivateKey) -> None:
    """Everything an attacker with write access can do: edit event 2, rebuild the chain after
    it, re-sign every checkpoint with their key, fix each checkpoint-written record."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("UPDATE events SET operator = 'mallory' WHERE id = 2")
    checkpoints = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM checkpoints")}
    prev = GENESIS_HASH
    for row in [dict(r) for r in conn.execute("SELECT * FROM events ORDER BY id")]:
        if row["kind"] == "checkpoint-written":
            data = json.loads(row["data"])
            mark = checkpoints[data["checkpoint_id"]]
            mark["last_event_hash"] = prev
            mark["key_id"] = cp.key_id(attacker.public_key())
            mark["signature"] = cp.sign(attacker, mark)
            conn.execute("UPDATE checkpoints SET last_event_hash = ?, key_id = ?, signature = ? WHERE id = ?",
                         (mark["last_event_hash"], mark["key_id"], mark["signature"], mark["id"]))
            data["signature_sha256"] = hashlib.sha256(bytes.fromhex(mark["signature"])).hexdigest()
            row["data"] = canonical_json(data).decode()
        row["prev_hash"] = prev
        row["hash"] = prev = event_hash(row)
        conn.execute("UPDATE events SET data = ?, prev_hash = ?, hash = ? WHERE id = ?",
                     (row["data"], row["prev_hash"], row["hash"], row["id"]))
    conn.commit()
    conn.close()


def self_made(subject: x509.Name, issuer: x509.Name, public_key, signer, *, ca: bool,
              eku=(AUDIT_SIGNING_EKU,)) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
               .not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(key_usage(*(["key_cert_sign"] if ca else ["digital_signature"])), critical=True))
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    return builder.sign(signer, hashes.SHA256())


def forged_with_a_genuine_audit_certificate(db, station, tmp_path, station_id: str):
    """Forge the log with a new key the real issuing CA certified for `station_id` (someone
    held the PIN somewhere); returns the bundle file with that certificate and the chain."""
    mallory = ec.generate_private_key(ec.SECP256R1())
    cert = certify_audit_key(station.ca, mallory.public_key(), station_id=station_id,
                             organization="Example Devices Ltd")
    forge(db, mallory)
    bundle = tmp_path / "audit.pem"
    bundle.write_bytes(pem(cert, *station.ca.chain))
    return bundle


def verify(*args, **kwargs):
    return run_station("audit", "verify", *map(str, args), **kwargs)


def test_honest_audit_passes_under_the_trust_anchor(db, root, audit_cert):
    result = verify("--db", db, "--certificate", audit_cert, "--trust-anchor", root)
    assert result.returncode == ExitCode.OK, result.stderr
    assert "signatures verified against audit certificate 'CN=station-1 audit checkpoints" in result.stdout
    assert "anchored in 'CN=Example Devices Ltd Development Root CA" in result.stdout
    assert "UNANCHORED" not in result.stdout


def test_with_the_configuration_the_token_key_is_compared(station, db, root):
    result = verify("--db", db, "--trust-anchor", root, env={"STATION_CONFIG": str(station.cfg.path)})
    assert result.returncode == ExitCode.OK, result.stderr
    assert "the token's audit key 'audit' is the certified key" in result.stdout


def test_unanchored_key_is_said_plainly(db, station):
    result = verify("--db", db, "--public-key", station.cfg.audit.public_key)
    assert result.returncode == ExitCode.OK, result.stderr
    assert "signatures checked against an UNANCHORED key" in result.stdout
    assert "signatures verified" not in result.stdout


def test_forged_log_with_replaced_public_key_passes_unanchored_but_fails_anchored(db, root, audit_cert, tmp_path):
    mallory = ec.generate_private_key(ec.SECP256R1())
    forge(db, mallory)
    replaced = tmp_path / "audit-public.pem"  # the attacker overwrites [audit] public_key
    replaced.write_bytes(mallory.public_key().public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    unanchored = verify("--db", db, "--public-key", replaced)
    assert unanchored.returncode == ExitCode.OK, unanchored.stderr  # the limit the anchor closes
    assert "UNANCHORED" in unanchored.stdout and "signatures verified" not in unanchored.stdout

    anchored = verify("--db", db, "--certificate", audit_cert, "--trust-anchor", root)
    assert_clean_failure(anchored, ExitCode.REFUSED, "audit TAMPERED", "checkpoint 1: signature does not verify")


def test_forged_log_with_a_self_signed_audit_certificate_fails(db, root, station, tmp_path):
    mallory = ec.generate_private_key(ec.SECP256R1())
    forge(db, mallory)
    real = x509.load_pem_x509_certificates(station.cfg.audit.certificate.read_bytes())[0]
    fake = self_made(real.subject, real.subject, mallory.public_key(), mallory, ca=False)
    swapped = tmp_path / "audit.pem"
    swapped.write_bytes(pem(fake, *station.ca.chain))
    result = verify("--db", db, "--certificate", swapped, "--trust-anchor", root)
    assert_clean_failure(result, ExitCode.REFUSED, "audit key NOT TRUSTED", "does not chain to the trust anchor")


def test_forged_log_with_a_look_alike_ca_chain_fails(db, root, station, tmp_path):
    # The attacker rebuilds the whole chain under the real names with keys of their own.
    mallory = ec.generate_private_key(ec.SECP256R1())
    forge(db, mallory)
    fake_root_key, fake_issuing_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    issuing, real_root = station.ca.chain[0], station.ca.chain[-1]
    fake_root = self_made(real_root.subject, real_root.subject, fake_root_key.public_key(), fake_root_key, ca=True)
    fake_issuing = self_made(issuing.subject, real_root.subject, fake_issuing_key.public_key(), fake_root_key, ca=True)
    real = x509.load_pem_x509_certificates(station.cfg.audit.certificate.read_bytes())[0]
    fake = self_made(real.subject, issuing.subject, mallory.public_key(), fake_issuing_key, ca=False)
    swapped = tmp_path / "audit.pem"
    swapped.write_bytes(pem(fake, fake_issuing, fake_root))
    result = verify("--db", db, "--certificate", swapped, "--trust-anchor", root)
    assert_clean_failure(result, ExitCode.REFUSED, "audit key NOT TRUSTED", "does not chain to the trust anchor")


def test_a_device_certificate_from_the_real_ca_is_no_audit_certificate(db, root, station, device, tmp_path):
    # A rogue "device" gets its own key certified through the station's normal issuance.
    mallory = ec.generate_private_key(ec.SECP256R1())
    issued = station.issuer.issue(make_csr(station.issuer.subject_for(device), key=mallory), device)
    assert ExtendedKeyUsageOID.CLIENT_AUTH in issued.certificate.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    forge(db, mallory)
    swapped = tmp_path / "audit.pem"
    swapped.write_bytes(pem(issued.certificate, *station.ca.chain))
    result = verify("--db", db, "--certificate", swapped, "--trust-anchor", root)
    assert_clean_failure(result, ExitCode.REFUSED, "audit key NOT TRUSTED", "not an audit-signing certificate")


def test_an_audit_certificate_for_another_key_is_caught_by_the_token(db, root, station, tmp_path):
    # Someone with the PIN at the station had the real CA certify a key of their own: the chain
    # is genuine, only the token can tell it is not the station's audit key.
    swapped = forged_with_a_genuine_audit_certificate(db, station, tmp_path, "station-1")
    offline = verify("--db", db, "--certificate", swapped, "--trust-anchor", root)
    assert offline.returncode == ExitCode.OK, offline.stderr  # the documented limit without the token
    assert "token not checked" in offline.stdout
    at_station = verify("--db", db, "--certificate", swapped, "--trust-anchor", root,
                        env={"STATION_CONFIG": str(station.cfg.path)})
    assert_clean_failure(at_station, ExitCode.REFUSED, "audit key NOT TRUSTED",
                         "certifies another key than 'audit' on token 'station-ca'")


def test_a_trust_anchor_that_is_not_a_certificate_exits_2(db, audit_cert, tmp_path):
    bogus = tmp_path / "root.pem"
    bogus.write_text("not a certificate")
    result = verify("--db", db, "--certificate", audit_cert, "--trust-anchor", bogus)
    assert_clean_failure(result, ExitCode.USAGE, "is not a PEM certificate (trust anchor)")


def test_public_key_and_trust_anchor_exclude_each_other(db, root, station):
    result = verify("--db", db, "--public-key", station.cfg.audit.public_key, "--trust-anchor", root)
    assert result.returncode == ExitCode.USAGE
    assert "--public-key excludes --trust-anchor" in result.stderr


def test_a_certificate_without_an_anchor_is_refused(db, audit_cert):
    result = verify("--db", db, "--certificate", audit_cert)
    assert_clean_failure(result, ExitCode.USAGE, "--certificate needs --trust-anchor ROOT.pem")


def test_audit_certificate_profile(station):
    cert = x509.load_pem_x509_certificates(station.cfg.audit.certificate.read_bytes())[0]
    ext = cert.extensions
    assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ext.get_extension_for_class(x509.BasicConstraints).critical
    assert ext.get_extension_for_class(x509.KeyUsage).value == key_usage("digital_signature")
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [AUDIT_SIGNING_EKU]
    assert cert.issuer == station.ca.certificate.subject
    cert.verify_directly_issued_by(station.ca.certificate)
    assert cert.public_key() == station.token.public_key(station.cfg.hsm.audit_key_label)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "station-1 audit checkpoints"


def test_another_stations_audit_certificate_does_not_vouch_for_this_log(db, root, station, tmp_path):
    # Under one root every station's audit key is certified; station-2's key (held by its own
    # token) must not be able to re-sign station-1's log, even offline without the token.
    swapped = forged_with_a_genuine_audit_certificate(db, station, tmp_path, "station-2")
    result = verify("--db", db, "--certificate", swapped, "--trust-anchor", root)
    assert_clean_failure(result, ExitCode.REFUSED, "audit key NOT TRUSTED",
                         "checkpoints are signed for station 'station-1', the audit certificate is for station "
                         "'station-2'")
