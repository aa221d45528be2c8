"""CipDriver against the reference simulator on real pseudo-terminals, through pyserial:
the whole flow, and every simulator fault ending in the right outcome within its timeout."""
from __future__ import annotations

import hashlib
import os
import threading

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from station.conformance.testca import TestCA
from station.drivers.cip import CipDriver, CipSession, parse_hello
from station.drivers.registry import UnknownDeviceFamily, families, open_driver
from station.errors import ExitCode
from station.link.codec import COMMANDS, Verb, answer_timeout, decode_frame, encode_ok
from station.link.errors import (
    DeviceDisconnected,
    DeviceIntegrityError,
    DeviceProtocolError,
    DeviceRefused,
    DeviceTimeout,
    PortUnavailable,
)
from station.link.transport import SerialTransport
from station.sim.pty_server import SimulatedLine

# Scaled-down protocol timeouts: HELLO waits about 0.2 s, KEYGEN 1.6 s (the sim takes 10 ms).
SCALE = 0.2
SUBJECT = x509.Name([
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Devices"),
    x509.NameAttribute(NameOID.COMMON_NAME, "driver-test-0001"),
])


@pytest.fixture(scope="module")
def ca():
    return TestCA.generate()


@pytest.fixture
def sim(tmp_path):
    """sim(*faults, count=1) -> list of pty paths; the line stops after the test."""
    lines = []

    def start(*faults: str, count: int = 1) -> list[str]:
        line = SimulatedLine(count, tmp_path / f"line{len(lines)}", keygen_ms=10,
                             faults={i: list(faults) for i in range(count)}).start()
        lines.append(line)
        return line.ports

    yield start
    for line in lines:
        line.stop()


@pytest.fixture
def open_cip():
    drivers = []

    def opener(port: str) -> CipDriver:
        driver = CipDriver.open(port, timeout_scale=SCALE)
        drivers.append(driver)
        return driver

    yield opener
    for driver in drivers:
        driver.close()


def provision(driver: CipDriver, ca: TestCA, *, anchors: bool = True):
    """identify -> CSR -> write -> commit, as the engine does; returns (csr, cert, receipt)."""
    driver.identify()
    csr = x509.load_der_x509_csr(driver.request_csr(SUBJECT.public_bytes()))
    cert = ca.issue(csr)
    objects = {"cert": cert.public_bytes(serialization.Encoding.DER), "chain": ca.chain_pem()}
    if anchors:
        objects["anchors"] = ca.anchors_pem()
    for kind, data in objects.items():
        driver.write_object(kind, data)
    return csr, cert, objects, driver.commit()


def verifies(cert: x509.Certificate, nonce: bytes, signature: bytes) -> bool:
    try:
        cert.public_key().verify(signature, nonce, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


# -- the flow --------------------------------------------------------------------------------

def test_full_flow_with_lock(sim, open_cip, ca):
    port, = sim()
    driver = open_cip(port)
    identity = driver.identify()
    assert identity.state == "blank" and identity.protocol_version == "1"
    assert len(identity.device_id) == 16 and identity.model == "SIM-1"
    assert identity.extra["mtu"] == "512"

    csr, cert, objects, receipt = provision(driver, ca)
    assert csr.is_signature_valid
    assert csr.subject.public_bytes() == SUBJECT.public_bytes()
    assert receipt.hashes == {k: hashlib.sha256(v).digest() for k, v in objects.items()}

    nonce = os.urandom(32)
    assert verifies(cert, nonce, driver.prove(nonce))
    driver.lock()
    assert driver.identify().state == "locked"
    with pytest.raises(DeviceRefused) as err:
        driver.request_csr(SUBJECT.public_bytes())
    assert err.value.code == "LOCKED"


def test_registry_opens_the_cip_driver(sim):
    port, = sim()
    assert "cip" in families()
    with open_driver("cip", port, timeout_scale=SCALE) as driver:
        assert driver.identify().state == "blank"
        assert driver.family == "cip"


def test_unknown_family_and_missing_port_are_clear(tmp_path):
    with pytest.raises(UnknownDeviceFamily, match="unknown device family 'at-modem'.*cip"):
        open_driver("at-modem", "loop://")
    with pytest.raises(PortUnavailable) as err:
        open_driver("cip", str(tmp_path / "ttyGONE"))
    assert err.value.exit_code == ExitCode.ENVIRONMENT


def test_methods_before_identify_say_hello_first(sim, open_cip, ca):
    port, = sim()
    driver = open_cip(port)
    csr = x509.load_der_x509_csr(driver.request_csr(SUBJECT.public_bytes()))
    assert driver.identity is not None and csr.is_signature_valid


def test_commit_before_any_write_is_refused_with_the_code(sim, open_cip):
    port, = sim()
    driver = open_cip(port)
    with pytest.raises(DeviceRefused) as err:
        driver.commit()
    assert err.value.code == "ORDER" and err.value.step == "COMMIT"
    assert f"device on {port} refused COMMIT: ERR ORDER" in str(err.value)


def test_write_object_rejects_unknown_kinds(sim, open_cip):
    port, = sim()
    with pytest.raises(ValueError, match="cannot write object 'subject'"):
        open_cip(port).write_object("subject", b"x")


# -- wire faults -----------------------------------------------------------------------------

@pytest.mark.parametrize("verb, call", [
    ("HELLO", "identify"), ("KEYGEN", "request_csr"), ("PUT", "write_object"),
    ("COMMIT", "commit"), ("PROVE", "prove"),
])
def test_disconnect_at_a_step_is_device_disconnected(sim, open_cip, ca, verb, call):
    port, = sim(f"disconnect@{verb}")
    driver = open_cip(port)
    steps = {
        "identify": lambda: driver.identify(),
        "request_csr": lambda: driver.request_csr(SUBJECT.public_bytes()),
        "write_object": lambda: provision(driver, ca),
        "commit": lambda: provision(driver, ca),
        "prove": lambda: (provision(driver, ca), driver.prove(os.urandom(32))),
    }
    with pytest.raises(DeviceDisconnected) as err:
        steps[call]()
    assert err.value.step == verb
    assert f"device on {port} vanished during" in str(err.value)


def test_powerloss_during_commit_is_device_disconnected(sim, open_cip, ca):
    port, = sim("powerloss@COMMIT")
    with pytest.raises(DeviceDisconnected) as err:
        provision(open_cip(port), ca)
    assert err.value.step == "COMMIT"


def test_stall_is_a_timeout_after_the_retries(sim, open_cip, ca):
    port, = sim("stall@COMMIT")
    driver = open_cip(port)
    with pytest.raises(DeviceTimeout) as err:
        provision(driver, ca)
    assert err.value.step == "COMMIT" and err.value.attempts == 2
    assert "did not answer COMMIT within" in str(err.value)


@pytest.mark.parametrize("fault", ["corrupt@COMMIT", "garbage@KEYGEN", "overlong@PUT",
                                   "corrupt@GET", "garbage@HELLO"])
def test_one_damaged_answer_is_recovered_by_resending(sim, open_cip, ca, fault):
    port, = sim(fault)
    _, _, objects, receipt = provision(open_cip(port), ca)
    assert receipt.hashes["cert"] == hashlib.sha256(objects["cert"]).digest()


@pytest.mark.parametrize("fault, problem", [
    ("corrupt@HELLO=always", "frame checksum mismatch"),
    ("garbage@HELLO=always", "malformed frame (not ASCII"),
    ("overlong@HELLO=always", "over-long frame"),
])
def test_persistently_damaged_answers_are_a_protocol_error(sim, open_cip, fault, problem):
    port, = sim(fault)
    with pytest.raises(DeviceProtocolError) as err:
        open_cip(port).identify()
    assert err.value.step == "HELLO" and err.value.attempts == 3
    assert str(err.value).startswith(f"{problem}")
    assert str(err.value).endswith(f"from device on {port} during HELLO after 3 attempts")


# -- device faults ---------------------------------------------------------------------------

def _csr_from(sim, open_cip, *faults: str) -> x509.CertificateSigningRequest:
    port, = sim(*faults)
    driver = open_cip(port)
    return x509.load_der_x509_csr(driver.request_csr(SUBJECT.public_bytes()))


def test_bad_csr_signature_is_returned_for_policy_to_reject(sim, open_cip):
    assert not _csr_from(sim, open_cip, "bad-csr-signature").is_signature_valid


def test_wrong_subject_is_returned_for_policy_to_reject(sim, open_cip):
    csr = _csr_from(sim, open_cip, "wrong-subject")
    assert csr.subject.public_bytes() != SUBJECT.public_bytes()


def test_weak_key_is_returned_for_policy_to_reject(sim, open_cip):
    key = _csr_from(sim, open_cip, "weak-key").public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048


def test_duplicate_key_devices_return_the_same_key(sim, open_cip):
    ports = sim("duplicate-key", count=2)
    keys = [x509.load_der_x509_csr(open_cip(p).request_csr(SUBJECT.public_bytes()))
            .public_key().public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
            for p in ports]
    assert keys[0] == keys[1]


def test_commit_fail_is_refused_with_storage_code(sim, open_cip, ca):
    port, = sim("commit-fail")
    with pytest.raises(DeviceRefused) as err:
        provision(open_cip(port), ca)
    assert err.value.code == "STORAGE" and err.value.step == "COMMIT"


def test_wrong_hash_after_commit_is_an_integrity_error(sim, open_cip, ca):
    port, = sim("wrong-hash")
    with pytest.raises(DeviceIntegrityError) as err:
        provision(open_cip(port), ca)
    assert err.value.step == "COMMIT"
    assert "device stored cert with SHA-256" in str(err.value)


def test_bad_proof_signature_does_not_verify(sim, open_cip, ca):
    port, = sim("bad-proof")
    driver = open_cip(port)
    _, cert, _, _ = provision(driver, ca)
    nonce = os.urandom(32)
    assert not verifies(cert, nonce, driver.prove(nonce))


def test_one_driver_per_slot_in_parallel_threads(sim, ca):
    # The engine's model: each slot's driver lives in its own worker thread, no shared state.
    ports = sim(count=3)
    outcomes: dict[str, object] = {}

    def slot(port: str) -> None:
        driver = CipDriver.open(port, timeout_scale=SCALE)
        try:
            _, cert, _, _ = provision(driver, ca, anchors=False)
            nonce = os.urandom(32)
            outcomes[port] = verifies(cert, nonce, driver.prove(nonce))
        except Exception as exc:  # recorded, so the assertion below names it
            outcomes[port] = exc
        finally:
            driver.close()

    threads = [threading.Thread(target=slot, args=(p,)) for p in ports]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes == {p: True for p in ports}


def test_hello_keygen_s_replaces_the_keygen_budget():
    answer = decode_frame(encode_ok(1, "1", "id=0123456789ABCDEF", "model=M", "hw=A", "fw=1",
                                    "state=blank", "mtu=256", "keygen_s=20", "future=x"))
    identity = parse_hello(answer, "loop://")
    assert identity.extra == {"mtu": "256", "keygen_s": "20", "future": "x"}
    with SerialTransport("loop://") as transport:
        session = CipSession(transport, keygen_timeout=float(identity.extra["keygen_s"]))
        line_time = answer_timeout(Verb.KEYGEN, 115200, 20) - COMMANDS[Verb.KEYGEN].timeout_s
        assert session.timeout_for(Verb.KEYGEN, 20) == pytest.approx(20 + line_time)
        assert session.timeout_for(Verb.HELLO, 20) == answer_timeout(Verb.HELLO, 115200, 20)


@pytest.mark.parametrize("fields, problem", [
    (("2", "id=0123456789ABCDEF"), "unsupported protocol version 2"),
    (("1", "id=0123456789ABCDEF", "model=M", "hw=A", "fw=1", "state=blank"), "lacks mtu"),
    (("1", "id=0123456789ABCDEF", "model=M", "hw=A", "fw=1", "state=new", "mtu=512"),
     "state='new' is not one of blank, provisioned, locked"),
    (("1", "id=0123456789ABCDEF", "model=M", "hw=A", "fw=1", "state=blank", "mtu=64"),
     "mtu='64' is not a decimal 128..512"),
])
def test_bad_hello_answers_are_protocol_errors(fields, problem):
    with pytest.raises(DeviceProtocolError, match=problem):
        parse_hello(decode_frame(encode_ok(1, *fields)), "loop://")
