"""The frame codec: CRC vectors, exact round-trips, and that no input makes decode_frame do
anything but return a Frame or raise FrameError."""
from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings, strategies as st

from station.link.codec import (
    COMMANDS, MAX_FRAME, DEFAULT_CHUNK, ErrorCode, Frame, FrameError, FrameErrorReason,
    PayloadAssembler, PayloadError, Verb, answer_timeout, chunk_payload, crc16_ccitt_false,
    decode_frame, encode_error, encode_frame, encode_ok, max_chunk_bytes, sha256_hex,
)

ARG = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                     blacklist_characters="*"), min_size=1, max_size=40)
VERB = st.from_regex(r"[A-Z][A-Z0-9_]{0,15}", fullmatch=True)


@pytest.mark.parametrize("data, crc", [
    (b"", 0xFFFF), (b"A", 0xB915), (b"123456789", 0x29B1), (b"1 HELLO 1", 0xB18E),
    (b"0 ERR CRC", 0xFAFF), (bytes(range(0x20, 0x7F)), 0xCE48),
])
def test_crc16_ccitt_false_vectors(data, crc):
    assert crc16_ccitt_false(data) == crc


def test_crc_is_incremental():
    assert crc16_ccitt_false(b"6789", crc16_ccitt_false(b"12345")) == 0x29B1


def test_documented_frames():
    assert encode_frame(1, Verb.HELLO, ["1"]) == b"1 HELLO 1*B18E\n"
    assert encode_frame(7, Verb.COMMIT) == b"7 COMMIT*ABAE\n"
    assert encode_frame(65535, Verb.GET, ["csr", "0"]) == b"65535 GET csr 0*18CC\n"


@settings(max_examples=300)
@given(st.integers(0, 65535), VERB, st.lists(ARG, max_size=8))
def test_encode_decode_round_trip_is_exact(seq, verb, args):
    frame = encode_frame(seq, verb, args)
    assert decode_frame(frame) == Frame(seq, verb, tuple(args))
    assert decode_frame(frame.rstrip(b"\n")) == decode_frame(frame)
    assert decode_frame(frame[:-1] + b"\r\n") == decode_frame(frame)


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_only_ever_raise_frame_error(line):
    try:
        frame = decode_frame(line)
    except FrameError as exc:
        assert isinstance(exc.reason, FrameErrorReason)
        return
    # Anything accepted re-encodes to the same bytes, up to the CRC's hex case: no lenience.
    body = line.removesuffix(b"\n").removesuffix(b"\r")
    assert encode_frame(frame.seq, frame.verb, frame.args) == body[:-4] + body[-4:].upper() + b"\n"


@settings(max_examples=300)
@given(st.integers(1, 65535), VERB, st.lists(ARG, min_size=1, max_size=5), st.data())
def test_any_single_byte_change_is_detected(seq, verb, args, data):
    frame = bytearray(encode_frame(seq, verb, args))
    pos = data.draw(st.integers(0, len(frame) - 2))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != frame[pos]))
    frame[pos] = new
    with pytest.raises(FrameError):
        got = decode_frame(bytes(frame))
        # Only a change of the CRC's hex case may still decode, to the same frame.
        if bytes(frame[-6:-1]).upper() == bytes(encode_frame(seq, verb, args)[-6:-1]):
            assert got == Frame(seq, verb, tuple(args))
            raise FrameError(FrameErrorReason.SYNTAX, "same frame")


@pytest.mark.parametrize("line, reason", [
    (b"\n", FrameErrorReason.EMPTY),
    (b"", FrameErrorReason.EMPTY),
    (b"\r\n", FrameErrorReason.EMPTY),
    (b"1 HELLO 1*B18E" + b" " * MAX_FRAME + b"\n", FrameErrorReason.TOO_LONG),
    (b"1 HELLO \xff*0000\n", FrameErrorReason.NOT_ASCII),
    (b"1 HELLO\t1*0000\n", FrameErrorReason.NOT_ASCII),
    (b"1 HELLO 1\n", FrameErrorReason.NO_CHECKSUM),
    (b"1 HELLO 1*B18\n", FrameErrorReason.NO_CHECKSUM),
    (b"1 HELLO 1*B18G\n", FrameErrorReason.NO_CHECKSUM),
    (b"1 HELLO 1*B18F\n", FrameErrorReason.BAD_CHECKSUM),
])
def test_each_malformation_has_its_reason(line, reason):
    with pytest.raises(FrameError) as exc:
        decode_frame(line)
    assert exc.value.reason is reason
    assert str(exc.value).startswith(reason.value)


def _with_crc(body: bytes) -> bytes:
    return body + b"*%04X\n" % crc16_ccitt_false(body)


@pytest.mark.parametrize("body, reason", [
    (b"01 HELLO 1", FrameErrorReason.BAD_SEQ),
    (b"65536 HELLO 1", FrameErrorReason.BAD_SEQ),
    (b"-1 HELLO", FrameErrorReason.BAD_SEQ),
    (b"x HELLO", FrameErrorReason.BAD_SEQ),
    (b"1 hello", FrameErrorReason.BAD_VERB),
    (b"1 1HELLO", FrameErrorReason.BAD_VERB),
    (b"1 HELLO  1", FrameErrorReason.SYNTAX),
    (b" 1 HELLO", FrameErrorReason.SYNTAX),
    (b"1", FrameErrorReason.SYNTAX),
    (b"1 HELLO a*b", FrameErrorReason.SYNTAX),
])
def test_checksummed_but_malformed_frames(body, reason):
    with pytest.raises(FrameError) as exc:
        decode_frame(_with_crc(body))
    assert exc.value.reason is reason


def test_frame_error_is_a_value_error_and_maps_to_wire_codes():
    assert issubclass(FrameError, ValueError)
    assert FrameErrorReason.BAD_CHECKSUM.answer_code() is ErrorCode.CRC
    assert FrameErrorReason.TOO_LONG.answer_code() is ErrorCode.TOOLONG
    assert FrameErrorReason.BAD_SEQ.answer_code() is ErrorCode.SYNTAX


def test_lowercase_crc_is_accepted():
    assert decode_frame(b"1 HELLO 1*b18e\n") == Frame(1, "HELLO", ("1",))


@pytest.mark.parametrize("seq, verb, args", [
    (65536, "HELLO", []), (-1, "HELLO", []), (1, "hello", []), (1, "HELLO", ["a b"]),
    (1, "HELLO", ["a*b"]), (1, "HELLO", [""]), (1, "HELLO", ["é"]), (1, "PUT", ["A" * 600]),
])
def test_encode_refuses_what_the_grammar_cannot_carry(seq, verb, args):
    with pytest.raises(ValueError):
        encode_frame(seq, verb, args)


def test_error_frames_carry_code_and_text():
    frame = decode_frame(encode_error(5, ErrorCode.CHUNK, "chunk 3  out of order*, expected\t2"))
    assert frame.is_error and not frame.is_ok
    assert frame.error_code is ErrorCode.CHUNK
    assert frame.error_text == "chunk 3 out of order?, expected?2"


def test_error_text_is_cut_to_fit_a_frame():
    frame = encode_error(0, ErrorCode.INTERNAL, "word " * 300)
    assert len(frame) <= MAX_FRAME
    assert decode_frame(frame).error_code is ErrorCode.INTERNAL


def test_unknown_error_code_is_none_and_ok_fields_parse():
    assert decode_frame(encode_frame(1, "ERR", ["NEWCODE", "x"])).error_code is None
    ok = decode_frame(encode_ok(1, "1", "id=00AB", "state=blank"))
    assert ok.is_ok and ok.fields() == {"id": "00AB", "state": "blank"}


def test_error_codes_are_documented_and_unique():
    assert len({c.value for c in ErrorCode}) == len(ErrorCode)
    assert all(c.meaning for c in ErrorCode)
    assert {c for c in ErrorCode if c.resend_safe} == {ErrorCode.CRC, ErrorCode.TOOLONG,
                                                       ErrorCode.SYNTAX}


def test_every_request_verb_has_a_timeout_and_keygen_is_slow():
    assert set(COMMANDS) == {v for v in Verb if v not in (Verb.OK, Verb.ERR)}
    assert COMMANDS[Verb.KEYGEN].timeout_s == 8.0 and not COMMANDS[Verb.KEYGEN].idempotent
    assert answer_timeout(Verb.HELLO, 9600, 100) == pytest.approx(1.0 + 612 * 10 / 9600)


def test_largest_chunk_fits_the_longest_chunk_frame():
    size = max_chunk_bytes()
    assert size == 360
    [chunk] = chunk_payload(bytes(size), size)
    assert len(encode_frame(65535, Verb.PUT, ["anchors", "65535", chunk])) <= MAX_FRAME
    assert len(encode_frame(65535, Verb.OK, ["anchors", "65535", chunk])) <= MAX_FRAME


@settings(max_examples=200)
@given(st.binary(max_size=3000), st.integers(1, 360))
def test_chunking_round_trip(data, size):
    chunks = chunk_payload(data, size)
    assert all(len(base64.b64decode(c)) <= size for c in chunks)
    asm = PayloadAssembler(len(data), sha256_hex(data))
    for i, c in enumerate(chunks):
        asm.add(i, c)
        asm.add(i, c)  # a resend of the same chunk is harmless
    assert asm.complete
    assert asm.finish() == data


def _assembler(data=bytes(i % 251 for i in range(600))):
    return data, chunk_payload(data, DEFAULT_CHUNK), PayloadAssembler(len(data),
                                                                      hashlib.sha256(data).digest())


@pytest.mark.parametrize("mutate, code", [
    (lambda asm, ch: asm.add(1, ch[1]), ErrorCode.CHUNK),  # skips chunk 0
    (lambda asm, ch: (asm.add(0, ch[0]), asm.add(0, ch[1])), ErrorCode.CHUNK),  # changed resend
    (lambda asm, ch: asm.add(0, "not base64!"), ErrorCode.CHUNK),
    (lambda asm, ch: asm.add(0, ""), ErrorCode.CHUNK),
    (lambda asm, ch: asm.finish(), ErrorCode.LENGTH),
    (lambda asm, ch: [asm.add(i, c) for i, c in enumerate(ch + ch[:1])], ErrorCode.LENGTH),
])
def test_assembler_refusals(mutate, code):
    _, chunks, asm = _assembler()
    with pytest.raises(PayloadError) as exc:
        mutate(asm, chunks)
    assert exc.value.code is code


def test_assembler_detects_a_wrong_hash_at_the_end():
    data = b"y" * 300
    asm = PayloadAssembler(len(data), sha256_hex(b"z" * 300))
    for i, c in enumerate(chunk_payload(data)):
        asm.add(i, c)
    with pytest.raises(PayloadError) as exc:
        asm.finish()
    assert exc.value.code is ErrorCode.HASH


@pytest.mark.parametrize("total, sha, code", [
    (10, "abc", ErrorCode.ARG), (10, "g" * 64, ErrorCode.ARG), (-1, "0" * 64, ErrorCode.ARG),
    (5000, "0" * 64, ErrorCode.LENGTH),
])
def test_assembler_refuses_bad_announcements(total, sha, code):
    with pytest.raises(PayloadError) as exc:
        PayloadAssembler(total, sha, max_len=4096)
    assert exc.value.code is code


def test_fields_never_mistake_base64_padding_for_a_field():
    frame = decode_frame(encode_frame(7, Verb.OK, ["sig", "0", "QUI=", "QQ=="]))
    assert frame.fields() == {}
    hello = decode_frame(encode_frame(1, Verb.OK, ["1", "id=00AA", "fw=1.0.0", "mtu=512"]))
    assert hello.fields() == {"id": "00AA", "fw": "1.0.0", "mtu": "512"}


def _frame_of_length(total: int) -> bytes:
    """A valid HELLO frame exactly `total` bytes long, LF included."""
    head = b"1 HELLO "
    body = head + b"A" * (total - len(head) - len(b"*XXXX\n"))
    return body + b"*%04X\n" % crc16_ccitt_false(body)


@pytest.mark.parametrize("strip", [b"", b"\n"], ids=["with LF", "LF already cut"])
def test_the_frame_limit_counts_the_lf_at_the_boundary(strip):
    # Transports hand decode_frame the line without its LF: the limit must still count it,
    # or a 513-byte frame passes as 512 (docs/protocol.md section 2: 512 bytes, LF included).
    fits, over = _frame_of_length(MAX_FRAME), _frame_of_length(MAX_FRAME + 1)
    assert (len(fits), len(over)) == (512, 513)
    assert decode_frame(fits.removesuffix(strip)).verb == "HELLO"
    with pytest.raises(FrameError) as exc:
        decode_frame(over.removesuffix(strip))
    assert exc.value.reason is FrameErrorReason.TOO_LONG
    assert "513 bytes" in str(exc.value)
