"""The reference device's state machine, driven with frames through the codec."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from station.link.codec import (
    MAX_FRAME, REQUEST_VERBS, ErrorCode, chunk_payload, crc16_ccitt_false, decode_frame, encode_frame,
    sha256_hex,
)
from tests.sim.conftest import DEVICE_ID, Talk, make_device, subject_der


def _verify_proof(cert: x509.Certificate, nonce: bytes, signature: bytes) -> None:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, nonce, padding.PKCS1v15(), hashes.SHA256())
    else:
        key.verify(signature, nonce, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("key_type, key_class", [
    ("EC-P256", ec.EllipticCurvePrivateKey), ("EC-P384", ec.EllipticCurvePrivateKey),
    ("RSA-2048", rsa.RSAPrivateKey),
])
def test_full_provisioning_with_real_cryptography(tmp_path, ca, key_type, key_class):
    talk = Talk(make_device(tmp_path / DEVICE_ID))
    hello = talk.ok("HELLO", "1")
    assert hello.args[0] == "1"
    assert hello.fields()["id"] == DEVICE_ID and hello.fields()["state"] == "blank"
    subject = subject_der()
    csr, cert_der, commit = talk.provision(ca, subject, key_type,
                                           anchors=ca.chain_pem + ca.chain_pem)
    assert csr.is_signature_valid
    assert csr.subject.public_bytes() == subject
    assert commit.fields() == {"cert": sha256_hex(cert_der), "chain": sha256_hex(ca.chain_pem),
                               "anchors": sha256_hex(ca.chain_pem * 2)}
    folder = tmp_path / DEVICE_ID
    key = serialization.load_pem_private_key((folder / "key.pem").read_bytes(), None)
    assert isinstance(key, key_class)
    stored = x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes())
    assert stored.public_bytes(serialization.Encoding.DER) == cert_der
    assert stored.public_key().public_numbers() == key.public_key().public_numbers()
    assert (folder / "chain.pem").read_bytes() == ca.chain_pem
    assert not (folder / "key.pending.pem").exists()

    nonce = bytes(range(32))
    signature = talk.download(talk.ok("PROVE", nonce.hex()))
    _verify_proof(stored, nonce, signature)

    assert talk("LOCK", "0123456789ABCDEE").error_code is ErrorCode.CONFIRM
    assert talk.ok("LOCK", DEVICE_ID).args == ("locked",)
    assert talk.ok("HELLO", "1").fields()["state"] == "locked"
    assert talk("KEYGEN", "EC-P256").error_code is ErrorCode.LOCKED
    assert talk("BEGIN", "cert", "10", "0" * 64).error_code is ErrorCode.LOCKED
    assert talk.ok("LOCK", DEVICE_ID).args == ("locked",)  # repeat is harmless
    _verify_proof(stored, nonce, talk.download(talk.ok("PROVE", nonce.hex())))


def test_identity_and_state_survive_a_restart(tmp_path, ca):
    talk = Talk(make_device(tmp_path / DEVICE_ID))
    _, cert_der, _ = talk.provision(ca)
    again = Talk(make_device(tmp_path / DEVICE_ID))
    hello = again.ok("HELLO", "1")
    assert hello.fields()["id"] == DEVICE_ID and hello.fields()["state"] == "provisioned"
    # A COMMIT whose answer was lost before the reset can be repeated.
    assert again.ok("COMMIT").fields()["cert"] == sha256_hex(cert_der)


def test_resend_is_replayed_not_executed(talk, ca):
    talk.ok("HELLO", "1")
    talk.upload("subject", subject_der())
    keygen = encode_frame(50, "KEYGEN", ["EC-P256"])
    first = talk.raw(keygen)[0].data
    pending = (talk.device.store.folder / "key.pending.pem").read_bytes()
    assert talk.raw(keygen)[0].data == first
    assert (talk.device.store.folder / "key.pending.pem").read_bytes() == pending
    other = talk.frame(encode_frame(50, "KEYGEN", ["EC-P384"]))
    assert other.seq == 50 and other.error_code is ErrorCode.SEQ


def test_hello_is_executed_every_time_and_its_answer_cached_like_any_other(talk, ca):
    # docs/protocol.md 2.3: a HELLO always runs (a resent one too: it discards what was
    # staged since), never answered from the cache; its answer is then the cached one, so
    # another request reusing its seq gets ERR SEQ.
    hello = encode_frame(7, "HELLO", ["1"])
    talk.raw(hello)
    talk.seq = 7
    assert talk.upload("subject", subject_der()).is_ok
    assert decode_frame(talk.raw(hello)[0].data).is_ok
    assert talk("KEYGEN", "EC-P256").error_code is ErrorCode.ORDER  # the resent HELLO ran
    talk.raw(hello)
    assert talk.frame(encode_frame(7, "ABORT")).error_code is ErrorCode.SEQ


def test_a_request_with_seq_0_is_refused_unexecuted(talk):
    talk.ok("HELLO", "1")
    answer = talk.frame(encode_frame(0, "ABORT"))
    assert (answer.seq, answer.error_code) == (0, ErrorCode.SYNTAX)
    assert talk.ok("ABORT").seq == talk.seq  # the cache was not touched: seqs go on


def test_a_new_keygen_makes_a_new_key(talk):
    talk.ok("HELLO", "1")
    talk.upload("subject", subject_der())
    first = talk.download(talk.ok("KEYGEN", "EC-P256"))
    second = talk.download(talk.ok("KEYGEN", "EC-P256"))
    assert (x509.load_der_x509_csr(first).public_key().public_numbers()
            != x509.load_der_x509_csr(second).public_key().public_numbers())


def test_staged_certificate_counts_as_absent_after_a_reset(tmp_path, ca):
    talk = Talk(make_device(tmp_path / DEVICE_ID))
    talk.ok("HELLO", "1")
    talk.upload("subject", subject_der())
    csr = x509.load_der_x509_csr(talk.download(talk.ok("KEYGEN", "EC-P256")))
    cert = ca.issue(csr)
    assert talk.upload("cert", cert).is_ok
    talk.ok("BEGIN", "chain", str(len(ca.chain_pem)), sha256_hex(ca.chain_pem))
    talk.ok("PUT", "chain", "0", chunk_payload(ca.chain_pem)[0])
    rebooted = Talk(make_device(tmp_path / DEVICE_ID))
    assert rebooted.ok("HELLO", "1").fields()["state"] == "blank"
    assert rebooted("COMMIT").error_code is ErrorCode.ORDER
    assert not (tmp_path / DEVICE_ID / "cert.pem").exists()
    # The pending key survived: the station can write the same certificate again.
    assert rebooted.upload("cert", cert).is_ok and rebooted.upload("chain", ca.chain_pem).is_ok
    assert rebooted.ok("COMMIT").fields()["cert"] == sha256_hex(cert)


def test_power_loss_in_commit_leaves_no_certificate(tmp_path, ca):
    device = make_device(tmp_path / DEVICE_ID, "powerloss@COMMIT")
    talk = Talk(device)
    talk.stage(ca)
    [answer] = talk.commit_raw()
    assert answer.data == b"" and answer.then == "disconnect"
    rebooted = Talk(make_device(tmp_path / DEVICE_ID))
    assert rebooted.ok("HELLO", "1").fields()["state"] == "blank"
    assert rebooted("PROVE", "00" * 32).error_code is ErrorCode.ORDER


def test_power_loss_in_a_second_commit_keeps_the_first_set(tmp_path, ca):
    talk = Talk(make_device(tmp_path / DEVICE_ID))
    _, first_cert, _ = talk.provision(ca)
    device = make_device(tmp_path / DEVICE_ID, "powerloss@COMMIT")
    talk = Talk(device)
    talk.stage(ca)
    assert talk.commit_raw()[0].then == "disconnect"
    rebooted = Talk(make_device(tmp_path / DEVICE_ID))
    assert rebooted.ok("HELLO", "1").fields()["state"] == "provisioned"
    assert rebooted.ok("COMMIT").fields()["cert"] == sha256_hex(first_cert)


def test_commit_rolls_forward_when_interrupted_after_its_record(tmp_path, ca):
    talk = Talk(make_device(tmp_path / DEVICE_ID))
    _, cert, _ = talk.provision(ca)
    folder = tmp_path / DEVICE_ID
    # As if the device died after writing state.json, before renaming cert.pem.next.
    (folder / "cert.pem").rename(folder / "cert.pem.next")
    rebooted = Talk(make_device(folder))
    assert rebooted.ok("COMMIT").fields()["cert"] == sha256_hex(cert)
    assert (folder / "cert.pem").exists()


@pytest.mark.parametrize("steps, code", [
    ([("COMMIT",)], ErrorCode.ORDER),
    ([("PROVE", "00" * 32)], ErrorCode.ORDER),
    ([("LOCK", DEVICE_ID)], ErrorCode.ORDER),
    ([("KEYGEN", "EC-P256")], ErrorCode.ORDER),
    ([("GET", "csr", "0")], ErrorCode.ORDER),
    ([("PUT", "cert", "0", "AAAA")], ErrorCode.ORDER),
    ([("END", "cert")], ErrorCode.ORDER),
    ([("FLASH",)], ErrorCode.UNKNOWN),
    ([("OK",)], ErrorCode.UNKNOWN),
    ([("HELLO",)], ErrorCode.ARG),
    ([("HELLO", "0")], ErrorCode.ARG),
    ([("BEGIN", "key", "10", "0" * 64)], ErrorCode.ARG),
    ([("BEGIN", "cert", "0", "0" * 64)], ErrorCode.LENGTH),
    ([("BEGIN", "cert", "99999", "0" * 64)], ErrorCode.LENGTH),
    ([("BEGIN", "cert", "10", "abc")], ErrorCode.ARG),
    ([("KEYGEN", "EC-P192")], ErrorCode.UNSUPPORTED),
    ([("PROVE", "00" * 31)], ErrorCode.ARG),
    ([("BEGIN", "cert", "6", sha256_hex(b"abcdef")), ("PUT", "cert", "1", "YWJj")], ErrorCode.CHUNK),
    ([("BEGIN", "cert", "3", sha256_hex(b"abc")), ("PUT", "cert", "0", "YWJjZA==")], ErrorCode.LENGTH),
    ([("BEGIN", "cert", "3", sha256_hex(b"abd")), ("PUT", "cert", "0", "YWJj"), ("END", "cert")],
     ErrorCode.HASH),
    ([("BEGIN", "cert", "3", sha256_hex(b"abc")), ("PUT", "cert", "0", "YWJj"), ("END", "cert")],
     ErrorCode.BADOBJ),
    ([("BEGIN", "subject", "3", sha256_hex(b"abc")), ("PUT", "subject", "0", "YWJj"),
      ("END", "subject")], ErrorCode.BADOBJ),
])
def test_out_of_order_and_bad_requests_get_their_error(talk, steps, code):
    talk.ok("HELLO", "1")
    answers = [talk(*step) for step in steps]
    assert answers[-1].error_code is code, answers[-1]
    assert all(a.is_ok for a in answers[:-1])


def test_version_negotiation(talk):
    assert talk.ok("HELLO", "7").args[0] == "1"
    assert talk.ok("HELLO", "1").args[0] == "1"


def test_commit_refuses_a_certificate_for_another_key(talk, ca):
    talk.ok("HELLO", "1")
    talk.upload("subject", subject_der())
    talk.ok("KEYGEN", "EC-P256")
    other = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name.from_rfc4514_string("CN=x")).sign(ec.generate_private_key(ec.SECP256R1()),
                                                    hashes.SHA256())
    talk.upload("cert", ca.issue(other))
    talk.upload("chain", ca.chain_pem)
    assert talk("COMMIT").error_code is ErrorCode.KEYMISMATCH
    talk.upload("cert", ca.issue(other))
    assert talk("COMMIT").error_code is ErrorCode.KEYMISMATCH


def test_resent_chunks_and_repeated_end_are_harmless(talk, ca):
    talk.ok("HELLO", "1")
    data = subject_der()
    talk.ok("BEGIN", "subject", str(len(data)), sha256_hex(data))
    [chunk] = chunk_payload(data)
    talk.ok("PUT", "subject", "0", chunk)
    assert talk.ok("PUT", "subject", "0", chunk).args[2] == str(len(data))
    end = talk.ok("END", "subject")
    assert talk.ok("END", "subject").args == end.args


@pytest.mark.parametrize("line, code", [
    (b"1 HELLO 1*0000\n", ErrorCode.CRC),
    (b"1 HELLO 1\n", ErrorCode.SYNTAX),
    (b"\xff\xfe garbage\n", ErrorCode.SYNTAX),
    (b"0 HELLO 1*%04X\n" % crc16_ccitt_false(b"0 HELLO 1"), ErrorCode.SYNTAX),
    (b"A" * 2000 + b"\n", ErrorCode.TOOLONG),
])
def test_bad_frames_get_seq_0_errors_never_silence(talk, line, code):
    answers = talk.raw(line)
    assert len(answers) == 1
    frame = decode_frame(answers[0].data)
    assert frame.seq == 0 and frame.error_code is code


def test_empty_lines_are_ignored_and_split_input_is_reassembled(talk):
    assert talk.raw(b"\n\r\n") == []
    frame = encode_frame(3, "HELLO", ["1"])
    assert talk.raw(frame[:5]) == []
    [answer] = talk.raw(frame[5:])
    assert decode_frame(answer.data).seq == 3


def test_a_frame_right_at_the_limit_is_accepted(talk):
    frame = encode_frame(1, "HELLO", ["1", "x" * (MAX_FRAME - 20)])
    frame = encode_frame(1, "HELLO", ["1", "x" * (MAX_FRAME - 20 - (len(frame) - MAX_FRAME))])
    assert len(frame) == MAX_FRAME
    assert decode_frame(talk.raw(frame)[0].data).error_code is ErrorCode.ARG
    longer = encode_frame(1, "HELLO", ["1", "x" * 40]).replace(b"x" * 40, b"x" * 600)
    assert decode_frame(talk.raw(longer)[0].data).error_code is ErrorCode.TOOLONG


def test_abort_discards_staged_objects(talk, ca):
    _, cert, _ = talk.provision(ca)
    talk.upload("cert", cert)
    talk.ok("ABORT")
    # Nothing staged any more: COMMIT repeats the stored hashes.
    assert talk.ok("COMMIT").fields()["cert"] == sha256_hex(cert)
    assert talk("GET", "csr", "0").error_code is ErrorCode.ORDER


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=700), max_size=6))
def test_any_input_gets_valid_frames_or_silence_never_an_exception(tmp_path_factory, pieces):
    device = make_device(tmp_path_factory.mktemp("fuzz"))
    for piece in pieces:
        for answer in device.feed(piece):
            frame = decode_frame(answer.data)
            assert frame.is_ok or frame.is_error


_TOKENS = st.sampled_from(["1", "0", "2", "99999999999", "subject", "cert", "chain", "anchors",
                           "csr", "sig", "EC-P256", DEVICE_ID, "AAAA", "YWJj", "=", "x=y",
                           "0" * 64, "ff" * 32, "-1"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(v.value for v in REQUEST_VERBS)),
                          st.lists(_TOKENS, max_size=3)), max_size=12))
def test_any_command_sequence_is_answered_with_its_own_seq(tmp_path_factory, commands):
    device = make_device(tmp_path_factory.mktemp("seqfuzz"))
    for seq, (verb, args) in enumerate(commands, start=1):
        [answer] = device.feed(encode_frame(seq, verb, args))
        frame = decode_frame(answer.data)
        assert frame.seq == seq and (frame.is_ok or frame.error_code is not None)
