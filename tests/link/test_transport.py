"""SerialTransport over real pseudo-terminals (the device side is the pty master, written and
closed by the test) and over pyserial's loop:// and socket:// URLs."""
from __future__ import annotations

import os
import select
import socket
import threading
import time

import pytest

from station.errors import ExitCode
from station.link.errors import (
    DeviceDisconnected,
    DeviceTimeout,
    FrameTooLong,
    PortUnavailable,
)
from station.link.transport import SerialTransport


class Pty:
    """A pseudo-terminal pair: the test plays the device on `master`."""

    def __init__(self):
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        self._slave = slave  # held open until the transport has the port, so no EIO race

    def device_writes(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait_readable(self) -> None:
        ready, _, _ = select.select([self._slave], [], [], 5)
        assert ready, "bytes written to the pty master never reached the slave"

    def vanish(self) -> None:
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def close(self) -> None:
        self.vanish()
        os.close(self._slave)


@pytest.fixture
def pty():
    p = Pty()
    yield p
    p.close()


@pytest.fixture
def link(pty):
    t = SerialTransport(pty.path, frame_limit=32)
    yield t
    t.close()


def test_loop_url_round_trips_a_frame():
    with SerialTransport("loop://", frame_limit=32) as t:
        t.send(b"HELLO 1", step="HELLO")
        t.send(b"HELLO 2\n", step="HELLO")  # already terminated: not doubled
        assert t.receive(step="HELLO", timeout=1.0) == b"HELLO 1"
        assert t.receive(step="HELLO", timeout=1.0) == b"HELLO 2"
        with pytest.raises(DeviceTimeout):
            t.receive(step="HELLO", timeout=0.05)


def test_station_never_sends_an_over_long_frame():
    with SerialTransport("loop://", frame_limit=8) as t:
        with pytest.raises(ValueError, match="over the 8-byte limit"):
            t.send(b"12345678", step="PUT")
        t.send(b"1234567", step="PUT")  # 7 bytes and the LF: exactly the limit
        with pytest.raises(ValueError, match="line end"):
            t.send(b"a\nb", step="PUT")


def test_frames_split_across_reads_and_crlf_are_reassembled(pty, link):
    pty.device_writes(b"OK 1 ab")
    pty.device_writes(b"cd\r\nOK 2\n")
    assert link.receive(step="HELLO", timeout=1.0) == b"OK 1 abcd"
    assert link.receive(step="HELLO", timeout=1.0) == b"OK 2"


def test_over_long_line_is_rejected_and_stream_resynchronises(pty, link):
    pty.device_writes(b"X" * 32 + b"\nOK after\n")
    with pytest.raises(FrameTooLong) as err:
        link.receive(step="CSR", timeout=1.0)
    assert err.value.step == "CSR"
    assert "longer than 32 bytes" in str(err.value)
    assert link.receive(step="CSR", timeout=1.0) == b"OK after"


def test_over_long_line_without_end_is_dropped_until_its_end_arrives(pty, link):
    pty.device_writes(b"Y" * 100)
    with pytest.raises(FrameTooLong):
        link.receive(step="CSR", timeout=1.0)
    pty.device_writes(b"Y" * 100 + b"\nOK 3\n")
    assert link.receive(step="CSR", timeout=1.0) == b"OK 3"


def test_exactly_the_limit_is_accepted(pty, link):
    # The limit counts the line end, as MAX_FRAME does in the protocol.
    pty.device_writes(b"Z" * 31 + b"\n")
    assert link.receive(step="PUT", timeout=1.0) == b"Z" * 31


def test_silent_device_times_out_within_its_bound(pty, link):
    started = time.monotonic()
    with pytest.raises(DeviceTimeout) as err:
        link.receive(step="KEYGEN", timeout=0.2)
    # A bound, not a speed test: the point is that it returns rather than hangs.
    assert time.monotonic() - started < 5
    assert str(err.value) == f"device on {pty.path} did not answer KEYGEN within 0.2 s"
    assert err.value.step == "KEYGEN"


def test_partial_line_then_silence_is_a_timeout(pty, link):
    pty.device_writes(b"OK 4 half")
    with pytest.raises(DeviceTimeout):
        link.receive(step="PROVE", timeout=0.2)


def test_vanished_device_is_disconnected_not_a_hang(pty, link):
    pty.vanish()
    with pytest.raises(DeviceDisconnected) as err:
        link.receive(step="COMMIT", timeout=5.0)
    assert str(err.value).startswith(f"device on {pty.path} vanished during COMMIT")
    assert err.value.step == "COMMIT"
    with pytest.raises(DeviceDisconnected):
        link.send(b"COMMIT 9", step="COMMIT")


def test_device_that_stops_reading_makes_writes_time_out(pty):
    # Nobody reads the master: the pty buffer fills and the write must give up, not block.
    with SerialTransport(pty.path, write_timeout=0.2) as t:
        with pytest.raises(DeviceTimeout) as err:
            t.send_raw(b"A" * 1_000_000, step="PUT")
    assert err.value.step == "PUT"


def test_discard_input_drops_stale_answers(pty, link):
    pty.device_writes(b"OK late\n")
    pty.wait_readable()  # the late answer is in the port's input queue, unread
    link.discard_input()
    pty.device_writes(b"OK fresh\n")
    assert link.receive(step="HELLO", timeout=1.0) == b"OK fresh"


def test_missing_port_is_an_environment_problem(tmp_path):
    missing = str(tmp_path / "ttyNOPE")
    with pytest.raises(PortUnavailable) as err:
        SerialTransport(missing)
    assert err.value.exit_code == ExitCode.ENVIRONMENT
    assert str(err.value).startswith(f"cannot open {missing}: ")


def test_bad_url_is_an_environment_problem():
    with pytest.raises(PortUnavailable, match="cannot open nosuch://x"):
        SerialTransport("nosuch://x")


def test_socket_url_peer_closing_is_disconnected():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def accept_then_hang_up():
        conn, _ = server.accept()
        # pyserial's socket:// open() flushes what already arrived: answer only when asked.
        conn.recv(16)
        conn.sendall(b"OK hi\n")
        conn.close()

    thread = threading.Thread(target=accept_then_hang_up)
    thread.start()
    try:
        with SerialTransport(f"socket://127.0.0.1:{port}") as t:
            t.send(b"HELLO", step="HELLO")
            assert t.receive(step="HELLO", timeout=2.0) == b"OK hi"
            with pytest.raises(DeviceDisconnected):
                t.receive(step="KEYGEN", timeout=2.0)
    finally:
        thread.join(5)
        server.close()
