"""The contract between the engine and a device family.

A driver speaks one family's wire protocol over an open transport. The engine calls the
methods in this order: identify -> request_csr -> write_object (cert, chain, anchors) ->
commit -> prove -> (lock). Every method either returns or raises a `station.link.errors`
exception (a `StationError`) whose message an operator can read; none blocks forever.
A new device family is one more module in this package, not a new `if` in the engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol

ProvisioningState = Literal["blank", "provisioned", "locked"]
ObjectKind = Literal["cert", "chain", "anchors"]


@dataclass(frozen=True)
class DeviceIdentity:
    """What a device says about itself in the handshake."""

    device_id: str  # stable unique id (chip UID), as the device reports it
    model: str
    hw_rev: str
    fw_version: str
    state: ProvisioningState
    protocol_version: str
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CommitReceipt:
    """SHA-256 of each object the device says it stored, keyed by ObjectKind: `hashes` of the
    objects as the engine gave them (what the pipeline compares), `held` of the form the device
    holds where the driver sent another encoding of the same certificates (the compact
    extension's DER chain), already checked against the device's answer. The audit records
    what the device holds."""

    hashes: dict[str, bytes]
    held: dict[str, bytes] = field(default_factory=dict)


class DeviceDriver(Protocol):
    family: ClassVar[str]

    def identify(self) -> DeviceIdentity:
        """Handshake; returns the identity. Raises if the protocol version is unsupported."""

    def request_csr(self, subject_der: bytes) -> bytes:
        """Ask the device to generate a key pair and return a DER CSR for this DER subject."""

    def write_object(self, kind: ObjectKind, data: bytes) -> None:
        """Stage one object on the device (cert: DER; chain and anchors: PEM bundles)."""

    def commit(self) -> CommitReceipt:
        """Atomically commit the staged objects; returns the device's hashes of them."""

    def stored(self) -> CommitReceipt:
        """The hashes of the objects a provisioned device stores now (nothing staged, nothing
        changed): how the station settles a certificate whose commit outcome it does not know."""

    def prove(self, nonce: bytes) -> bytes:
        """Have the device sign `nonce` with its new key; returns a DER signature."""

    def lock(self) -> None:
        """Irreversibly disable further provisioning."""

    def close(self) -> None:
        """Release the transport."""
