"""Driver for the certificate injection protocol ("cip", docs/protocol.md, version 1).

Two layers:

- `CipSession` does the frame work of sections 2 and 6: sequence numbers, one outstanding
  request, resending the identical frame on silence or a damaged answer, skipping noise and
  stale answers, chunked uploads and downloads. The conformance kit drives it directly.
- `CipDriver` is the `DeviceDriver` the engine uses: identify -> request_csr ->
  write_object -> commit -> prove -> lock, each one call, each ending in a value or a
  `station.link.errors` exception.

Choice documented for the engine: `commit()` compares the device's reported hashes with the
SHA-256 of every object written through this driver since the last commit and raises
`DeviceIntegrityError` on any difference, so a returned `CommitReceipt` always matches.
`prove()` only returns the signature; verifying it against the issued certificate is the
engine's job (it holds the certificate). `request_csr()` returns the CSR as the device sent
it, without judging it: the issuance policy does that.

One driver per port, used from one thread; no module-level state.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import time
from typing import ClassVar

from station.drivers.base import CommitReceipt, DeviceIdentity, ObjectKind
from station.drivers.identity import parse_hello
from station.link.codec import (
    COMMANDS,
    DEFAULT_CHUNK,
    DEVICE_SEQ,
    MAX_FRAME,
    MAX_SEQ,
    NONCE_LEN,
    PROTOCOL_VERSION,
    Frame,
    FrameError,
    FrameErrorReason,
    Verb,
    answer_timeout,
    decode_frame,
    encode_frame,
    line_seconds,
    max_chunk_bytes,
)
from station.link.errors import (
    DeviceIntegrityError,
    DeviceProtocolError,
    DeviceRefused,
    DeviceTimeout,
    FrameTooLong,
)
from station.link.transport import DEFAULT_BAUDRATE, SerialTransport

FAMILY = "cip"
WRITABLE_KINDS: frozenset[str] = frozenset({"cert", "chain", "anchors"})
# A download larger than this is a confused device, not a CSR or a signature.
MAX_DOWNLOAD = 16384
# After a damaged line, how long to wait for a good one before resending (plus the time one
# full frame takes on the line at the port's baud rate). The device sends one answer per
# request, so a damaged line is usually *the* answer and waiting out the full budget (8 s
# for KEYGEN) would only delay the resend; a resend is always safe (replay cache), and a
# late good answer with the same seq is still accepted during the next attempt.
RESEND_GRACE_S = 0.25
_PROBLEM_TEXT = {
    FrameErrorReason.BAD_CHECKSUM: "frame checksum mismatch",
    FrameErrorReason.TOO_LONG: "over-long frame",
}


class CipSession:
    """The request/answer machinery of the protocol over one transport.

    `timeout_scale` multiplies every protocol timeout (slow boards, or fast tests);
    `keygen_timeout` replaces KEYGEN's budget (HELLO's `keygen_s` sets it too). The line time
    every timeout adds is computed from the transport's baud rate.
    """

    def __init__(self, transport: SerialTransport, *,
                 timeout_scale: float = 1.0, keygen_timeout: float | None = None,
                 chunk_size: int = DEFAULT_CHUNK):
        self.transport = transport
        self.baudrate = transport.baudrate  # line time in every timeout comes from it
        self.timeout_scale = timeout_scale
        self.keygen_timeout = keygen_timeout
        self.chunk_size = chunk_size
        self.mtu = MAX_FRAME  # the device's receive limit, from HELLO
        self._seq = 0
        self._greeted = False
        self._grace = (RESEND_GRACE_S + line_seconds(MAX_FRAME, self.baudrate)) * timeout_scale

    @property
    def port(self) -> str:
        return self.transport.port

    def next_seq(self) -> int:
        """1, 2, ... 65535, 1, ...: never 0 (reserved for the device), never the previous."""
        self._seq = self._seq % MAX_SEQ + 1
        return self._seq

    def timeout_for(self, verb: Verb, request_len: int) -> float:
        """Seconds to wait for one answer: the device budget plus line time, scaled."""
        seconds = answer_timeout(verb, self.baudrate, request_len)
        if verb is Verb.KEYGEN and self.keygen_timeout is not None:
            # keygen_s replaces the device's budget; the line time stays.
            seconds += self.keygen_timeout - COMMANDS[verb].timeout_s
        return seconds * self.timeout_scale

    # -- one request ---------------------------------------------------------------------

    def request(self, verb: Verb, *args: str) -> Frame:
        """Send `verb` with a new seq; return the device's OK answer. Resends the identical
        frame up to the command's retry count (docs/protocol.md section 6). Raises
        DeviceRefused for an ERR answer, DeviceTimeout / DeviceProtocolError when every
        attempt went unanswered / was answered with damaged frames, DeviceDisconnected."""
        if not self._greeted:
            # Ends any half-received line in the device's buffer (section 1).
            self.transport.send_raw(b"\n", step=verb.value)
            self._greeted = True
        seq = self.next_seq()
        line = encode_frame(seq, verb, args, max_frame=self.mtu)
        answer = self.exchange(line, seq, verb.value, attempts=1 + COMMANDS[verb].retries,
                               timeout=self.timeout_for(verb, len(line)))
        if answer.is_error:
            raise DeviceRefused(verb.value, answer.args[0] if answer.args else "INTERNAL",
                                answer.error_text, port=self.port)
        return answer

    def exchange(self, line: bytes, seq: int, step: str, *, attempts: int,
                 timeout: float) -> Frame:
        """Send `line` (already encoded, carrying `seq`) until an answer with that seq arrives,
        at most `attempts` times, waiting `timeout` seconds each time. Returns the answer,
        OK or ERR, without judging it."""
        problem = None
        for _ in range(attempts):
            self.transport.send(line, step=step)
            answer, problem = self._await(seq, step, timeout)
            if answer is not None:
                return answer
        if problem is None:
            raise DeviceTimeout(step, timeout, port=self.port, attempts=attempts)
        raise DeviceProtocolError(step, problem, port=self.port, attempts=attempts)

    def _await(self, seq: int, step: str, timeout: float) -> tuple[Frame | None, str | None]:
        """Wait for the answer to `seq`. Returns (answer, None), or (None, problem) when the
        wait ended without one: problem is None for plain silence, else what was wrong with
        the last line that came instead. Lines that are not valid frames are skipped (boot
        banners, noise), though after one the wait is cut to RESEND_GRACE_S; valid frames for
        an earlier seq (late or replayed answers) are skipped too."""
        problem = None
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                raw = self.transport.receive(step=step, timeout=remaining)
            except DeviceTimeout:
                break
            except FrameTooLong:
                problem = _PROBLEM_TEXT[FrameErrorReason.TOO_LONG]
                deadline = min(deadline, time.monotonic() + self._grace)
            else:
                try:
                    frame = decode_frame(raw)
                except FrameError as exc:
                    problem = _PROBLEM_TEXT.get(exc.reason, f"malformed frame ({exc})")
                    deadline = min(deadline, time.monotonic() + self._grace)
                else:
                    if frame.seq == seq:
                        return frame, None
                    code = frame.error_code
                    if frame.seq == DEVICE_SEQ and code is not None and code.resend_safe:
                        # The device could not read our frame and executed nothing: resend now.
                        return None, f"ERR {code.value} (device could not read the station's frame)"
        return None, problem

    # -- chunked objects -----------------------------------------------------------------

    def upload(self, kind: str, data: bytes) -> str:
        """BEGIN / PUT... / END of one object; returns its SHA-256 hex as the device confirmed."""
        digest = hashlib.sha256(data).hexdigest()
        self.request(Verb.BEGIN, kind, str(len(data)), digest)
        size = max(1, min(self.chunk_size, max_chunk_bytes(self.mtu)))
        for index, start in enumerate(range(0, len(data), size)):
            chunk = base64.b64encode(data[start:start + size]).decode("ascii")
            answer = self.request(Verb.PUT, kind, str(index), chunk)
            expected = str(min(start + size, len(data)))
            if answer.args[-1:] != (expected,):
                raise DeviceProtocolError(
                    "PUT", f"device says it holds {' '.join(answer.args[2:]) or 'nothing'} bytes "
                    f"of {kind} after chunk {index}, station sent {expected}", port=self.port)
        answer = self.request(Verb.END, kind)
        if len(answer.args) < 3 or answer.args[2].lower() != digest:
            raise DeviceIntegrityError(
                "END", f"device staged {kind} as {' '.join(answer.args[1:3]) or 'nothing'}, "
                f"station sent {len(data)} bytes with SHA-256 {digest[:16]}...", port=self.port)
        return digest

    def download(self, announce: Frame, kind: str, step: str) -> bytes:
        """Fetch the object announced by `OK <kind> <len> <sha> <n>` with GET, check it."""
        try:
            name, length, digest, count = announce.args[:4]
            length_n, count_n = int(length), int(count)
            expected = bytes.fromhex(digest)
        except ValueError:
            raise DeviceProtocolError(step, f"answer {' '.join(announce.args)!r} is not "
                                      f"'{kind} <len> <sha256> <n>'", port=self.port) from None
        if (name != kind or len(expected) != 32 or not 0 < length_n <= MAX_DOWNLOAD
                or not 0 < count_n <= length_n):
            raise DeviceProtocolError(step, f"answer {' '.join(announce.args)!r} announces no "
                                      f"usable {kind}", port=self.port)
        parts = []
        for index in range(count_n):
            answer = self.request(Verb.GET, kind, str(index))
            if answer.args[:2] != (kind, str(index)) or len(answer.args) != 3:
                raise DeviceProtocolError("GET", f"answer to GET {kind} {index} is "
                                          f"{' '.join(answer.args)!r}", port=self.port)
            try:
                parts.append(base64.b64decode(answer.args[2], validate=True))
            except (binascii.Error, ValueError):
                raise DeviceProtocolError("GET", f"chunk {index} of {kind} is not base64",
                                          port=self.port) from None
        data = b"".join(parts)
        if len(data) != length_n or hashlib.sha256(data).digest() != expected:
            raise DeviceProtocolError(step, f"{kind} payload hash mismatch ({len(data)} bytes "
                                      f"received, {length_n} announced)", port=self.port)
        return data


class CipDriver:
    """`DeviceDriver` for protocol version 1. Open with `CipDriver.open(port, ...)` or
    `station.drivers.registry.open_driver("cip", port, ...)`."""

    family: ClassVar[str] = FAMILY

    def __init__(self, session: CipSession, *, key_type: str = "EC-P256"):
        self.session = session
        self.key_type = key_type
        self.identity: DeviceIdentity | None = None
        self._written: dict[str, bytes] = {}  # kind -> SHA-256 written since the last commit

    @classmethod
    def open(cls, port: str, *, baudrate: int = DEFAULT_BAUDRATE, timeout_scale: float = 1.0,
             keygen_timeout: float | None = None, key_type: str = "EC-P256",
             chunk_size: int = DEFAULT_CHUNK, frame_limit: int = MAX_FRAME) -> "CipDriver":
        """Open `port` (path or pyserial URL). Raises PortUnavailable."""
        transport = SerialTransport(port, baudrate=baudrate, frame_limit=frame_limit)
        session = CipSession(transport, timeout_scale=timeout_scale,
                             keygen_timeout=keygen_timeout, chunk_size=chunk_size)
        return cls(session, key_type=key_type)

    @property
    def port(self) -> str:
        return self.session.port

    def identify(self) -> DeviceIdentity:
        """HELLO. Raises DeviceRefused (ERR VERSION) or DeviceProtocolError when the device
        speaks no version this station does or a field of its answer is missing, repeated or
        outside its alphabet (`identity.parse_hello`)."""
        answer = self.session.request(Verb.HELLO, str(PROTOCOL_VERSION))
        self.identity = parse_hello(answer, self.port)
        mtu = int(self.identity.extra["mtu"])
        self.session.mtu = min(mtu, self.session.transport.frame_limit)
        keygen_s = self.identity.extra.get("keygen_s")
        if keygen_s and self.session.keygen_timeout is None:
            self.session.keygen_timeout = float(keygen_s)
        self._written.clear()  # HELLO discards everything staged on the device
        return self.identity

    def request_csr(self, subject_der: bytes) -> bytes:
        """Stage `subject_der`, KEYGEN with this driver's key type, fetch the CSR (DER). The
        CSR is returned as sent; whether it is acceptable is the issuance policy's call."""
        self._require_identity()
        self.session.upload("subject", subject_der)
        announce = self.session.request(Verb.KEYGEN, self.key_type)
        return self.session.download(announce, "csr", "KEYGEN")

    def write_object(self, kind: ObjectKind, data: bytes) -> None:
        """Upload and stage one object (cert: DER; chain, anchors: PEM bundles)."""
        if kind not in WRITABLE_KINDS:
            raise ValueError(f"cannot write object {kind!r}; writable: {sorted(WRITABLE_KINDS)}")
        self._require_identity()
        self.session.upload(kind, data)
        self._written[kind] = hashlib.sha256(data).digest()

    def commit(self) -> CommitReceipt:
        """COMMIT; returns the device's hashes of what it stored. Raises DeviceIntegrityError
        when any differs from what this driver wrote since the last commit."""
        self._require_identity()
        answer = self.session.request(Verb.COMMIT)
        hashes = {}
        for key, value in answer.fields().items():
            try:
                digest = bytes.fromhex(value)
            except ValueError:
                digest = b""
            if len(digest) != 32:
                raise DeviceProtocolError("COMMIT", f"hash {key}={value!r} is not 64 hex digits",
                                          port=self.port)
            hashes[key] = digest
        for kind, sent in self._written.items():
            stored = hashes.get(kind)
            if stored != sent:
                shown = stored.hex()[:16] + "..." if stored else "nothing"
                raise DeviceIntegrityError(
                    "COMMIT", f"device stored {kind} with SHA-256 {shown}, station wrote "
                    f"{sent.hex()[:16]}...", port=self.port)
        self._written.clear()
        return CommitReceipt(hashes=hashes)

    def stored(self) -> CommitReceipt:
        """COMMIT with nothing staged: a provisioned device answers the hashes of what it stores
        and changes nothing (protocol.md, COMMIT, "Repeat")."""
        self._require_identity()
        self.session.request(Verb.ABORT)  # nothing staged, whatever happened before
        self._written.clear()
        return self.commit()

    def prove(self, nonce: bytes) -> bytes:
        """PROVE `nonce` (32 bytes); returns the device's DER signature, unverified."""
        if len(nonce) != NONCE_LEN:
            raise ValueError(f"nonce must be {NONCE_LEN} bytes, got {len(nonce)}")
        self._require_identity()
        announce = self.session.request(Verb.PROVE, nonce.hex())
        return self.session.download(announce, "sig", "PROVE")

    def lock(self) -> None:
        """LOCK, confirmed with the id from HELLO. Irreversible."""
        identity = self._require_identity()
        self.session.request(Verb.LOCK, identity.device_id)

    def close(self) -> None:
        """Close the port. Idempotent; never raises."""
        self.session.transport.close()

    def __enter__(self) -> "CipDriver":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _require_identity(self) -> DeviceIdentity:
        # Every session starts with HELLO (it sets the mtu and clears the replay cache).
        return self.identity or self.identify()
