"""Fixtures for the simulator tests: a throwaway CA, and a minimal station side that drives a
Device through the codec exactly as bytes on a line would."""
from __future__ import annotations

import datetime
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from station.link.codec import (
    Frame, PayloadAssembler, chunk_payload, decode_frame, encode_frame, sha256_hex,
)
from station.sim.device import Device, Identity
from station.sim.faults import FaultPlan, FaultSpec
from station.sim.store import DeviceStore

DEVICE_ID = "0123456789ABCDEF"


class CA:
    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Issuing CA")])
        self.name = name
        self.cert = self._builder(name, self.key.public_key()).add_extension(
            x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(self.key, hashes.SHA256())
        self.chain_pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def _builder(self, subject, public_key):
        now = datetime.datetime.now(datetime.timezone.utc)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(self.name)
                .public_key(public_key).serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30)))

    def issue(self, csr: x509.CertificateSigningRequest) -> bytes:
        cert = self._builder(csr.subject, csr.public_key()).sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="session")
def ca():
    return CA()


def subject_der(cn: str = "sim1-0123456789abcdef") -> bytes:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Devices"),
                      x509.NameAttribute(NameOID.SERIAL_NUMBER, DEVICE_ID),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)]).public_bytes()


class Talk:
    """The station half, reduced to what the tests need: numbered requests, decoded answers."""

    def __init__(self, device: Device):
        self.device = device
        self.seq = 0

    def raw(self, data: bytes):
        return self.device.feed(data)

    def commit_raw(self):
        self.seq += 1
        return self.device.feed(encode_frame(self.seq, "COMMIT"))

    def frame(self, data: bytes) -> Frame:
        [answer] = self.device.feed(data)
        return decode_frame(answer.data)

    def __call__(self, verb, *args) -> Frame:
        self.seq += 1
        answer = self.frame(encode_frame(self.seq, verb, args))
        assert answer.seq == self.seq, answer
        return answer

    def ok(self, verb, *args) -> Frame:
        answer = self(verb, *args)
        assert answer.is_ok, answer
        return answer

    def upload(self, kind: str, data: bytes) -> Frame:
        self.ok("BEGIN", kind, str(len(data)), sha256_hex(data))
        for i, chunk in enumerate(chunk_payload(data)):
            self.ok("PUT", kind, str(i), chunk)
        return self("END", kind)

    def download(self, announce: Frame) -> bytes:
        kind, length, sha, count = announce.args
        asm = PayloadAssembler(int(length), sha)
        for i in range(int(count)):
            got = self.ok("GET", kind, str(i))
            asm.add(int(got.args[1]), got.args[2])
        return asm.finish()

    def provision(self, ca: CA, subject: bytes | None = None, key_type: str = "EC-P256",
                  anchors: bytes | None = None):
        """HELLO .. COMMIT; returns (csr, cert_der, commit answer)."""
        csr, cert = self.stage(ca, subject, key_type, anchors)
        return csr, cert, self("COMMIT")

    def stage(self, ca: CA, subject: bytes | None = None, key_type: str = "EC-P256",
              anchors: bytes | None = None):
        """HELLO .. last END before COMMIT; returns (csr, cert_der)."""
        self.ok("HELLO", "1")
        assert self.upload("subject", subject or subject_der()).is_ok
        csr = x509.load_der_x509_csr(self.download(self.ok("KEYGEN", key_type)))
        cert = ca.issue(csr)
        assert self.upload("cert", cert).is_ok
        assert self.upload("chain", ca.chain_pem).is_ok
        if anchors:
            assert self.upload("anchors", anchors).is_ok
        return csr, cert


def make_device(folder, *faults: str, keygen_s: float = 0.0) -> Device:
    os.makedirs(folder, exist_ok=True)
    return Device(Identity(DEVICE_ID), DeviceStore(folder),
                  faults=FaultPlan([FaultSpec.parse(f) for f in faults]), keygen_s=keygen_s)


@pytest.fixture
def talk(tmp_path):
    return Talk(make_device(tmp_path / DEVICE_ID))
