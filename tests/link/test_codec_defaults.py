"""The codec's defaults are the protocol's (docs/protocol.md): without a baud rate, answer
timeouts assume the protocol's 115200 baud and a request of the maximal frame length."""
from __future__ import annotations

from station.link.codec import COMMANDS, MAX_FRAME, Verb, answer_timeout


def test_answer_timeout_defaults_to_115200_baud_and_a_maximal_request():
    budget = COMMANDS[Verb.HELLO].timeout_s
    assert answer_timeout(Verb.HELLO) == budget + (MAX_FRAME + MAX_FRAME) * 10 / 115200
