"""The simulator paces both directions at its baud rate (10 bits a byte): a request reaches
the device only once all its bytes would have crossed the wire, and an answer leaves no
faster than the wire allows. Real pseudo-terminals, read with pyserial as the station does."""
from __future__ import annotations

import time

import serial

from station.link.codec import decode_frame, encode_frame
from station.sim import SimulatedLine

BAUD = 9600  # slow enough that wire time dwarfs scheduling noise on a loaded machine


def timed_answer(port: serial.Serial, frame: bytes) -> tuple[float, bytes]:
    start = time.monotonic()
    port.write(frame)
    answer = port.readline()
    return time.monotonic() - start, answer


def test_a_long_request_takes_its_wire_time_to_reach_the_device(tmp_path):
    # 480 bytes of a frame the device cannot read: it answers a short ERR, but only after
    # the whole line has arrived, 480 * 10 / 9600 = 0.5 s after the station wrote it.
    request = b"1 HELLO " + b"x" * 470 + b"*0000\n"
    with SimulatedLine(1, tmp_path, baud=BAUD, keygen_ms=0) as line:
        with serial.Serial(line.ports[0], BAUD, timeout=5) as port:
            elapsed, answer = timed_answer(port, request)
    assert decode_frame(answer).is_error
    wire = (len(request) + len(answer)) * 10 / BAUD
    assert elapsed >= wire * 0.95, (elapsed, wire)


def test_an_answer_leaves_at_the_baud_rate_in_both_directions(tmp_path):
    request = encode_frame(1, "HELLO", ["1"])
    with SimulatedLine(1, tmp_path, baud=BAUD, keygen_ms=0) as line:
        with serial.Serial(line.ports[0], BAUD, timeout=5) as port:
            elapsed, answer = timed_answer(port, request)
    assert decode_frame(answer).is_ok
    wire = (len(request) + len(answer)) * 10 / BAUD
    # Never faster than the wire; the schedule keeps sleep overshoot from adding up.
    assert wire * 0.95 <= elapsed <= wire * 1.5 + 0.1, (elapsed, wire)
