"""Line-framed serial transport over pyserial.

One `SerialTransport` owns one open port. It moves whole frames (one line each, the line
end not included) and knows nothing about their content: the codec and the driver do.
What it guarantees:

- the port opens by device path or by any pyserial URL (`socket://host:port`, `loop://`),
  because it goes through `serial.serial_for_url`;
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
import termios
import os
import time

import serial

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

    def __init__(self, port: str, *, baudrate: int = DEFAULT_BAUDRATE,
                 frame_limit: int = DEFAULT_FRAME_LIMIT, terminator: bytes = b"\n",
                 write_timeout: float | None = None):
        self.port = port
        self.frame_limit = frame_limit
        self.terminator = terminator
        self._buffer = bytearray()
        # After an over-long line, bytes up to the next line end belong to it and are dropped.
        self._discarding = False
        self.baudrate = baudrate
        self.write_timeout = (WRITE_MARGIN_S + line_seconds(frame_limit, baudrate)
                              if write_timeout is None else write_timeout)
        try:
            # exclusive=True: two slots configured on the same device must not both talk to it.
            self._serial = serial.serial_for_url(
                port, baudrate=baudrate, timeout=READ_POLL_S, write_timeout=self.write_timeout,
                exclusive=True)
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

    def send_raw(self, data: bytes, *, step: str) -> None:
        """Write bytes as they are, with no framing and no limit. For the conformance kit,
        which must be able to send what a correct station never would."""
        # No flush(): its tcdrain() has no timeout and can wait on a stopped peer forever;
        # write() with write_timeout returns only once the kernel holds every byte.
        try:
            self._serial.write(data)
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
            try:
                waiting = self._serial.in_waiting
            except OSError as exc:
                # umockdev's emulated tty nodes refuse TIOCINQ (ENOTTY) yet read fine: take a
                # byte at a time there. A port that vanished fails the read below instead.
                if exc.errno != errno.ENOTTY:
                    raise
                waiting = 0
            return self._serial.read(max(1, min(waiting, self.frame_limit + 1)))
        except PORT_ERRORS as exc:
            # On a pty whose other end closed, and on an unplugged USB adapter, the read
            # fails with EIO or "readiness to read but returned no data": the device is gone.
            raise DeviceDisconnected(step, port=self.port, detail=_describe(exc)) from exc


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if "exclusively lock" in text:
        return "the port is in use by another program"
    # pyserial repeats the path and errno around the OS's own words; keep those.
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code > 0:
        return os.strerror(code)
    return text or type(exc).__name__
