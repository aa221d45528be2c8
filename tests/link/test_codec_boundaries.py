"""Codec edges that mutation testing found unpinned (docs/testing.md, "Scores"): the exact
frame and object size limits, base64 strictness, what counts as a key=value field, the
characters an ERR text keeps and the bytes a frame may hold."""
from __future__ import annotations

import hashlib

import pytest

from station.link.codec import (ErrorCode, FrameError, FrameErrorReason, PayloadAssembler, PayloadError, Verb,
                                crc16_ccitt_false, decode_frame, encode_error, encode_frame)


def _frame_of(length: int) -> bytes:
    """A valid OK frame of exactly `length` bytes."""
    overhead = len(encode_frame(1, Verb.OK, ["x"])) - 1
    return encode_frame(1, Verb.OK, ["x" * (length - overhead)], max_frame=length)


def test_a_frame_of_exactly_the_maximum_is_encoded_and_decoded_one_more_byte_is_not():
    frame = _frame_of(100)
    assert len(frame) == 100
    assert decode_frame(frame, max_frame=100).args == ("x" * (100 - 11),)
    with pytest.raises(ValueError, match="exceeds the maximum of 99"):
        encode_frame(1, Verb.OK, ["x" * (100 - 11)], max_frame=99)
    with pytest.raises(FrameError) as too_long:
        decode_frame(frame, max_frame=99)
    assert too_long.value.reason is FrameErrorReason.TOO_LONG


def test_an_object_of_exactly_its_capacity_is_accepted():
    data = bytes(4096)
    assembler = PayloadAssembler(len(data), hashlib.sha256(data).digest(), max_len=4096)
    assert assembler.total_len == 4096
    with pytest.raises(PayloadError) as over:
        PayloadAssembler(4097, hashlib.sha256(data).digest(), max_len=4096)
    assert over.value.code is ErrorCode.LENGTH


@pytest.mark.parametrize("chunk", ["QUJD.", "QU JD", "QUJD\n"])
def test_a_chunk_with_a_character_outside_base64_is_refused_not_skipped(chunk):
    """Lenient base64 would drop the stray character and accept b"ABC"."""
    assembler = PayloadAssembler(3, hashlib.sha256(b"ABC").digest())
    with pytest.raises(PayloadError) as refused:
        assembler.add(0, chunk)
    assert refused.value.code is ErrorCode.CHUNK


def test_a_field_value_may_hold_an_equals_sign_but_not_start_with_one():
    frame = decode_frame(encode_frame(3, Verb.OK, ["mode=a=b", "pad==x", "QUI="]))
    assert frame.fields() == {"mode": "a=b"}


def test_err_text_keeps_every_printable_character_but_the_star():
    frame = decode_frame(encode_error(4, ErrorCode.ARG, "a~b c*d é"))
    assert frame.error_text == "a~b c?d ?"
    assert encode_error(4, ErrorCode.ARG) == encode_frame(4, Verb.ERR, [ErrorCode.ARG.value])


def test_a_verb_outside_ascii_is_a_value_error_naming_the_rule():
    with pytest.raises(ValueError, match="is not 1-16 of A-Z"):
        encode_frame(1, "ÉCRIS")


def test_a_delete_byte_is_not_printable_ascii():
    body = b"1 OK a\x7fb"
    with pytest.raises(FrameError) as refused:
        decode_frame(body + b"*%04X\n" % crc16_ccitt_false(body))
    assert refused.value.reason is FrameErrorReason.NOT_ASCII
