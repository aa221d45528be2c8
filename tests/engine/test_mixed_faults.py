"""A line with many faults at once: 24 devices through 8 slots, a third of them faulty in
different ways at the same time. Whatever happens, the invariants hold: every healthy device
passes, no faulty device whose fault is fatal passes, every certificate found on any device is
in the audit, a passed device's certificate is verified, and the chain verifies."""
from __future__ import annotations

import io
import sqlite3

from cryptography import x509

from station.audit import verify
from station.headless import run_batch
from station.sim import SimulatedLine
from tests.engine.conftest import MODEL, slots_for, write_manifest

# Faults that must end in FAIL, and faults the driver's resends are allowed to recover from.
FATAL = ["stall@KEYGEN", "bad-csr-signature", "wrong-subject", "weak-key", "commit-fail", "wrong-hash",
         "powerloss@COMMIT", "disconnect@PROVE", "bad-proof", "disconnect@HELLO"]
RECOVERABLE = ["corrupt@PUT", "corrupt@GET", "garbage@PROVE", "corrupt@COMMIT"]


def test_many_faults_at_once_keep_every_invariant(engine_config, tmp_path):
    faults = {i * 2: [spec] for i, spec in enumerate(FATAL + RECOVERABLE[:2])}
    faults.update({21: [RECOVERABLE[2]], 23: [RECOVERABLE[3]]})
    out = io.StringIO()
    with SimulatedLine(24, tmp_path / "devices", keygen_ms=20, model=MODEL, faults=faults) as line:
        manifest = write_manifest(tmp_path / "manifest.csv", line)
        summary = run_batch(engine_config, batch_id="WO-MIX", model=MODEL, operator="op",
                            slots=slots_for(line.ports, 8), manifest=manifest, out=out)
        ids = [d.identity.device_id for d in line.devices]
    db = sqlite3.connect(engine_config.audit.database)
    known = {x509.load_pem_x509_certificate(pem.encode()).serial_number: status
             for pem, status in db.execute("select cert_pem, status from certificates where cert_pem is not null")}
    state = dict(db.execute("select device_id, state from devices"))
    for index, device_id in enumerate(ids):
        spec = faults.get(index, [None])[0]
        if spec is None or spec in RECOVERABLE:
            assert state.get(device_id) == "passed", (device_id, spec, out.getvalue())
        if spec in FATAL:
            assert state.get(device_id) != "passed", (device_id, spec)
        cert_path = tmp_path / "devices" / device_id / "cert.pem"
        if cert_path.exists():
            serial = x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number
            assert serial in known, f"{device_id} holds a certificate the audit does not know"
            if state.get(device_id) == "passed":
                assert known[serial] == "verified"
    assert summary.passed == 24 - len(FATAL)
    assert verify(engine_config.audit.database).ok
