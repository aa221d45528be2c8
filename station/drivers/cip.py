"""Driver for the certificate injection protocol ("cip", docs/protocol.md, version 1, and
its compact extension `c1`, section 9, with the devices that announce it).

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
import re
import time
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from station.drivers.base import CommitReceipt, DeviceIdentity, ObjectKind
from station.drivers.identity import parse_hello
from station.link.codec import (
    COMMANDS,
    DEFAULT_CHUNK,
    DEVICE_SEQ,
    EXT_COMPACT,
    LINE_CONFIRM_S,
    LINE_SETTLE_S,
    XMTU_MAX,
    XMTU_MIN,
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
    deflate,
    deflate_dictionary,
    encode_frame,
    line_seconds,
    max_chunk_bytes,
    sha256_b64,
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
_BAUDS = re.compile(r"[1-9][0-9]{0,8}(,[1-9][0-9]{0,8})*")
# WRITE's fixed part: "65535 WRITE anchors 8192 " + 44-character hash + " " + "*XXXX\n".
_WRITE_OVERHEAD = 80
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
        self.mtu = MAX_FRAME  # the device's receive limit, from HELLO (`xmtu` when compact)
        self.compact = False  # the device announced the compact extension and we use it
        # The objects the device holds this session (staged, and the CSR): WRITEZ's
        # dictionary. HELLO and ABORT empty it on both sides.
        self.objects: dict[str, bytes] = {}
        self._seq = 0
        self._greeted = False
        self._set_line_time()

    def _set_line_time(self) -> None:
        self.baudrate = self.transport.baudrate
        self._grace = (RESEND_GRACE_S + line_seconds(self.mtu, self.baudrate)) * self.timeout_scale

    @property
    def port(self) -> str:
        return self.transport.port

    def next_seq(self) -> int:
        """1, 2, ... 65535, 1, ...: never 0 (reserved for the device), never the previous."""
        self._seq = self._seq % MAX_SEQ + 1
        return self._seq

    def timeout_for(self, verb: Verb, request_len: int) -> float:
        """Seconds to wait for one answer: the device budget plus line time, scaled."""
        # A compact answer may be longer than MAX_FRAME: its extra line time counts too.
        seconds = answer_timeout(verb, self.baudrate, request_len + max(0, self.mtu - MAX_FRAME))
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
        if verb in (Verb.HELLO, Verb.ABORT):
            self.objects.clear()
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
                    frame = decode_frame(raw, max_frame=self.transport.frame_limit)
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

    def write(self, kind: str, data: bytes) -> str:
        """Stage one object: with the compact extension in one frame when it fits, WRITEZ
        (deflated against the session's other objects) or WRITE, whichever is shorter; else
        BEGIN / PUT... / END. Returns the SHA-256 hex the device confirmed."""
        verb, b64 = Verb.WRITE, base64.b64encode(data).decode("ascii")
        self.objects.pop(kind, None)  # the device drops its staged one too, whatever follows
        if self.compact:
            packed = base64.b64encode(deflate(data, deflate_dictionary(self.objects, kind)))
            if len(packed) < len(b64):
                verb, b64 = Verb.WRITEZ, packed.decode("ascii")
        if not self.compact or len(b64) + _WRITE_OVERHEAD > self.mtu:
            digest = self.upload(kind, data)
        else:
            digest = sha256_b64(data)
            answer = self.request(verb, kind, str(len(data)), digest, b64)
            if answer.args[1:3] != (str(len(data)), digest):
                raise DeviceIntegrityError(
                    verb.value, f"device staged {kind} as {' '.join(answer.args[1:3]) or 'nothing'}"
                    f", station sent {len(data)} bytes with SHA-256 {digest}", port=self.port)
            digest = hashlib.sha256(data).hexdigest()
        self.objects[kind] = data
        return digest

    def inline(self, answer: Frame, kind: str, step: str) -> bytes:
        """The object carried whole in a compact answer `OK <kind> <len> <sha-b64> <b64>`."""
        try:
            name, length, digest, b64 = answer.args
            data = base64.b64decode(b64, validate=True)
        except (ValueError, binascii.Error):
            raise DeviceProtocolError(step, f"answer {' '.join(answer.args)[:80]!r} is not "
                                      f"'{kind} <len> <sha256> <base64>'", port=self.port) from None
        if name != kind or length != str(len(data)) or digest != sha256_b64(data):
            raise DeviceProtocolError(step, f"{kind} payload hash mismatch ({len(data)} bytes "
                                      f"received, {length} announced)", port=self.port)
        return data

    def switch_line(self, baud: int) -> str:
        """LINE <baud>, then SYNC at the new rate (docs/protocol.md 9.3). On any failure the
        port goes back to the old rate, the device's confirmation window is waited out, and
        SYNC at the old rate shows the device is back. Returns what happened, for the log:
        "<baud>" or "<old> (switch to <baud> failed: <why>)"."""
        old = self.transport.baudrate
        started = time.monotonic()
        try:
            self.request(Verb.LINE, str(baud))
        except DeviceRefused as exc:
            return f"{old} (device refused {baud}: {exc.code})"
        except (DeviceTimeout, DeviceProtocolError) as exc:
            why = f"no answer to LINE ({exc})"
        else:
            started = time.monotonic()
            time.sleep(LINE_SETTLE_S)  # the device reconfigures its UART after its OK
            if self.transport.set_baudrate(baud, step="LINE"):
                self._set_line_time()
                try:
                    self.request(Verb.SYNC)
                    return str(baud)
                except (DeviceRefused, DeviceTimeout, DeviceProtocolError) as exc:
                    why = f"no valid answer at {baud} ({exc})"
                self.transport.set_baudrate(old, step="LINE")
                self._set_line_time()
            else:
                why = f"this port cannot run at {baud}"
        # The device reverts when its window closes without a valid frame: wait it out.
        time.sleep(max(0.0, started + LINE_CONFIRM_S * 1.1 - time.monotonic()))
        self.transport.discard_input()
        self.request(Verb.SYNC)
        return f"{old} (switch to {baud} failed: {why})"

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

    def __init__(self, session: CipSession, *, key_type: str = "EC-P256", compact: bool = True,
                 fast_baud: int = 0, chain_root: bool = False):
        self.session = session
        self.key_type = key_type
        # The compact extension (docs/protocol.md section 9), used with devices that announce
        # it: `fast_baud` is the highest rate to switch to (0: stay at the line's rate);
        # `chain_root` keeps self-signed certificates in the compact chain (AWS IoT JITP needs
        # only the issuing CA, so by default they are left out).
        self.use_compact = compact
        self.fast_baud = fast_baud
        self.chain_root = chain_root
        self.identity: DeviceIdentity | None = None
        self._written: dict[str, bytes] = {}  # kind -> SHA-256 written since the last commit
        # kind -> (SHA-256 of the object the engine gave, of the compact form the device holds)
        self._compact_out: dict[str, tuple[bytes, bytes]] = {}

    @classmethod
    def open(cls, port: str, *, baudrate: int = DEFAULT_BAUDRATE, timeout_scale: float = 1.0,
             keygen_timeout: float | None = None, key_type: str = "EC-P256",
             chunk_size: int = DEFAULT_CHUNK, frame_limit: int = MAX_FRAME,
             compact: bool = True, fast_baud: int = 0, chain_root: bool = False) -> "CipDriver":
        """Open `port` (path or pyserial URL). Raises PortUnavailable."""
        transport = SerialTransport(port, baudrate=baudrate, frame_limit=frame_limit)
        session = CipSession(transport, timeout_scale=timeout_scale,
                             keygen_timeout=keygen_timeout, chunk_size=chunk_size)
        return cls(session, key_type=key_type, compact=compact, fast_baud=fast_baud,
                   chain_root=chain_root)

    @property
    def port(self) -> str:
        return self.session.port

    def identify(self) -> DeviceIdentity:
        """HELLO. Raises DeviceRefused (ERR VERSION) or DeviceProtocolError when the device
        speaks no version this station does or a field of its answer is missing, repeated or
        outside its alphabet (`identity.parse_hello`)."""
        answer = self.session.request(Verb.HELLO, str(PROTOCOL_VERSION))
        identity = parse_hello(answer, self.port)
        mtu = int(identity.extra["mtu"])
        self.session.mtu = min(mtu, self.session.transport.frame_limit)
        keygen_s = identity.extra.get("keygen_s")
        if keygen_s and self.session.keygen_timeout is None:
            self.session.keygen_timeout = float(keygen_s)
        self._written.clear()  # HELLO discards everything staged on the device
        self._compact_out.clear()
        if self.use_compact and self._announces_compact(identity.extra):
            self.session.compact = True
            self.session.mtu = int(identity.extra["xmtu"])
            self.session.transport.frame_limit = max(self.session.transport.frame_limit,
                                                     self.session.mtu)
            self.session._set_line_time()
            line = self._switch_rate(identity.extra.get("bauds", ""))
            if line:
                identity.extra["line"] = line
        self.identity = identity
        return identity

    @staticmethod
    def _announces_compact(extra: dict[str, str]) -> bool:
        """`ext=` lists c1 and `xmtu=` is a decimal in range (protocol.md 9.1); anything less
        and the device is spoken to as a version-1 device."""
        xmtu = extra.get("xmtu", "")
        return (EXT_COMPACT in extra.get("ext", "").split(",") and xmtu.isdigit()
                and XMTU_MIN <= int(xmtu) <= XMTU_MAX)

    def _switch_rate(self, bauds: str) -> str:
        """Switch to the fastest rate both sides run, up to fast_baud; "" when none is faster."""
        current = self.session.transport.baudrate
        offered = [int(b) for b in bauds.split(",")] if _BAUDS.fullmatch(bauds) else []
        usable = [b for b in offered if current < b <= self.fast_baud]
        return self.session.switch_line(max(usable)) if usable else ""

    def request_csr(self, subject_der: bytes) -> bytes:
        """Stage `subject_der`, KEYGEN with this driver's key type, fetch the CSR (DER). The
        CSR is returned as sent; whether it is acceptable is the issuance policy's call."""
        self._require_identity()
        self.session.write("subject", subject_der)
        if self.session.compact:
            csr = self.session.inline(self.session.request(Verb.GENCSR, self.key_type),
                                      "csr", "GENCSR")
            self.session.objects["csr"] = csr
            return csr
        announce = self.session.request(Verb.KEYGEN, self.key_type)
        return self.session.download(announce, "csr", "KEYGEN")

    def write_object(self, kind: ObjectKind, data: bytes) -> None:
        """Upload and stage one object (cert: DER; chain, anchors: PEM bundles)."""
        if kind not in WRITABLE_KINDS:
            raise ValueError(f"cannot write object {kind!r}; writable: {sorted(WRITABLE_KINDS)}")
        self._require_identity()
        given = hashlib.sha256(data).digest()
        if self.session.compact and kind != "cert":
            data = self.compact_bundle(data, drop_roots=kind == "chain")
            self._compact_out[kind] = (given, hashlib.sha256(data).digest())
        self.session.write(kind, data)
        self._written[kind] = hashlib.sha256(data).digest()

    def compact_bundle(self, pem: bytes, *, drop_roots: bool) -> bytes:
        """A PEM bundle as the compact extension carries it: its certificates in DER,
        concatenated; for the chain (`drop_roots`) without self-signed ones (a root) unless
        `chain_root` says so. Anchors are roots by nature: all of them stay. Only the form
        changes: every certificate kept is byte for byte the one in the bundle."""
        certs = x509.load_pem_x509_certificates(pem)
        kept = [c for c in certs if not drop_roots or self.chain_root
                or c.subject != c.issuer] or certs
        return b"".join(c.public_bytes(serialization.Encoding.DER) for c in kept)

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
        # The engine compares with what it gave; the device holds the compact form of it,
        # whose hash was just checked: report the engine's object as stored, and the form
        # the device holds beside it for the audit.
        held = {}
        for kind, (given, stored) in self._compact_out.items():
            if hashes.get(kind) == stored:
                hashes[kind], held[kind] = given, stored
        self._compact_out.clear()
        return CommitReceipt(hashes=hashes, held=held)

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
        if self.session.compact:
            answer = self.session.request(Verb.SIGN, base64.b64encode(nonce).decode("ascii"))
            return self.session.inline(answer, "sig", "SIGN")
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
