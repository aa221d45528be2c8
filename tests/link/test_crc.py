"""The frame CRC the station uses (binascii.crc_hqx, in C) agrees with the bitwise reference
a firmware writes (docs/protocol.md §2.1), on the documented vectors and on real frames."""
from __future__ import annotations

import binascii
import random

import pytest

from station.link.codec import (
    MAX_FRAME, crc16_ccitt_false, crc16_ccitt_false_reference, encode_frame, Verb,
)

VECTORS = [(b"", 0xFFFF), (b"A", 0xB915), (b"123456789", 0x29B1)]


@pytest.mark.parametrize("data,crc", VECTORS)
def test_reference_and_station_crc_give_the_documented_vectors(data, crc):
    assert crc16_ccitt_false_reference(data) == crc
    assert crc16_ccitt_false(data) == crc


def test_station_crc_is_the_standard_library_one_and_agrees_with_the_reference_everywhere():
    rng = random.Random(10)
    for length in list(range(0, 64)) + [rng.randrange(64, MAX_FRAME) for _ in range(200)]:
        data = bytes(rng.randrange(256) for _ in range(length))
        start = rng.choice((0xFFFF, 0, rng.randrange(0x10000)))
        assert crc16_ccitt_false(data, start) == crc16_ccitt_false_reference(data, start) \
            == binascii.crc_hqx(data, start)


def test_a_full_frame_carries_the_reference_crc():
    frame = encode_frame(7, Verb.PUT, ["cert", "0", "QUJD" * 100])
    body, _, crc = frame.rstrip(b"\n").rpartition(b"*")
    assert int(crc, 16) == crc16_ccitt_false_reference(body)
