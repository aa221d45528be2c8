"""Every codec error says exactly what was wrong (found by mutation testing, docs/testing.md):
the station logs these texts and the conformance kit shows them to a firmware team, so a
refusal that lost its numbers or its explanation would leave them guessing."""
from __future__ import annotations

import hashlib

import pytest

from station.link.codec import (MAX_SEQ, ErrorCode, FrameError, FrameErrorReason, PayloadAssembler, PayloadError,
                                chunk_payload, crc16_ccitt_false, decode_frame, encode_frame)


def _signed(body: bytes) -> bytes:
    """`body` with its correct checksum and LF, whatever the body holds."""
    return body + b"*%04X\n" % crc16_ccitt_false(body)


@pytest.mark.parametrize("line,reason,text", [
    (b"x" * 512 + b"\n", FrameErrorReason.TOO_LONG, "513 bytes with the LF, the maximum is 512"),
    (b"x" * 512, FrameErrorReason.TOO_LONG, "513 bytes with the LF, the maximum is 512"),
    (b"\r\n", FrameErrorReason.EMPTY, "no bytes before the line end"),
    (b"1 OK\x01*0000\n", FrameErrorReason.NOT_ASCII, "byte 0x01 at offset 4; frames are printable ASCII"),
    (b"1 OK\n", FrameErrorReason.NO_CHECKSUM, "line does not end in '*' and 4 hex digits"),
    (b"1 OK*00\n", FrameErrorReason.NO_CHECKSUM, "line does not end in '*' and 4 hex digits"),
    (_signed(b"1 OK a*b"), FrameErrorReason.SYNTAX, "'*' inside the frame body"),
    (_signed(b"1  OK"), FrameErrorReason.SYNTAX, "expected '<seq> <VERB> [args]' separated by single spaces"),
    (_signed(b"1"), FrameErrorReason.SYNTAX, "expected '<seq> <VERB> [args]' separated by single spaces"),
    (_signed(b"01 OK"), FrameErrorReason.BAD_SEQ, f"'01' is not a decimal 0..{MAX_SEQ} without leading zeros"),
    (_signed(b"65536 OK"), FrameErrorReason.BAD_SEQ, f"'65536' is not a decimal 0..{MAX_SEQ} without leading zeros"),
    (_signed(b"1 ok"), FrameErrorReason.BAD_VERB, "'ok' is not 1-16 of A-Z, 0-9, _ starting with a letter"),
], ids=["too-long", "too-long-lf-cut", "empty", "not-ascii", "no-star", "short-crc", "star-in-body",
        "double-space", "no-verb", "leading-zero", "seq-too-big", "lower-case-verb"])
def test_decode_errors_name_the_reason_and_the_detail(line, reason, text):
    with pytest.raises(FrameError) as info:
        decode_frame(line)
    assert info.value.reason is reason
    assert str(info.value) == f"{reason.value}: {text}"


def test_a_bad_checksum_shows_both_values():
    body = b"7 OK"
    with pytest.raises(FrameError) as info:
        decode_frame(body + b"*0000\n")
    assert str(info.value) == f"bad checksum: frame says 0000, content gives {crc16_ccitt_false(body):04X}"


@pytest.mark.parametrize("seq,verb,args,text", [
    (MAX_SEQ + 1, "OK", [], f"sequence number {MAX_SEQ + 1} outside 0..{MAX_SEQ}"),
    (-1, "OK", [], f"sequence number -1 outside 0..{MAX_SEQ}"),
    (1, "ok", [], "verb 'ok' is not 1-16 of A-Z, 0-9, _ starting with a letter"),
    (1, "OK", [""], "empty argument"),
    (1, "OK", ["a b"], "argument 'a b' holds ' ': only printable ASCII without space or '*'"),
    (1, "OK", ["a*b"], "argument 'a*b' holds '*': only printable ASCII without space or '*'"),
    (1, "OK", ["x" * 600], "frame of 611 bytes exceeds the maximum of 512"),
], ids=["seq-too-big", "seq-negative", "verb", "empty-arg", "space", "star", "too-long"])
def test_encode_errors_say_what_the_caller_got_wrong(seq, verb, args, text):
    with pytest.raises(ValueError) as info:
        encode_frame(seq, verb, args)
    assert str(info.value) == text


def test_a_chunk_size_of_zero_is_refused_with_its_reason():
    with pytest.raises(ValueError) as info:
        chunk_payload(b"data", 0)
    assert str(info.value) == "chunk size must be positive"


DATA = b"abc"
SHA = hashlib.sha256(DATA).digest()


def _assembler_with_first_chunk() -> PayloadAssembler:
    assembler = PayloadAssembler(len(DATA), SHA)
    assembler.add(0, "YQ==")  # b"a"
    return assembler


@pytest.mark.parametrize("act,code,text", [
    (lambda: PayloadAssembler(-1, SHA), ErrorCode.ARG, "length must not be negative"),
    (lambda: PayloadAssembler(10, SHA, max_len=5), ErrorCode.LENGTH,
     "10 bytes announced, this object holds at most 5"),
    (lambda: PayloadAssembler(3, "ab" * 31), ErrorCode.ARG, "SHA-256 must be 32 bytes (64 hex digits)"),
    (lambda: PayloadAssembler(3, "zz" * 32), ErrorCode.ARG, "SHA-256 must be 32 bytes (64 hex digits)"),
    (lambda: PayloadAssembler(3, SHA[:31]), ErrorCode.ARG, "SHA-256 must be 32 bytes (64 hex digits)"),
    (lambda: PayloadAssembler(3, SHA).add(0, "Y Q=="), ErrorCode.CHUNK, "chunk 0 is not valid base64"),
    (lambda: PayloadAssembler(3, SHA).add(0, "\u00e9"), ErrorCode.CHUNK, "chunk 0 is not valid base64"),
    (lambda: _assembler_with_first_chunk().add(0, "Yg=="), ErrorCode.CHUNK, "chunk 0 resent with different content"),
    (lambda: _assembler_with_first_chunk().add(2, "Yg=="), ErrorCode.CHUNK, "chunk 2 out of order, expected 1"),
    (lambda: PayloadAssembler(3, SHA).add(0, ""), ErrorCode.CHUNK, "chunk 0 is empty"),
    (lambda: _assembler_with_first_chunk().add(1, "YmNk"), ErrorCode.LENGTH,
     "chunk 1 goes past the announced 3 bytes"),
    (lambda: _assembler_with_first_chunk().finish(), ErrorCode.LENGTH, "received 1 of 3 announced bytes"),
], ids=["negative", "over-capacity", "short-hex", "not-hex", "short-digest", "bad-base64", "not-ascii",
        "changed-resend", "skip-ahead", "empty-chunk", "past-the-end", "finish-short"])
def test_transfer_errors_carry_the_code_and_the_detail(act, code, text):
    with pytest.raises(PayloadError) as info:
        act()
    assert info.value.code is code
    assert str(info.value) == text


def test_a_wrong_hash_is_refused_with_its_reason():
    assembler = PayloadAssembler(len(DATA), hashlib.sha256(b"abd").digest())
    assembler.add(0, "YWJj")
    with pytest.raises(PayloadError) as info:
        assembler.finish()
    assert info.value.code is ErrorCode.HASH
    assert str(info.value) == "SHA-256 of the received bytes differs from the announced one"
