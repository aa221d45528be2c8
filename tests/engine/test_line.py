"""A whole line: 16 simulated devices through 8 slots over real pseudo-terminals, the real
token and a real SQLite audit; then what ended up on every device is checked independently."""
from __future__ import annotations

import io
import sqlite3
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from station.audit import verify
from station.headless import run_batch
from station.sim import SimulatedLine
from tests.engine.conftest import MODEL, slots_for, write_manifest


def _spki(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_sixteen_devices_in_eight_slots_all_pass(engine_config, tmp_path):
    out = io.StringIO()
    with SimulatedLine(16, tmp_path / "devices", keygen_ms=20, model=MODEL) as line:
        manifest = write_manifest(tmp_path / "manifest.csv", line)
        summary = run_batch(engine_config, batch_id="WO-16", model=MODEL, operator="op-1",
                            slots=slots_for(line.ports, 8), manifest=manifest, expected=16, out=out)
        ids = [d.identity.device_id for d in line.devices]
    assert (summary.passed, summary.failed, summary.halted) == (16, 0, None), out.getvalue()
    lines = out.getvalue().splitlines()
    assert len([l for l in lines if l.startswith("PASS ")]) == 16
    assert {f"slot=S{i}" for i in range(1, 9)} == {l.split()[1] for l in lines}

    chain = engine_config.ca.chain
    root, issuing = tmp_path / "root.pem", tmp_path / "issuing.pem"
    pems = chain.read_bytes().split(b"-----END CERTIFICATE-----\n")
    issuing.write_bytes(pems[0] + b"-----END CERTIFICATE-----\n")
    root.write_bytes(pems[1] + b"-----END CERTIFICATE-----\n")
    db = sqlite3.connect(engine_config.audit.database)
    for device_id in ids:
        folder = tmp_path / "devices" / device_id
        cert = x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes())
        key = serialization.load_pem_private_key((folder / "key.pem").read_bytes(), None)
        assert _spki(key.public_key()) == _spki(cert.public_key()), "device key must match its certificate"
        assert (folder / "chain.pem").read_bytes() == chain.read_bytes()
        result = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", root, "-untrusted", issuing,
                                 folder / "cert.pem"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        status, label, pem = db.execute(
            "select c.status, d.label, c.cert_pem from certificates c join devices d using (device_id) "
            "where device_id = ?", (device_id,)).fetchone()
        assert status == "verified" and label == f"L-{device_id[-6:]}"
        assert x509.load_pem_x509_certificate(pem.encode()) == cert
    assert db.execute("select count(*) from devices where state = 'passed'").fetchone()[0] == 16
    assert db.execute("select status from batches where batch_id = 'WO-16'").fetchone()[0] == "closed"
    report = verify(engine_config.audit.database, serialization.load_pem_public_key(
        engine_config.audit.public_key.read_bytes()))
    assert report.ok, report.reason
    assert report.checkpoints_checked >= 1
