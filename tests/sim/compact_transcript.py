"""The example session of docs/protocol.md section 9.6 (the compact extension), produced by
the station's own driver against the reference device on a real pty.

`python -m tests.sim.compact_transcript DIR` prints it (DIR: a scratch flash folder); the
doc's block is this output, and test_compact_line.py checks that the doc and a fresh run
agree line for line (up to keys, hashes, base64 and checksums)."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from station.conformance.testca import TestCA
from station.drivers.cip import CipDriver, CipSession
from station.link.transport import SerialTransport
from station.sim.pty_server import SimulatedLine
from tests.sim.conftest import subject_der

PEM = serialization.Encoding.PEM


class RecordingTransport(SerialTransport):
    """A real serial transport that also keeps every frame it carried, in order."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.frames: list[str] = []

    def send(self, frame, *, step):
        self.frames.append("S> " + frame.decode().rstrip("\n"))
        super().send(frame, step=step)

    def receive(self, *, step, timeout):
        line = super().receive(step=step, timeout=timeout)
        self.frames.append("D< " + line.decode())
        return line


def provision(line: SimulatedLine, ca: TestCA, **driver_opts) -> tuple[CipDriver, list[str]]:
    """identify -> csr -> cert and chain (root included, as the station's chain file has it)
    -> commit -> prove, through the real driver; returns the driver and the frames. The
    driver's `sent` is what the engine gave it: kind -> bytes."""
    transport = RecordingTransport(line.ports[0])
    driver = CipDriver(CipSession(transport), **driver_opts)
    with driver:
        driver.identify()
        csr = x509.load_der_x509_csr(driver.request_csr(subject_der()))
        cert = ca.issue(csr)
        chain = ca.chain_pem() + ca.root.public_bytes(PEM)
        driver.write_object("cert", cert.public_bytes(serialization.Encoding.DER))
        driver.write_object("chain", chain)
        receipt = driver.commit()
        # The receipt is in the engine's terms whatever form went on the wire.
        assert receipt.hashes["chain"] == hashlib.sha256(chain).digest()
        signature = driver.prove(bytes(range(32)))
        cert.public_key().verify(signature, bytes(range(32)), ec.ECDSA(hashes.SHA256()))
        driver.sent = {"subject": subject_der(), "csr": csr.public_bytes(serialization.Encoding.DER),
                       "cert": cert.public_bytes(serialization.Encoding.DER), "chain": chain}
    return driver, transport.frames


def run_session(folder: Path) -> list[str]:
    with SimulatedLine(1, folder, keygen_ms=0, compact=True, bauds=(230400, 921600),
                       seed="protocol.md") as line:
        _, frames = provision(line, TestCA.generate(), fast_baud=921600)
    return frames


if __name__ == "__main__":
    print("\n".join(run_session(Path(sys.argv[1]))))
