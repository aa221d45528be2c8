"""The steps one device goes through in a slot, from identify to PASS.

    identify -> bind (label, manifest, re-provisioning rule) -> keygen (CSR for the subject the
    profile dictates) -> issue (policy, durable record, HSM sign, verify) -> write (certificate,
    chain) -> commit (hashes compared) -> prove (nonce signed by the new key) -> lock (optional)
    -> PASS

Any failure ends the device in FAIL with the step and an operator-readable reason, and leaves
the audit database telling the same story: the device `failed`, a certificate that may not
have reached the device `undelivered`. Nothing here touches another slot.
"""
from __future__ import annotations

import hashlib
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from hsm.errors import HSMError
from station.audit import AuditWriteFailed
from station.drivers.base import DeviceDriver, DeviceIdentity
from station.engine.events import (DeviceFailed, DeviceIdentified, DevicePassed, OverrideApproved, SlotStateChanged,
                                   StepFinished, StepStarted)
from station.errors import PolicyRefusal, StationError
from station.issuance import IssuedCertificate
from station.link.errors import DeviceIntegrityError
from station.profile import DeviceRef

if TYPE_CHECKING:
    from station.engine.engine import Engine

# A device counts as provisioned by this station once a certificate of it was verified (the
# device proved it holds the key). A certificate delivered but never verified belongs to an
# interrupted or failed attempt: re-inserting the device provisions it afresh.
_PASSED_STATUSES = {"verified"}


class StepFailed(Exception):
    """Ends the pipeline: `step` failed for `reason` (code: a stable tag for the audit)."""

    def __init__(self, step: str, reason: str, code: str = ""):
        super().__init__(reason)
        self.step, self.reason, self.code = step, reason, code


@dataclass
class Outcome:
    slot: str
    port: str
    passed: bool
    device_id: str | None = None
    label: str | None = None
    step: str | None = None
    reason: str | None = None
    serial: int | None = None
    duration_s: float = 0.0
    took_unit: bool = False


class DevicePipeline:
    def __init__(self, engine: "Engine", slot: str, port: str, driver: DeviceDriver):
        self.engine, self.slot, self.port, self.driver = engine, slot, port, driver
        self.audit = engine.station.audit
        self.identity: DeviceIdentity | None = None
        self.label: str | None = None
        self.issued: IssuedCertificate | None = None
        self.delivered = False
        self.took_unit = False  # counts against the batch's expected count
        self._ref: DeviceRef | None = None  # the identity the subject is rendered from
        self._written: dict[str, bytes] = {}  # what was staged on the device, by kind

    # -- plumbing --------------------------------------------------------------------

    @property
    def device_id(self) -> str | None:
        return self.identity.device_id if self.identity else None

    @contextmanager
    def step(self, name: str):
        self.engine.emit(StepStarted(slot=self.slot, step=name, device_id=self.device_id))
        start = time.monotonic()
        try:
            yield
        except StepFailed:
            raise
        except AuditWriteFailed as exc:
            self.engine.halt(str(exc))
            raise StepFailed(name, f"audit database write failed, issuance halted: {exc}", "audit-write-failed")
        except PolicyRefusal as exc:
            raise StepFailed(name, str(exc), exc.code)
        except (StationError, HSMError) as exc:
            code = getattr(exc, "code", "") or type(exc).__name__
            if isinstance(exc, HSMError):
                self.engine.halt(f"HSM failure: {exc}")
            raise StepFailed(name, str(exc), code)
        except Exception as exc:  # a bug must fail one device, not the line
            raise StepFailed(name, f"internal error ({type(exc).__name__}: {exc})", "internal-error")
        self.engine.emit(StepFinished(slot=self.slot, step=name, device_id=self.device_id, ok=True,
                                      duration_s=time.monotonic() - start))

    # -- the flow --------------------------------------------------------------------

    def run(self) -> Outcome:
        start = time.monotonic()
        try:
            self._identify()
            self._bind()
            csr = self._keygen()
            self._issue(csr)
            self._write()
            self._commit()
            self._prove()
            if self.engine.line.lock:
                with self.step("lock"):
                    self.driver.lock()
        except StepFailed as failure:
            return self._fail(failure, time.monotonic() - start)
        return self._pass(time.monotonic() - start)

    def _identify(self) -> None:
        with self.step("identify"):
            identity = self.driver.identify()
            self.identity = identity
            self.engine.emit(DeviceIdentified(slot=self.slot, device_id=identity.device_id, model=identity.model,
                                              hw_rev=identity.hw_rev, fw_version=identity.fw_version,
                                              state=identity.state))
            self.engine.emit(SlotStateChanged(slot=self.slot, state="busy", device_id=identity.device_id))
            self.audit.upsert_device(identity.device_id, model=identity.model, hw_rev=identity.hw_rev,
                                     fw_version=identity.fw_version, label=None,
                                     batch_id=self.engine.batch.batch_id, state="detected")

    def _bind(self) -> None:
        with self.step("bind"):
            identity, batch = self.identity, self.engine.batch
            if identity.state == "locked":
                raise PolicyRefusal("device-locked", f"device {identity.device_id} is locked; it cannot be provisioned")
            if identity.model != batch.model:
                raise PolicyRefusal("wrong-model", f"device reports model {identity.model}, "
                                                   f"batch {batch.batch_id} is for {batch.model}")
            source = self.engine.line.label_source
            if source == "device-id":
                label = identity.device_id
            elif source == "scan":
                label = batch.label_for(identity.device_id, self.engine.wait_for_label(self.slot, identity.device_id))
            else:
                label = batch.label_for(identity.device_id, None)
            self._check_reprovision(identity)
            self.engine.claim_label(label, identity.device_id)
            batch.take_unit(identity.device_id)
            self.took_unit = True
            self.label = label
            self.audit.upsert_device(identity.device_id, model=identity.model, hw_rev=identity.hw_rev,
                                     fw_version=identity.fw_version, label=label, batch_id=batch.batch_id,
                                     state="in-flight")

    def _check_reprovision(self, identity: DeviceIdentity) -> None:
        history = self.audit.certificates_for_device(identity.device_id)
        passed = [c for c in history if c["status"] in _PASSED_STATUSES]
        # A device that reports a certificate while this station has none in flight for it was
        # provisioned elsewhere or earlier: treated like a passed one.
        provisioned_elsewhere = identity.state == "provisioned" and not history
        if not passed and not provisioned_elsewhere:
            return  # blank, or only interrupted/undelivered attempts: provision afresh
        what = (f"certificate 0x{passed[-1]['serial_hex']} already {passed[-1]['status']}" if passed
                else "device reports a certificate this station never issued")
        supervisor = self.engine.override_for(self.slot, identity.device_id)
        if self.engine.line.reprovision != "supervisor" or supervisor is None:
            hint = ("; re-provisioning needs a supervisor override" if self.engine.line.reprovision == "supervisor"
                    else "; re-provisioning is disabled ([line] reprovision = \"refuse\")")
            raise PolicyRefusal("already-provisioned", f"device {identity.device_id} is already provisioned "
                                                       f"({what}){hint}")
        self.engine.emit(OverrideApproved(slot=self.slot, device_id=identity.device_id, supervisor=supervisor,
                                          what=f"re-provision: {what}"))

    def _keygen(self) -> bytes:
        with self.step("keygen"):
            ref = DeviceRef(device_id=self.identity.device_id, label=self.label, model=self.engine.batch.model)
            subject = self.engine.station.issuer.subject_for(ref)
            self._ref = ref
            return self.driver.request_csr(subject.public_bytes())

    def _issue(self, csr: bytes) -> None:
        with self.step("issue"):
            self.engine.check_not_halted()
            self.issued = self.engine.station.issuer.issue(
                csr, self._ref, batch_id=self.engine.batch.batch_id, slot=self.slot,
                operator=self.engine.batch.operator)

    def _write(self) -> None:
        with self.step("write"):
            self._written = {"cert": self.issued.der, "chain": self.engine.station.ca.chain_pem()}
            for kind, data in self._written.items():
                self.driver.write_object(kind, data)

    def _commit(self) -> None:
        with self.step("commit"):
            receipt = self.driver.commit()
            for kind, data in self._written.items():
                got = receipt.hashes.get(kind)
                if got != hashlib.sha256(data).digest():
                    shown = got.hex()[:16] + "..." if got else "nothing"
                    # The cip driver already compares; this check holds for every family's
                    # driver, whatever its own diligence.
                    raise DeviceIntegrityError(
                        "COMMIT", f"device stored {kind} with SHA-256 {shown}, not what was sent "
                        f"({hashlib.sha256(data).hexdigest()[:16]}...)", port=self.port)
            self.audit.set_certificate_status(self.issued.serial, "delivered", reason=f"committed on {self.port}")
            self.delivered = True

    def _prove(self) -> None:
        with self.step("prove"):
            nonce = os.urandom(32)
            signature = self.driver.prove(nonce)
            public_key = self.issued.certificate.public_key()
            try:
                if isinstance(public_key, ec.EllipticCurvePublicKey):
                    public_key.verify(signature, nonce, ec.ECDSA(hashes.SHA256()))
                elif isinstance(public_key, rsa.RSAPublicKey):
                    public_key.verify(signature, nonce, padding.PKCS1v15(), hashes.SHA256())
                else:
                    raise DeviceIntegrityError("PROVE", "proof of possession is not defined for this key type",
                                               port=self.port)
            except (InvalidSignature, ValueError):
                raise DeviceIntegrityError("PROVE", "proof of possession failed: the device's signature over the "
                                           "station's nonce does not verify with the certificate's key",
                                           port=self.port) from None
            self.audit.set_certificate_status(self.issued.serial, "verified", reason="proof of possession verified")

    # -- endings ---------------------------------------------------------------------

    def _pass(self, duration: float) -> Outcome:
        try:
            self.audit.set_device_state(self.device_id, "passed")
        except AuditWriteFailed as exc:
            self.engine.halt(str(exc))
            return self._fail(StepFailed("pass", f"audit database write failed: {exc}", "audit-write-failed"),
                              duration)
        serial_hex = format(self.issued.serial, "x")
        self.engine.emit(DevicePassed(slot=self.slot, device_id=self.device_id, label=self.label,
                                      serial_hex=serial_hex, fingerprint_sha256=self.issued.fingerprint_sha256,
                                      duration_s=duration))
        return Outcome(slot=self.slot, port=self.port, passed=True, device_id=self.device_id, label=self.label,
                       serial=self.issued.serial, duration_s=duration, took_unit=self.took_unit)

    def _fail(self, failure: StepFailed, duration: float) -> Outcome:
        self.engine.emit(StepFinished(slot=self.slot, step=failure.step, device_id=self.device_id, ok=False,
                                      duration_s=0.0, detail=failure.reason))
        self._record_failure(failure)
        self.engine.emit(DeviceFailed(slot=self.slot, device_id=self.device_id, step=failure.step,
                                      reason=failure.reason, code=failure.code, duration_s=duration))
        return Outcome(slot=self.slot, port=self.port, passed=False, device_id=self.device_id, label=self.label,
                       step=failure.step, reason=failure.reason,
                       serial=self.issued.serial if self.issued else None, duration_s=duration,
                       took_unit=self.took_unit)

    def _record_failure(self, failure: StepFailed) -> None:
        """Make the database tell the same story. Best effort: if the database itself is what
        failed, the engine is already halted and the next start's recovery closes the gaps."""
        try:
            if self.issued is not None:
                # Signed but not confirmed on the device (or proof failed): it must not count.
                self.audit.set_certificate_status(self.issued.serial, "undelivered",
                                                  reason=f"{failure.step}: {failure.reason}")
            if self.identity is not None:
                self.audit.set_device_state(self.identity.device_id, "failed",
                                            reason=f"{failure.step}: {failure.reason}")
        except (AuditWriteFailed, PolicyRefusal, ValueError) as exc:
            self.engine.halt(f"audit database write failed while recording a failure: {exc}")

