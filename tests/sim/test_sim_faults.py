"""Each fault, as the station sees it on the wire (device driven directly through the codec)."""
from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings, strategies as st
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from station.link.codec import (
    MAX_FRAME, ErrorCode, FrameError, FrameErrorReason, decode_frame, encode_frame, sha256_hex,
)
from station.sim.device import _flip_a_body_bit
from station.sim.faults import FaultKind, FaultPlan, FaultSpec, parse_indexed_fault
from tests.sim.conftest import DEVICE_ID, Talk, make_device, subject_der


@pytest.mark.parametrize("text, kind, verb, count", [
    ("stall@COMMIT", FaultKind.STALL, "COMMIT", 1),
    ("corrupt@put=3", FaultKind.CORRUPT, "PUT", 3),
    ("garbage@HELLO=always", FaultKind.GARBAGE, "HELLO", None),
    ("weak-key", FaultKind.WEAK_KEY, None, None),
    ("commit-fail=1", FaultKind.COMMIT_FAIL, None, 1),
])
def test_fault_syntax(text, kind, verb, count):
    spec = FaultSpec.parse(text)
    assert (spec.kind, spec.verb, spec.count) == (kind, verb, count)
    assert FaultSpec.parse(str(spec)) == spec


@pytest.mark.parametrize("text, fragment", [
    ("explode@HELLO", "unknown fault"), ("stall", "needs a command"), ("stall@FOO", "not a command"),
    ("weak-key@KEYGEN", "takes no command"), ("corrupt@PUT=0", "positive"),
    ("powerloss@HELLO", "COMMIT only"),
])
def test_bad_fault_specs_are_explained(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        FaultSpec.parse(text)


def test_indexed_fault_form():
    assert parse_indexed_fault("2:stall@COMMIT") == (2, FaultSpec.parse("stall@COMMIT"))
    with pytest.raises(ValueError, match="INDEX:SPEC"):
        parse_indexed_fault("stall@COMMIT")


def test_a_fault_fires_its_count_then_stops():
    plan = FaultPlan([FaultSpec.parse("corrupt@PUT=2")])
    assert [plan.fire(FaultKind.CORRUPT, "PUT") for _ in range(3)] == [True, True, False]
    assert not plan.fire(FaultKind.CORRUPT, "GET")


def _keygen(talk: Talk, key_type="EC-P256") -> x509.CertificateSigningRequest:
    talk.ok("HELLO", "1")
    talk.upload("subject", subject_der())
    return x509.load_der_x509_csr(talk.download(talk.ok("KEYGEN", key_type)))


def test_stall_is_silence_from_then_on(tmp_path):
    talk = Talk(make_device(tmp_path, "stall@HELLO"))
    assert talk.raw(encode_frame(1, "HELLO", ["1"])) == []
    assert talk.raw(encode_frame(2, "HELLO", ["1"])) == []
    assert talk.device.stalled


def test_disconnect_answers_nothing_and_drops_the_port(tmp_path):
    talk = Talk(make_device(tmp_path, "disconnect@KEYGEN"))
    talk.ok("HELLO", "1")
    talk.upload("subject", subject_der())
    [answer] = talk.raw(encode_frame(9, "KEYGEN", ["EC-P256"]))
    assert answer.data == b"" and answer.then == "disconnect"
    assert not (tmp_path / "key.pending.pem").exists()  # KEYGEN was not executed


def test_corrupt_answer_fails_its_crc_and_the_resend_is_clean(tmp_path):
    talk = Talk(make_device(tmp_path, "corrupt@HELLO"))
    frame = encode_frame(1, "HELLO", ["1"])
    [bad] = talk.raw(frame)
    with pytest.raises(FrameError) as exc:
        decode_frame(bad.data)
    assert exc.value.reason is FrameErrorReason.BAD_CHECKSUM
    [good] = talk.raw(frame)
    assert decode_frame(good.data).fields()["id"] == DEVICE_ID


@pytest.mark.parametrize("fault, reason", [
    ("garbage@HELLO", FrameErrorReason.NOT_ASCII), ("overlong@HELLO", FrameErrorReason.TOO_LONG),
])
def test_noise_instead_of_the_answer(tmp_path, fault, reason):
    talk = Talk(make_device(tmp_path, fault))
    [noise] = talk.raw(encode_frame(1, "HELLO", ["1"]))
    assert noise.data.endswith(b"\n")
    with pytest.raises(FrameError) as exc:
        decode_frame(noise.data)
    assert exc.value.reason is reason
    if fault.startswith("overlong"):
        assert len(noise.data) > MAX_FRAME
    assert talk.frame(encode_frame(1, "HELLO", ["1"])).is_ok


def test_bad_csr_signature(tmp_path):
    csr = _keygen(Talk(make_device(tmp_path, "bad-csr-signature")))
    assert not csr.is_signature_valid


def test_wrong_subject(tmp_path):
    csr = _keygen(Talk(make_device(tmp_path, "wrong-subject")))
    assert csr.is_signature_valid
    assert csr.subject.public_bytes() != subject_der()


def test_weak_key_is_rsa_1024(tmp_path):
    key = _keygen(Talk(make_device(tmp_path, "weak-key"))).public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 1024


def test_duplicate_key_is_shared_between_devices(tmp_path):
    first = _keygen(Talk(make_device(tmp_path / "a", "duplicate-key"))).public_key()
    second = _keygen(Talk(make_device(tmp_path / "b", "duplicate-key"))).public_key()
    honest = _keygen(Talk(make_device(tmp_path / "c"))).public_key()
    assert first.public_numbers() == second.public_numbers() != honest.public_numbers()


def test_commit_fail_stores_nothing(tmp_path, ca):
    talk = Talk(make_device(tmp_path, "commit-fail"))
    _, _, commit = talk.provision(ca)
    assert commit.error_code is ErrorCode.STORAGE
    assert not (tmp_path / "cert.pem").exists()
    assert talk.ok("HELLO", "1").fields()["state"] == "blank"


def test_wrong_hash_reports_what_flash_really_holds(tmp_path, ca):
    talk = Talk(make_device(tmp_path, "wrong-hash"))
    _, cert, commit = talk.provision(ca)
    assert commit.is_ok and commit.fields()["cert"] != sha256_hex(cert)
    pem = (tmp_path / "cert.pem").read_bytes()
    stored = base64.b64decode(b"".join(pem.splitlines()[1:-1]))
    assert commit.fields()["cert"] == sha256_hex(stored)


def test_bad_proof_does_not_verify(tmp_path, ca):
    talk = Talk(make_device(tmp_path, "bad-proof"))
    _, cert, _ = talk.provision(ca)
    nonce = bytes(32)
    signature = talk.download(talk.ok("PROVE", nonce.hex()))
    public = x509.load_der_x509_certificate(cert).public_key()
    with pytest.raises(InvalidSignature):
        public.verify(signature, nonce, ec.ECDSA(hashes.SHA256()))



@settings(max_examples=300)
@given(st.integers(0, 65535), st.sampled_from(["OK", "ERR"]),
       st.lists(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                               blacklist_characters="*"), min_size=1,
                        max_size=60), max_size=5))
def test_corruption_is_always_caught_by_the_crc(seq, verb, args):
    with pytest.raises(FrameError) as exc:
        decode_frame(_flip_a_body_bit(encode_frame(seq, verb, args)))
    assert exc.value.reason is FrameErrorReason.BAD_CHECKSUM
