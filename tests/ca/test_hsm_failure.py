"""A token that returns a wrong signature: nothing is released, the reservation is voided and
the line halts (docs/architecture.md, invariants 5 and 6).

The token misbehaves for real: the CA object the station uses signs through a wrapper around
the real token signer (SoftHSM2, CKM_ECDSA) that flips one bit of the signature's r. Nothing
of the token or its C library is mocked; only the signature that comes back is wrong, as from
a faulty HSM or a corrupted transfer.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from hsm.ca import CertificateAuthority
from hsm.errors import SigningFailed
from hsm.signer import HsmEcPrivateKey
from station.audit import AuditDB, verify
from station.engine.events import DeviceAttached, DeviceFailed, DevicePassed, IssuanceHalted, StepStarted
from station.issuance import Issuer
from station.sim import SimulatedLine
from tests.csr_factory import make_csr
from tests.engine.conftest import MODEL, engine_config  # noqa: F401 (a fixture)
from tests.engine.test_pipeline_checks import run_line

SLOW_KEYGEN_MS = 1500  # long enough for the first device's failure to halt the line first


class FlippedSignature(HsmEcPrivateKey):
    """The real token signer whose every signature has one bit of r flipped. `before_signing`
    runs first (the line test uses it to hold the first signature until the other slots are
    past bind)."""

    def __init__(self, ca: CertificateAuthority, before_signing=lambda: None):
        super().__init__(ca.token, ca.issuing_label)
        self.before_signing = before_signing
        self.calls = 0

    def sign(self, data, signature_algorithm):
        self.calls += 1
        self.before_signing()
        r, s = decode_dss_signature(super().sign(data, signature_algorithm))
        return encode_dss_signature(r ^ 1, s)


def faulty_copy(ca: CertificateAuthority, **kw) -> CertificateAuthority:
    """A second CA object on the same token and chain whose signer returns wrong signatures
    (the session's own CA stays sound for the other tests)."""
    copy = CertificateAuthority(token=ca.token, issuing_label=ca.issuing_label, chain=ca.chain)
    copy._signer = FlippedSignature(copy, **kw)  # the one seam: what the CA signs with
    return copy


def test_a_wrong_signature_is_never_released_and_voids_the_reservation(station, device, tmp_path):
    with AuditDB.open(tmp_path / "audit.db", station_id="hsm-failure") as audit:
        issuer = Issuer(ca=faulty_copy(station.ca), profile=station.issuer.profile,
                        policy=station.issuer.policy, record=audit)
        csr = make_csr(issuer.subject_for(device))
        with pytest.raises(SigningFailed, match="does not verify against the issuing CA"):
            issuer.issue(csr, device)
        assert issuer.ca.signer.calls == 1
    db = sqlite3.connect(tmp_path / "audit.db")
    rows = db.execute("select status, status_reason, cert_pem from certificates").fetchall()
    assert len(rows) == 1
    status, reason, pem = rows[0]
    assert status == "void" and "does not verify" in reason and pem is None
    assert db.execute("select count(*) from events where kind = 'certificate-issued'").fetchone() == (0,)
    assert verify(tmp_path / "audit.db").ok


def test_a_wrong_signature_halts_the_line_and_devices_past_bind_get_no_certificate(engine_config, tmp_path):
    """S1's device reaches the HSM first; S2 and S3 are past bind (in KEYGEN) when the token
    returns the wrong signature. S1 fails at issue with SigningFailed and its reservation is
    void; the line halts; S2 and S3 then fail with issuance-halted; the devices queued behind
    them are never started. No device holds a certificate."""
    in_keygen, others_past_bind, faulty = set(), threading.Event(), []

    def watch(event):
        if isinstance(event, StepStarted) and event.step == "keygen" and event.slot != "S1":
            in_keygen.add(event.slot)
            if in_keygen == {"S2", "S3"}:
                others_past_bind.set()

    def hold_until_the_others_are_past_bind():
        assert others_past_bind.wait(30), "S2 and S3 never reached keygen"

    def install_the_faulty_token_signer(station):
        station.ca = station.issuer.ca = faulty_copy(station.ca, before_signing=hold_until_the_others_are_past_bind)
        faulty.append(station.ca.signer)

    with SimulatedLine(2, tmp_path / "fast", keygen_ms=20, model=MODEL) as fast, \
            SimulatedLine(4, tmp_path / "slow", keygen_ms=SLOW_KEYGEN_MS, model=MODEL) as slow:
        engine, events = run_line(engine_config, {"S1": fast.ports, "S2": slow.ports[0:2], "S3": slow.ports[2:4]},
                                  batch_id="WO-HSM", prepare=install_the_faulty_token_signer, watch=watch)
        queued = {fast.ports[1], slow.ports[1], slow.ports[3]}
    signatures_made = faulty[0].calls

    assert signatures_made == 1, "only the first device may reach the token"
    assert engine.halted and engine.halted.startswith("HSM failure: ")
    assert any(isinstance(e, IssuanceHalted) for e in events)
    assert not [e for e in events if isinstance(e, DevicePassed)]

    failed = {e.slot: e for e in events if isinstance(e, DeviceFailed)}
    assert set(failed) == {"S1", "S2", "S3"}
    assert (failed["S1"].step, failed["S1"].code) == ("issue", "SigningFailed")
    assert "does not verify against the issuing CA" in failed["S1"].reason
    for slot in ("S2", "S3"):
        assert (failed[slot].step, failed[slot].code) == ("issue", "issuance-halted"), failed[slot]

    attached = {e.port for e in events if isinstance(e, DeviceAttached)}
    assert not attached & queued, "a halted line starts no new device"

    db = sqlite3.connect(engine_config.audit.database)
    certs = db.execute("select device_id, status, cert_pem from certificates").fetchall()
    assert len(certs) == 1 and certs[0][1] == "void" and certs[0][2] is None, certs
    assert certs[0][0] == failed["S1"].device_id
    for store in (tmp_path / "fast", tmp_path / "slow"):
        held = list(Path(store).glob("*/cert.pem"))
        assert not held, f"a device received a certificate: {held}"
    assert verify(engine_config.audit.database).ok
