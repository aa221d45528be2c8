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
from typing import Protocol

from hsm.errors import HSMError
from station.audit import AuditWriteFailed
from station.audit import statuses as st
from station.config import LineConfig
from station.drivers.base import DeviceDriver, DeviceIdentity
from station.engine.batch import Batch
from station.engine.events import (DeviceFailed, DeviceIdentified, DevicePassed, Event, LineRate, OverrideApproved,
                                   SlotStateChanged, StepFinished, StepStarted)
from station.errors import PolicyRefusal, StationError
from station.issuance import IssuedCertificate
from station.link.errors import DeviceDisconnected, DeviceIntegrityError, DeviceProtocolError, DeviceTimeout
from station.profile import DeviceRef
from station.proof import proof_failure

# A COMMIT that failed in one of these ways may or may not have been carried out (the request
# may have arrived and only the answer been lost): the certificate's fate is unknown until the
# device's next contact. An `ERR` answer or a hash mismatch is a definite outcome.
_COMMIT_OUTCOME_UNKNOWN = (DeviceTimeout, DeviceDisconnected, DeviceProtocolError)


class SlotHost(Protocol):
    """What a pipeline needs from the line that runs it (the engine): the narrow interface, so
    the pipeline never reaches back into the engine's internals."""

    station: object  # .audit, .issuer, .ca (station.boot.Station)
    batch: Batch
    line: LineConfig
    anchors: object  # station.engine.anchors.TrustAnchors | None

    def emit(self, event: Event) -> None: ...
    def halt(self, reason: str) -> None: ...
    def check_not_halted(self) -> None: ...
    def wait_for_label(self, slot: str, device_id: str) -> str: ...
    def override_for(self, slot: str) -> str | None: ...
    def claim_device(self, device_id: str, slot: str) -> None: ...
    def claim_label(self, label: str, device_id: str) -> None: ...


class StepFailed(Exception):
    """Ends the pipeline: `step` failed for `reason` (code: a stable tag for the audit)."""

    def __init__(self, step: str, reason: str, code: str):
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
    def __init__(self, engine: SlotHost, slot: str, port: str, driver: DeviceDriver):
        self.engine, self.slot, self.port, self.driver = engine, slot, port, driver
        self.audit = engine.station.audit
        self.identity: DeviceIdentity | None = None
        self.label: str | None = None
        self.issued: IssuedCertificate | None = None
        self.bound = False  # the device's record was taken for this attempt (state in-flight)
        self.commit_unknown = False  # the COMMIT's outcome is not known (settled at next contact)
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
            if identity.extra.get("line"):  # a baud switch, made or failed (cip's compact extension)
                self.engine.emit(LineRate(slot=self.slot, device_id=identity.device_id, line=identity.extra["line"]))
            self.engine.emit(SlotStateChanged(slot=self.slot, state="busy", device_id=identity.device_id))
            # The identity is recorded by the DeviceIdentified event. The device's row is not
            # touched until bind accepts it: a refused device keeps the record it had.

    def _bind(self) -> None:
        with self.step("bind"):
            identity, batch = self.identity, self.engine.batch
            # One identity in one slot: a clone (or a chip whose UID read returns a constant) in
            # another slot is refused here, before it generates a key.
            self.engine.claim_device(identity.device_id, self.slot)
            elsewhere = self.audit.device_in_flight_elsewhere(identity.device_id)
            if elsewhere:
                raise PolicyRefusal("device-in-flight", f"device {identity.device_id} is being provisioned "
                                                        f"by another station process ({elsewhere})")
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
            self._check_reprovision(identity, self._settle(identity))
            self.engine.claim_label(label, identity.device_id)
            batch.take_unit(identity.device_id)
            self.took_unit = True
            self.label = label
            # Not waited for: nothing outside the station depends on it until the certificate's
            # reservation, a durable record that commits it too. Another process cannot take
            # the device meanwhile: our open group holds SQLite's write lock, and its own mark
            # checks ours inside its write.
            self.audit.upsert_device(identity.device_id, model=identity.model, hw_rev=identity.hw_rev,
                                     fw_version=identity.fw_version, label=label, batch_id=batch.batch_id,
                                     state="in-flight", durable=False)
            self.bound = True

    def _settle(self, identity: DeviceIdentity) -> str | None:
        """Make the database name the certificate the device holds before deciding anything on
        it: a certificate whose commit outcome is unknown (answer lost, station killed) or that
        is recorded delivered is checked against what the device reports it stores.

        Returns: the SHA-256 (hex) of the certificate the device stores, None if it holds none."""
        stored = None
        if identity.state == "provisioned":
            digest = self.driver.stored().hashes.get("cert")
            if not digest:
                # A provisioned device holds a certificate by definition (COMMIT stores one):
                # one that names none cannot be judged, so it is refused, never provisioned anew.
                raise DeviceIntegrityError("STORED", "the device says it is provisioned but reports no "
                                           "stored certificate", port=self.port)
            stored = digest.hex()
        if any(c["status"] in (st.UNKNOWN, st.DELIVERED)
               for c in self.audit.certificates_for_device(identity.device_id)):
            self.audit.settle_stored(identity.device_id, stored)
        return stored

    def _check_reprovision(self, identity: DeviceIdentity, stored: str | None) -> None:
        history = self.audit.certificates_for_device(identity.device_id)
        # A device holding a certificate of this station (delivered or verified) is provisioned,
        # whether or not its proof ran: re-provisioning it needs a supervisor (docs/engine.md).
        passed = [c for c in history if c["status"] in st.HELD]
        # A device that stores a certificate this station never issued was provisioned
        # elsewhere (another station, another CA): treated like a provisioned one.
        provisioned_elsewhere = stored is not None and stored not in {c["fingerprint_sha256"] for c in history}
        if not passed and not provisioned_elsewhere:
            return  # blank, or only interrupted/undelivered attempts: provision afresh
        what = (f"certificate 0x{passed[-1]['serial_hex']} already {passed[-1]['status']}" if passed
                else "device reports a certificate this station never issued")
        supervisor = self.engine.override_for(self.slot)
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
            if self.engine.anchors is not None:
                self._written["anchors"] = self.engine.anchors.pem
            for kind, data in self._written.items():
                self.driver.write_object(kind, data)

    def _commit(self) -> None:
        with self.step("commit"):
            try:
                receipt = self.driver.commit()
            except _COMMIT_OUTCOME_UNKNOWN as exc:
                self.commit_unknown = True
                self.audit.set_certificate_status(self.issued.serial, st.UNKNOWN,
                                                  reason=f"commit outcome unknown: {exc}")
                raise
            for kind, data in self._written.items():
                got = receipt.hashes.get(kind)
                if got != hashlib.sha256(data).digest():
                    shown = got.hex()[:16] + "..." if got else "nothing"
                    # The cip driver already compares; this check holds for every family's
                    # driver, whatever its own diligence.
                    raise DeviceIntegrityError(
                        "COMMIT", f"device stored {kind} with SHA-256 {shown}, not what was sent "
                        f"({hashlib.sha256(data).hexdigest()[:16]}...)", port=self.port)
            # Not waited for: if a crash loses it, the certificate is `issued`, which recovery
            # turns into `unknown` and the device's next contact settles. A durable record
            # before LOCK or PASS makes it durable in any case.
            self.audit.set_certificate_status(self.issued.serial, st.DELIVERED, reason=f"committed on {self.port}",
                                              durable=False)
            # What the device now holds, object by object: the chain of custody QA exports. An
            # object the driver sent in another form (the compact extension's DER chain) is
            # recorded as held, with the hash of the form the station gave beside it.
            stored = {kind: hashlib.sha256(data).hexdigest() for kind, data in self._written.items()}
            for kind, digest in receipt.held.items():
                stored[f"{kind}_given"], stored[kind] = stored[kind], digest.hex()
            if self.engine.anchors is not None:
                stored["anchor_fingerprints"] = list(self.engine.anchors.fingerprints)
            self.audit.log_event("objects-committed", batch_id=self.engine.batch.batch_id, slot=self.slot,
                                 device_id=self.device_id, durable=False,
                                 data={"serial": format(self.issued.serial, "x"), "port": self.port, **stored})

    def _prove(self) -> None:
        with self.step("prove"):
            nonce = os.urandom(32)
            signature = self.driver.prove(nonce)
            failure = proof_failure(self.issued.certificate.public_key(), nonce, signature)
            if failure is not None:
                raise DeviceIntegrityError("PROVE", failure, port=self.port)
            # Durable before an irreversible LOCK; otherwise the durable `device-passed` that
            # follows makes it durable before the operator sees PASS.
            self.audit.set_certificate_status(self.issued.serial, st.VERIFIED, reason="proof of possession verified",
                                              durable=self.engine.line.lock)

    # -- endings ---------------------------------------------------------------------

    def _pass(self, duration: float) -> Outcome:
        try:
            # Made durable by the `device-passed` event, which is waited for before PASS shows.
            self.audit.set_device_state(self.device_id, "passed", durable=False)
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
            if self.issued is not None and not self.commit_unknown:
                # Signed but not confirmed on the device (or proof failed): it must not count.
                self.audit.set_certificate_status(self.issued.serial, st.UNDELIVERED,
                                                  reason=f"{failure.step}: {failure.reason}")
            if self.bound:
                # A device refused before bind keeps the record it had: the refusal is the
                # DeviceFailed event, not a rewrite of what the device is.
                self.audit.set_device_state(self.identity.device_id, "failed",
                                            reason=f"{failure.step}: {failure.reason}")
        except AuditWriteFailed as exc:
            self.engine.halt(f"audit database write failed while recording a failure: {exc}")
        except (PolicyRefusal, ValueError) as exc:
            # A transition the database refuses is a refusal with its reason, not a failed
            # write: the database is fine and the line goes on. The refusal is on record.
            self.audit.log_event("record-refused", batch_id=self.engine.batch.batch_id, slot=self.slot,
                                 device_id=self.device_id, data={"reason": str(exc), "step": failure.step})

