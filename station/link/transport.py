"""Line-framed serial transport over pyserial.

One `SerialTransport` owns one open port. It moves whole frames (one line each, the line
end not included) and knows nothing about their content: the codec and the driver do.
What it guarantees:

- the port opens by device path or by any pyserial URL (`socket://host:port`, `loop://`),
  because URLs go through `serial.serial_for_url`;
- a device path is waited on with poll(), never select(): a station driving hundreds of
  ports has descriptors above 1023, which select() cannot watch (`PollSerial`);
- no frame longer than `frame_limit` bytes goes out, and a longer line from the device is
  dropped with `FrameTooLong`; the stream then resynchronises at the next line end;
- every read and write has a deadline, so nothing blocks forever;
- every serial or OS failure comes out as a `station.link.errors` exception naming the
  step and the port, never as a raw `SerialException`.

A transport is not thread-safe and needs no locking: the engine gives each slot its own
driver (and so its own transport) used from that slot's worker thread only.
"""
from __future__ import annotations

import errno
import os
import resource
import select
import termios
import time

import serial
from serial.serialutil import PortNotOpenError, SerialTimeoutException, Timeout, to_bytes
from serial.serialposix import PosixPollSerial

from station.errors import EnvironmentProblem
from station.link.codec import line_seconds
from station.link.errors import (
    DeviceDisconnected,
    DeviceTimeout,
    FrameTooLong,
    PortUnavailable,
)

# What a port that went away can raise. Changing settings (pyserial re-applies them when the
# timeout changes) or flushing calls termios, and on a vanished pty termios raises
# termios.error with EIO, which is not an OSError.
PORT_ERRORS = (serial.SerialException, OSError, termios.error)

DEFAULT_FRAME_LIMIT = 512
DEFAULT_BAUDRATE = 115200
# Writes are small and the device drains them at line speed; a write that cannot finish
# in this margin plus the frame's time on the wire means the peer stopped reading (a full
# pty or USB buffer), not a slow link.
WRITE_MARGIN_S = 2.0
# Longest single read. Fixed once at open: changing pyserial's timeout re-applies every
# termios setting (tcsetattr) on each call. Deadlines may overshoot by at most this much.
READ_POLL_S = 0.05


class SerialTransport:
    """One open port carrying line-terminated frames.

    `frame_limit` counts a whole line, its line end included (as MAX_FRAME does in
    docs/protocol.md). `step` arguments name the command in progress; they only go into
    error messages.
    """

    # When a dict, every transport adds what it carried to it on close(): port -> [bytes
    # sent, bytes received, frames sent, seconds those bytes took on the wire at the rates
    # they went at]. `station bench line` sets it to count the bytes a
    # device really exchanged; otherwise None, and nothing is kept.
    traffic: dict[str, list[int]] | None = None

    def __init__(self, port: str, *, baudrate: int = DEFAULT_BAUDRATE,
                 frame_limit: int = DEFAULT_FRAME_LIMIT, terminator: bytes = b"\n",
                 write_timeout: float | None = None):
        self.port = port
        self.frame_limit = frame_limit
        self.terminator = terminator
        self._buffer = bytearray()
        self.bytes_sent = self.bytes_received = self.frames_sent = 0
        self.wire_s = 0.0  # the bytes above at the rate each went at (a LINE switch changes it)
        # After an over-long line, bytes up to the next line end belong to it and are dropped.
        self._discarding = False
        self.baudrate = baudrate
        self.write_timeout = (WRITE_MARGIN_S + line_seconds(frame_limit, baudrate)
                              if write_timeout is None else write_timeout)
        try:
            # exclusive=True: two slots configured on the same device must not both talk to it.
            self._serial = open_port(port, baudrate=baudrate, timeout=READ_POLL_S,
                                     write_timeout=self.write_timeout, exclusive=True)
        except (*PORT_ERRORS, ValueError) as exc:
            raise PortUnavailable(port, _describe(exc)) from exc

    # -- frames -------------------------------------------------------------------------

    def send(self, frame: bytes, *, step: str) -> None:
        """Write one frame; its line end is added unless it is already there (the codec's
        encode_frame includes it). Raises ValueError (a station bug, not a device fault) for
        a frame over the limit or with a line end inside it."""
        if not frame.endswith(self.terminator):
            frame += self.terminator
        if len(frame) > self.frame_limit:
            raise ValueError(f"{step} frame is {len(frame)} bytes, "
                             f"over the {self.frame_limit}-byte limit")
        if self.terminator in frame[:-len(self.terminator)]:
            raise ValueError(f"{step} frame contains a line end")
        self.send_raw(frame, step=step)
        self.frames_sent += 1

    def send_raw(self, data: bytes, *, step: str) -> None:
        """Write bytes as they are, with no framing and no limit. For the conformance kit,
        which must be able to send what a correct station never would."""
        # No flush(): its tcdrain() has no timeout and can wait on a stopped peer forever;
        # write() with write_timeout returns only once the kernel holds every byte.
        try:
            self._serial.write(data)
            self.bytes_sent += len(data)
            self.wire_s += line_seconds(len(data), self.baudrate)
        except serial.SerialTimeoutException as exc:
            raise DeviceTimeout(step, self.write_timeout, port=self.port) from exc
        except PORT_ERRORS as exc:
            raise DeviceDisconnected(step, port=self.port, detail=_describe(exc)) from exc

    def receive(self, *, step: str, timeout: float) -> bytes:
        """Return the next frame from the device, without its line end (a trailing CR is
        dropped too), waiting at most `timeout` seconds.

        Raises DeviceTimeout when no complete line arrives in time, FrameTooLong when the
        line exceeds the limit (the rest of it is skipped on the next call), and
        DeviceDisconnected when the port goes away.
        """
        deadline = time.monotonic() + timeout
        while True:
            frame = self._take_frame(step)
            if frame is not None:
                return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeviceTimeout(step, timeout, port=self.port)
            self._buffer += self._read_some(step)

    def set_baudrate(self, baud: int, *, step: str) -> bool:
        """Switch the port to `baud` (the compact extension's LINE, docs/protocol.md 9.3); the
        write deadline follows the new rate. False (nothing changed) when the adapter refuses
        the rate; DeviceDisconnected when the port is gone."""
        try:
            self._serial.baudrate = baud
        except ValueError:
            return False
        except PORT_ERRORS as exc:
            raise DeviceDisconnected(step, port=self.port, detail=_describe(exc)) from exc
        self.baudrate = baud
        self.write_timeout = WRITE_MARGIN_S + line_seconds(self.frame_limit, baud)
        self._serial.write_timeout = self.write_timeout
        return True

    def discard_input(self) -> None:
        """Forget everything received and not yet consumed (before a retry, so a late
        answer to the previous attempt is not taken for the answer to this one)."""
        self._buffer.clear()
        self._discarding = False
        try:
            self._serial.reset_input_buffer()
        except PORT_ERRORS:
            pass  # a vanished port shows on the next read, with the step named

    def close(self) -> None:
        """Close the port. Idempotent; never raises."""
        if SerialTransport.traffic is not None and self._serial.is_open:
            counts = SerialTransport.traffic.setdefault(self.port, [0, 0, 0, 0.0])
            counts[0] += self.bytes_sent
            counts[1] += self.bytes_received
            counts[2] += self.frames_sent
            counts[3] += self.wire_s
        try:
            self._serial.close()
        except PORT_ERRORS:
            pass

    def __enter__(self) -> "SerialTransport":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------

    def _take_frame(self, step: str) -> bytes | None:
        """Cut one frame out of the buffer, or None when no full line is there yet."""
        while True:
            end = self._buffer.find(self.terminator)
            if self._discarding:
                if end < 0:
                    self._buffer.clear()
                    return None
                del self._buffer[: end + len(self.terminator)]
                self._discarding = False
                continue
            if end < 0:
                # Even a line end arriving next would make this line too long.
                if len(self._buffer) + len(self.terminator) > self.frame_limit:
                    self._buffer.clear()
                    self._discarding = True
                    raise FrameTooLong(step, self.frame_limit, port=self.port)
                return None
            line_length = end + len(self.terminator)
            frame = bytes(self._buffer[:end])
            del self._buffer[:line_length]
            if line_length > self.frame_limit:
                raise FrameTooLong(step, self.frame_limit, port=self.port)
            return frame[:-1] if frame.endswith(b"\r") else frame

    def _read_some(self, step: str) -> bytes:
        try:
            if isinstance(self._serial, PollSerial):
                data = self._serial.read_available(self.frame_limit + 1)
            else:  # a URL port (socket://, loop://): pyserial's own classes
                waiting = self._serial.in_waiting
                data = self._serial.read(max(1, min(waiting, self.frame_limit + 1)))
            self.bytes_received += len(data)
            self.wire_s += line_seconds(len(data), self.baudrate)
            return data
        except PORT_ERRORS as exc:
            # On a pty whose other end closed, and on an unplugged USB adapter, the read
            # fails with EIO or "readiness to read but returned no data": the device is gone.
            raise DeviceDisconnected(step, port=self.port, detail=_describe(exc)) from exc


class PollSerial(PosixPollSerial):
    """pyserial's POSIX port, waiting in poll() for both directions.

    pyserial 3.5's default `Serial` waits in select(), which raises "filedescriptor out of
    range in select()" for a descriptor above 1023. Its `PosixPollSerial` polls only in
    read(), and that read fails with UnboundLocalError when the poll times out with nothing
    ready (pyserial issue #617, fixed after 3.5); its write() still selects. Both are
    replaced here; everything else (open, termios, exclusive lock, in_waiting) is pyserial's.
    """

    _ERRORS = select.POLLERR | select.POLLHUP | select.POLLNVAL

    def _wait(self, event: int, abort_fd: int, timeout: Timeout) -> bool | None:
        """Wait in poll() for `event` on the port until `timeout`: True when ready, False
        when the time ran out, None when cancelled (cancel_read/cancel_write)."""
        poller = select.poll()
        poller.register(self.fd, event | self._ERRORS)
        poller.register(abort_fd, select.POLLIN)
        events = dict(poller.poll(None if timeout.is_infinite
                                  else max(0.0, timeout.time_left()) * 1000))
        if abort_fd in events:
            os.read(abort_fd, 1000)
            return None
        if events.get(self.fd, 0) & self._ERRORS:
            raise serial.SerialException("device reports error (poll)")
        return bool(events)

    def _read_once(self, size: int, timeout: Timeout) -> bytes | None:
        """What one wait until `timeout` brings (at most `size` bytes; b"" when the time ran
        out, None when cancelled)."""
        ready = self._wait(select.POLLIN, self.pipe_abort_read_r, timeout)
        if not ready:
            return ready if ready is None else b""
        try:
            chunk = os.read(self.fd, size)
        except BlockingIOError:
            return b""
        if not chunk:
            raise serial.SerialException("device reports readiness to read but returned no data "
                                         "(device disconnected or multiple access on port?)")
        return chunk

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise PortNotOpenError()
        read = bytearray()
        timeout = Timeout(self._timeout)
        while len(read) < size:
            chunk = self._read_once(size - len(read), timeout)
            if chunk is None:  # cancel_read()
                break
            read += chunk
            if timeout.expired():
                break
        return bytes(read)

    def read_available(self, size: int) -> bytes:
        """Wait up to the read timeout for input, then return what has arrived (at most
        `size` bytes; b"" on timeout). One poll and one read a burst, where in_waiting + read
        take an ioctl and, for a burst that starts while waiting, two reads."""
        if not self.is_open:
            raise PortNotOpenError()
        return self._read_once(size, Timeout(self._timeout)) or b""

    def write(self, data) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        view = memoryview(to_bytes(data))
        total = len(view)
        timeout = Timeout(self._write_timeout)
        while view:
            try:
                view = view[os.write(self.fd, view):]
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    raise serial.SerialException(f"write failed: {exc}") from exc
            if not view or timeout.is_non_blocking:
                break
            if timeout.expired():
                raise SerialTimeoutException("Write timeout")
            ready = self._wait(select.POLLOUT, self.pipe_abort_write_r, timeout)
            if ready is None:
                break
            if not ready:
                raise SerialTimeoutException("Write timeout")
        return total - len(view)


def open_port(port: str, **settings) -> serial.SerialBase:
    """Open `port`: a device path as a `PollSerial`, a URL (`socket://`, `loop://`, ...) with
    `serial.serial_for_url`. Raises what pyserial raises."""
    if "://" in port:
        return serial.serial_for_url(port, **settings)
    return PollSerial(port, **settings)


# Descriptors one open serial port costs: the port and pyserial's two abort pipes.
DESCRIPTORS_PER_PORT = 5
# Left free beyond what the caller asks for: the database, the token, logs, Python's own.
_DESCRIPTOR_HEADROOM = 256


def ensure_open_files(more: int) -> int:
    """Make room for `more` descriptors beyond those already open: raise this process's soft
    RLIMIT_NOFILE if it is lower (the usual default, 1024, is too few for a line of a few
    hundred ports).

    Returns: the soft limit now in force.
    Raises: EnvironmentProblem when the hard limit is too low: only an administrator can
    raise that (`ulimit -Hn`, systemd's LimitNOFILE=, limits.conf).
    """
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 64
    needed = in_use + more + _DESCRIPTOR_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    refused = EnvironmentProblem(
        f"this line needs about {needed} open files, but this process may open at most "
        f"{hard if hard != resource.RLIM_INFINITY else soft} and only an administrator can "
        "raise that (ulimit -Hn, or LimitNOFILE= in the service unit)")
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise refused
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    except (ValueError, OSError) as exc:  # above the kernel's fs.nr_open
        raise refused from exc
    return needed


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if "exclusively lock" in text:
        return "the port is in use by another program"
    # pyserial repeats the path and errno around the OS's own words; keep those.
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code > 0:
        return os.strerror(code)
    return text or type(exc).__name__
