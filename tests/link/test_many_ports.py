"""Ports with descriptors above 1023 (a station driving hundreds of ports): the transport
waits in poll(), never select(), which cannot watch them. Real pseudo-terminals and the real
simulator, whose own descriptors are above 1023 too."""
from __future__ import annotations

import os
import resource

import pytest

from station.errors import EnvironmentProblem
from station.link.codec import Verb, decode_frame, encode_frame
from station.link.errors import DeviceDisconnected, DeviceTimeout
from station.link.transport import SerialTransport, ensure_open_files
from station.sim.pty_server import SimulatedLine


@pytest.fixture
def high_descriptors():
    """Fill the descriptors below 1100, so every descriptor opened next is above 1023."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the hard RLIMIT_NOFILE ({hard}) leaves no room above 1023")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    filler = []
    while not filler or filler[-1] < 1100:
        filler.append(os.open("/dev/null", os.O_RDONLY))
    yield
    for fd in filler:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_device_above_descriptor_1023_answers_through_the_transport(high_descriptors, tmp_path):
    with SimulatedLine(1, tmp_path, keygen_ms=0) as line:
        with SerialTransport(line.ports[0]) as link:
            assert link._serial.fd > 1023
            link.send(encode_frame(1, Verb.HELLO, ["1"]), step="HELLO")
            answer = decode_frame(link.receive(step="HELLO", timeout=5) + b"\n")
            assert answer.is_ok and answer.seq == 1
            # A read that times out with nothing there is a DeviceTimeout, not a crash.
            with pytest.raises(DeviceTimeout):
                link.receive(step="HELLO", timeout=0.2)


def test_a_vanished_port_above_1023_is_a_disconnect(high_descriptors):
    master, slave = os.openpty()
    path = os.ttyname(slave)
    link = SerialTransport(path)
    os.close(slave)
    os.close(master)
    with pytest.raises(DeviceDisconnected):
        link.receive(step="GET", timeout=2)
    link.close()


def test_open_file_limit_is_raised_for_a_large_line_and_a_too_low_hard_limit_is_named():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        assert ensure_open_files(1000 * 5) >= 5000
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 5000
        with pytest.raises(EnvironmentProblem, match=r"may open at most \d+ .*ulimit -Hn"):
            ensure_open_files(hard + 1 if hard != resource.RLIM_INFINITY else 2**40)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_poll_serial_read_returns_what_came_when_the_timeout_ends(high_descriptors):
    # pyserial 3.5's PosixPollSerial.read raised UnboundLocalError here (its issue #617).
    from station.link.transport import PollSerial

    master, slave = os.openpty()
    try:
        port = PollSerial(os.ttyname(slave), timeout=0.2, write_timeout=1)
        assert port.fd > 1023
        os.write(master, b"hello")
        assert port.read(3) == b"hel"
        assert port.read(10) == b"lo"  # two bytes, then the timeout: no crash
        assert port.read(1) == b""
        assert port.write(b"x" * 100) == 100 and os.read(master, 200) == b"x" * 100
        port.close()
    finally:
        os.close(master)
        os.close(slave)
