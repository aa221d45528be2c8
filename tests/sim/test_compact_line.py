"""The compact extension (docs/protocol.md section 9) end to end: the station's cip driver
against the reference device on a real pty, the stored objects checked with openssl.

A device that does not announce the extension gets the version-1 exchange, verb for verb;
one that does gets WRITE/GENCSR/SIGN and, with a fast rate configured, the LINE switch; one
that acknowledges the switch but never comes up at the new rate is provisioned at the old
rate, and the driver says so."""
from __future__ import annotations

import base64
import math
import re
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from station.conformance.testca import TestCA
from station.drivers.cip import CipDriver
from station.link.codec import decode_frame, deflate, der_certificates, encode_frame, sha256_b64
from station.sim.device import Device, Identity
from station.sim.store import DeviceStore
from station.sim.pty_server import SimulatedLine
from tests.cli_runner import assert_clean_failure, run_station
from tests.sim.compact_transcript import PEM, provision, run_session
from tests.sim.conftest import subject_der
from tests.sim.test_protocol_transcript import _shape

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def verbs(frames: list[str]) -> list[str]:
    return [decode_frame(f[3:].encode(), max_frame=8192).verb for f in frames if f.startswith("S>")]


def openssl_verify(tmp_path, ca: TestCA, cert_der: bytes, chain: list[bytes]) -> None:
    (tmp_path / "root.pem").write_bytes(ca.root.public_bytes(PEM))
    (tmp_path / "chain.pem").write_bytes(b"".join(
        x509.load_der_x509_certificate(der).public_bytes(PEM) for der in chain))
    (tmp_path / "cert.pem").write_bytes(x509.load_der_x509_certificate(cert_der).public_bytes(PEM))
    result = subprocess.run(["openssl", "verify", "-CAfile", tmp_path / "root.pem", "-untrusted",
                             tmp_path / "chain.pem", tmp_path / "cert.pem"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip().endswith(": OK"), result


@pytest.fixture(scope="module")
def test_ca():
    return TestCA.generate()


def test_a_version_1_device_gets_the_version_1_exchange(tmp_path, test_ca):
    with SimulatedLine(1, tmp_path / "flash", keygen_ms=0) as line:
        driver, frames = provision(line, test_ca, fast_baud=921600)
        stored = line.devices[0].store.objects
        assert line._servers[0].baud == 115200
    assert "line" not in driver.identity.extra

    def upload(kind):
        return ["BEGIN", *["PUT"] * math.ceil(len(driver.sent[kind]) / 256), "END"]

    # Version 1 as before the extension: 256-byte chunks up, the device's 256-byte chunks down.
    assert verbs(frames) == ["HELLO", *upload("subject"), "KEYGEN",
                             *["GET"] * math.ceil(len(driver.sent["csr"]) / 256),
                             *upload("cert"), *upload("chain"), "COMMIT", "PROVE", "GET"]
    assert all(len(f) - 2 <= 512 for f in frames)  # no frame beyond version 1's limit
    # Version 1: the chain as the station gave it, a PEM bundle with the root.
    assert stored["chain"] == test_ca.chain_pem() + test_ca.root.public_bytes(PEM)


def test_a_compact_device_gets_the_compact_objects_and_the_switch(tmp_path, test_ca):
    with SimulatedLine(1, tmp_path / "flash", keygen_ms=0, compact=True) as line:
        driver, frames = provision(line, test_ca, fast_baud=921600)
        stored = line.devices[0].store.objects
        device_rate = line._servers[0].baud
    # The subject goes by WRITE or WRITEZ, whichever is shorter; the certificate and the
    # chain, deflated against the subject, the CSR and each other, always by WRITEZ.
    assert [v.replace("WRITEZ", "WRITE") for v in verbs(frames)] == [
        "HELLO", "LINE", "SYNC", "WRITE", "GENCSR", "WRITE", "WRITE", "COMMIT", "SIGN"]
    assert verbs(frames)[5:7] == ["WRITEZ", "WRITEZ"]
    # The fastest rate both offer up to fast_baud, confirmed on both sides.
    assert driver.identity.extra["line"] == "921600"
    assert driver.session.transport.baudrate == device_rate == 921600
    # The chain as DER, the issuing CA only: the self-signed root is left out.
    assert stored["chain"] == test_ca.issuing.public_bytes(serialization.Encoding.DER)
    openssl_verify(tmp_path, test_ca, stored["cert"], der_certificates(stored["chain"]))


def test_chain_root_keeps_the_root_in_the_compact_chain(tmp_path, test_ca):
    with SimulatedLine(1, tmp_path / "flash", keygen_ms=0, compact=True) as line:
        provision(line, test_ca, chain_root=True)
        stored = line.devices[0].store.objects
    assert der_certificates(stored["chain"]) == [
        c.public_bytes(serialization.Encoding.DER) for c in (test_ca.issuing, test_ca.root)]


def test_without_a_fast_rate_a_compact_device_stays_on_the_line_rate(tmp_path, test_ca):
    with SimulatedLine(1, tmp_path / "flash", keygen_ms=0, compact=True) as line:
        driver, frames = provision(line, test_ca)
        assert line._servers[0].baud == 115200
    assert "LINE" not in verbs(frames) and "line" not in driver.identity.extra


def test_compact_off_speaks_version_1_to_a_compact_device(tmp_path, test_ca):
    with SimulatedLine(1, tmp_path / "flash", keygen_ms=0, compact=True) as line:
        _, frames = provision(line, test_ca, compact=False, fast_baud=921600)
    assert not {"WRITE", "GENCSR", "SIGN", "LINE", "SYNC"} & set(verbs(frames))


def test_a_device_that_never_comes_up_at_the_new_rate_is_provisioned_at_the_old(tmp_path,
                                                                                 test_ca):
    with SimulatedLine(1, tmp_path / "flash", keygen_ms=0, compact=True,
                       faults={0: ["no-switch"]}) as line:
        driver, frames = provision(line, test_ca, fast_baud=921600)
        stored = line.devices[0].store.objects
        device_rate = line._servers[0].baud
    assert driver.identity.extra["line"].startswith("115200 (switch to 921600 failed: no valid "
                                                    "answer at 921600")
    assert driver.session.transport.baudrate == device_rate == 115200
    # SYNC twice at the new rate (unheard), once at the old; then the compact exchange.
    assert verbs(frames)[:5] == ["HELLO", "LINE", "SYNC", "SYNC", "SYNC"]
    assert verbs(frames)[5].startswith("WRITE")
    openssl_verify(tmp_path, test_ca, stored["cert"], der_certificates(stored["chain"]))


def test_a_rate_the_device_does_not_offer_is_never_asked_for(tmp_path, test_ca):
    with SimulatedLine(1, tmp_path / "flash", keygen_ms=0, compact=True,
                       bauds=(230400, 460800)) as line:
        driver, _ = provision(line, test_ca, fast_baud=400000)
        assert line._servers[0].baud == 230400
    assert driver.identity.extra["line"] == "230400"


def _compact_shape(line: str) -> str:
    # The extension's hashes are base64 mid-frame; the rest as for section 7.
    return _shape(re.sub(r" [A-Za-z0-9+/]{43}=(?= )", " SHA", line))


def test_doc_compact_session_matches_a_fresh_run(tmp_path):
    block = DOC.read_text().split("### 9.6 Example session", 1)[1].split("```", 2)[1]
    documented = [_compact_shape(line) for line in block.strip().splitlines()]
    fresh = [_compact_shape(line) for line in run_session(tmp_path / "flash")]
    assert fresh == documented


def test_every_frame_of_the_doc_compact_session_decodes():
    block = DOC.read_text().split("### 9.6 Example session", 1)[1].split("```", 2)[1]
    frames = [line[3:] for line in block.strip().splitlines() if line[:3] in ("S> ", "D< ")]
    assert len(frames) == 18
    for frame in frames:
        decode_frame(frame.encode(), max_frame=8192)  # raises on a bad checksum


def test_sim_refuses_bauds_that_are_not_rates(tmp_path):
    result = run_station("sim", "--compact", "--bauds", "fast", "--store", tmp_path, cwd=tmp_path)
    assert_clean_failure(result, 2, "--bauds 'fast': positive decimal rates, comma-separated")


def _device_exchange(device, seq, verb, *args) -> list[str]:
    [answer] = device.feed(encode_frame(seq, verb, args, max_frame=8192))
    frame = decode_frame(answer.data, max_frame=8192)
    return [frame.verb, *frame.args]


def test_writez_needs_the_session_dictionary_and_never_inflates_past_len(tmp_path, test_ca):
    device = Device(Identity("0123456789ABCDEF"), DeviceStore(tmp_path), compact=True)
    _device_exchange(device, 1, "HELLO", "1")
    subject = subject_der()
    _device_exchange(device, 2, "WRITE", "subject", str(len(subject)), sha256_b64(subject),
                     base64.b64encode(subject).decode())
    chain = test_ca.issuing.public_bytes(serialization.Encoding.DER)

    def writez(seq, data, dictionary, length=None):
        packed = base64.b64encode(deflate(data, dictionary)).decode()
        return _device_exchange(device, seq, "WRITEZ", "chain", str(length or len(data)),
                                sha256_b64(data), packed)

    # Deflated against something the device does not hold: refused, nothing staged.
    wrong = writez(3, chain, chain)  # a dictionary the stream leans on, the device lacks
    assert wrong[:2] in (["ERR", "HASH"], ["ERR", "CHUNK"], ["ERR", "LENGTH"])
    # A stream that inflates past the announced length stops there.
    assert writez(4, b"\x30" * 4000, b"", length=100)[:2] == ["ERR", "CHUNK"]
    # The dictionary the protocol names (the staged subject): staged, hash confirmed.
    assert writez(5, chain, subject) == ["OK", "chain", str(len(chain)), sha256_b64(chain)]


def test_gencsr_carries_an_rsa_2048_csr_whole_in_one_frame(tmp_path):
    device = Device(Identity("0123456789ABCDEF"), DeviceStore(tmp_path), compact=True)
    _device_exchange(device, 1, "HELLO", "1")
    subject = subject_der()
    _device_exchange(device, 2, "WRITE", "subject", str(len(subject)), sha256_b64(subject),
                     base64.b64encode(subject).decode())
    verb, kind, length, digest, b64 = _device_exchange(device, 3, "GENCSR", "RSA-2048")
    csr = x509.load_der_x509_csr(base64.b64decode(b64))
    assert (verb, kind, int(length), digest) == ("OK", "csr", len(csr.public_bytes(
        serialization.Encoding.DER)), sha256_b64(csr.public_bytes(serialization.Encoding.DER)))
    assert csr.public_key().key_size == 2048 and csr.is_signature_valid


def test_anchors_keep_their_roots_in_compact_form(tmp_path, test_ca):
    roots = test_ca.root.public_bytes(PEM) + test_ca.issuing.public_bytes(PEM)
    with SimulatedLine(1, tmp_path / "flash", keygen_ms=0, compact=True) as line:
        driver = CipDriver.open(line.ports[0])
        with driver:
            driver.identify()
            driver.write_object("anchors", roots)
            stored = driver.session.objects["anchors"]
    assert der_certificates(stored) == [
        c.public_bytes(serialization.Encoding.DER) for c in (test_ca.root, test_ca.issuing)]
