"""The reference device: docs/protocol.md as a state machine. Bytes in, answers out, state in
a DeviceStore. No I/O besides the store and no clock: the pty server (pty_server.py) does the
line, the pacing and the key-generation delay, so this class can be driven directly in tests.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from station.link.codec import (
    EXT_COMPACT, MAX_FRAME, deflate_dictionary, inflate, MAX_SEQ, NONCE_LEN, PROTOCOL_VERSION, SUPPORTED_VERSIONS, UPLOAD_KINDS,
    XMTU_MAX, XMTU_MIN, DeviceState, ErrorCode, Frame, FrameError, FrameErrorReason, KeyType,
    ObjectKind, PayloadAssembler, PayloadError, Verb, chunk_payload, decode_frame, der_certificates,
    encode_error, encode_frame, encode_ok, sha256_b64, sha256_hex,
)
from station.sim.csr import build_csr, check_name_der, sign
from station.sim.faults import FaultKind, FaultPlan
from station.sim.store import DeviceStore, PowerLoss

FW_VERSION = "1.0.0"
# The rates a device with the compact extension offers to switch to (`bauds=`).
DEFAULT_BAUDS = (230400, 460800, 921600, 2000000, 4000000)
COMPACT_VERBS = frozenset({Verb.WRITE, Verb.WRITEZ, Verb.GENCSR, Verb.SIGN, Verb.LINE, Verb.SYNC})
# What this device can store per object (docs/protocol.md section 3 gives the minimums).
CAPACITY = {ObjectKind.SUBJECT: 4096, ObjectKind.CERT: 4096, ObjectKind.CHAIN: 16384,
            ObjectKind.ANCHORS: 16384}
# The duplicate-key fault: a "broken RNG" that always yields this private scalar.
_BROKEN_RNG_SCALAR = int.from_bytes(hashlib.sha256(b"broken rng").digest(), "big") % (2**255)


def derive_device_id(seed: str, index: int) -> str:
    """A stable 16-hex-digit chip UID: the same seed and index always give the same id."""
    return hashlib.sha256(f"{seed}/{index}".encode()).hexdigest()[:16].upper()


@dataclass(frozen=True)
class Identity:
    device_id: str  # 16 upper-case hex digits
    model: str = "SIM-1"
    hw_rev: str = "A"
    fw_version: str = FW_VERSION


@dataclass(frozen=True)
class Answer:
    """What the device puts on the line for one request. `work_s` is processing time the
    server waits before sending (key generation); `then` is what happens to the device
    afterwards: "" (nothing), "disconnect" (the port vanishes), "baud" (switch the UART to
    `baud` once the answer is out, docs/protocol.md 9.3)."""

    data: bytes = b""
    work_s: float = 0.0
    then: str = ""
    baud: int = 0


class _Refusal(Exception):
    def __init__(self, code: ErrorCode, text: str):
        super().__init__(text)
        self.code = code


class Device:
    """One simulated device. feed() takes whatever bytes arrived and returns one Answer per
    complete line that deserves one (empty lines and a stalled device answer nothing)."""

    def __init__(self, identity: Identity, store: DeviceStore, *, faults: FaultPlan | None = None,
                 keygen_s: float = 0.0, mtu: int = MAX_FRAME,
                 key_types: tuple[KeyType, ...] = tuple(KeyType), compact: bool = False,
                 xmtu: int = 4096, bauds: tuple[int, ...] = DEFAULT_BAUDS):
        if compact and not XMTU_MIN <= xmtu <= XMTU_MAX:
            raise ValueError(f"xmtu must be {XMTU_MIN}..{XMTU_MAX} (docs/protocol.md section 9)")
        self.identity = identity
        # The compact extension (docs/protocol.md section 9): announced in HELLO when on; off,
        # the device is a version-1 device and its verbs are unknown to it.
        self.compact = compact
        self.xmtu = xmtu
        self.bauds = bauds if compact else ()
        self.store = store
        self.faults = faults or FaultPlan()
        self.keygen_s = keygen_s
        self.mtu = mtu
        self.key_types = key_types
        self.stalled = False
        self.disconnected = False
        self.frames_read = 0  # valid frames decoded: what confirms a baud switch
        self._line = bytearray()
        self._discarding = False
        self._reset_session()

    @property
    def device_id(self) -> str:
        return self.identity.device_id

    @property
    def receive_limit(self) -> int:
        """The longest line this device takes: `xmtu` with the extension, else `mtu`."""
        return self.xmtu if self.compact else self.mtu

    def _reset_session(self) -> None:
        """RAM state: what a power cycle or HELLO forgets."""
        self._transfer: tuple[ObjectKind, PayloadAssembler] | None = None
        self._staged: dict[ObjectKind, bytes] = {}
        self._results: dict[ObjectKind, list[str]] = {}
        self._csr: bytes | None = None  # the last CSR made, for WRITEZ's dictionary
        self._last: tuple[int, str, bytes] | None = None  # seq, request CRC, answer

    # -- the line -------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Answer]:
        answers = []
        for byte in data:
            if self.stalled or self.disconnected:
                break
            if byte == 0x0A:
                if self._discarding:
                    self._discarding = False
                    answers.append(Answer(encode_error(0, ErrorCode.TOOLONG,
                                                       f"line exceeds {self.receive_limit} bytes")))
                else:
                    answer = self.handle_line(bytes(self._line) + b"\n")
                    if answer is not None:
                        answers.append(answer)
                self._line.clear()
            elif not self._discarding:
                self._line.append(byte)
                if len(self._line) >= self.receive_limit:  # no room left for the LF
                    self._discarding = True
                    self._line.clear()
        return answers

    def handle_line(self, line: bytes) -> Answer | None:
        """One complete line (LF included) -> its answer, or None for silence."""
        try:
            frame = decode_frame(line, max_frame=self.receive_limit)
        except FrameError as exc:
            if exc.reason is FrameErrorReason.EMPTY:
                return None
            return Answer(encode_error(0, exc.reason.answer_code(), str(exc)))
        self.frames_read += 1
        if frame.seq == 0:
            return Answer(encode_error(0, ErrorCode.SYNTAX, "seq 0 is reserved for the device"))
        verb = Verb(frame.verb) if frame.verb in Verb.__members__ else None
        if verb in COMPACT_VERBS and not self.compact:
            verb = None  # a version-1 device knows none of them: ERR UNKNOWN
        if verb is not None and self.faults.fire(FaultKind.STALL, verb):
            self.stalled = True
            return None
        if verb is not None and self.faults.fire(FaultKind.DISCONNECT, verb):
            self.disconnected = True
            return Answer(b"", 0.0, "disconnect")
        request_crc = line.rstrip(b"\r\n")[-4:].decode().upper()
        if verb is not Verb.HELLO and self._last and self._last[0] == frame.seq:
            if self._last[1] == request_crc:
                return self._send(self._last[2], verb, frame.seq)
            return Answer(encode_error(frame.seq, ErrorCode.SEQ,
                                       f"seq {frame.seq} already used for another request"))
        work = 0.0
        try:
            answer, work = self._execute(verb, frame)
        except _Refusal as refusal:
            answer = encode_error(frame.seq, refusal.code, str(refusal))
        except PowerLoss:
            self.disconnected = True
            return Answer(b"", 0.0, "disconnect")
        self._last = (frame.seq, request_crc, answer)
        sent = self._send(answer, verb, frame.seq, work)
        if verb is Verb.LINE and answer.split(b" ", 2)[1] == b"OK":
            return Answer(sent.data, sent.work_s, "baud", int(frame.args[0]))
        return sent

    def _send(self, answer: bytes, verb: Verb | None, seq: int, work: float = 0.0) -> Answer:
        """Apply the output faults on the way out; the replay cache keeps the clean answer."""
        if verb is not None and self.faults.fire(FaultKind.CORRUPT, verb):
            answer = _flip_a_body_bit(answer)
        elif verb is not None and self.faults.fire(FaultKind.GARBAGE, verb):
            answer = b"\x1b[0m~#boot: r\xe9set cause 0x%02X\r\n" % len(answer)
        elif verb is not None and self.faults.fire(FaultKind.OVERLONG, verb):
            answer = b"0 OK " + b"A" * MAX_FRAME + b"*0000\n"
        if verb is not None and self.faults.fire(FaultKind.STRAY, verb):
            # A late answer to an earlier request (a buffering USB bridge delivers one):
            # valid, but with another seq, so the station must skip it.
            answer = encode_ok(seq - 1 if seq > 1 else MAX_SEQ, "stray") + answer
        return Answer(answer, work)

    # -- commands -------------------------------------------------------------------------
    def _execute(self, verb: Verb | None, frame: Frame) -> tuple[bytes, float]:
        handler = {
            Verb.HELLO: self._hello, Verb.BEGIN: self._begin, Verb.PUT: self._put,
            Verb.END: self._end, Verb.KEYGEN: self._keygen, Verb.GET: self._get,
            Verb.COMMIT: self._commit, Verb.PROVE: self._prove, Verb.LOCK: self._lock,
            Verb.ABORT: self._abort, Verb.WRITE: self._write, Verb.WRITEZ: self._writez, Verb.GENCSR: self._gencsr,
            Verb.SIGN: self._sign, Verb.LINE: self._line_rate, Verb.SYNC: self._sync,
        }.get(verb)
        if handler is None:
            raise _Refusal(ErrorCode.UNKNOWN, f"{frame.verb} is not a command")
        args = handler(frame.args)
        work = self.keygen_s if verb in (Verb.KEYGEN, Verb.GENCSR) else 0.0
        # Answers to the compact verbs may be as long as `xmtu` (docs/protocol.md 9.1).
        limit = self.xmtu if verb in COMPACT_VERBS else MAX_FRAME
        return encode_frame(frame.seq, Verb.OK, args, max_frame=limit), work

    def _hello(self, args) -> list[str]:
        if len(args) != 1 or not args[0].isdigit() or int(args[0]) < 1:
            raise _Refusal(ErrorCode.ARG, "HELLO needs the station's highest version")
        usable = [v for v in SUPPORTED_VERSIONS if v <= int(args[0])]
        if not usable:
            raise _Refusal(ErrorCode.VERSION, "device speaks versions "
                           + ",".join(map(str, SUPPORTED_VERSIONS)))
        self._reset_session()
        ident = self.identity
        device_id = ident.device_id
        if self.faults.fire(FaultKind.LOWERCASE_ID):
            device_id = device_id.lower()
        return [str(max(usable)), f"id={device_id}", f"model={ident.model}",
                f"hw={ident.hw_rev}", f"fw={ident.fw_version}", f"state={self.store.state}",
                f"mtu={self.mtu}", "keys=" + ",".join(self.key_types), *self._extension_fields()]

    def _extension_fields(self) -> list[str]:
        if not self.compact:
            return []
        fields = [f"ext={EXT_COMPACT}", f"xmtu={self.xmtu}"]
        return fields + ([f"bauds={','.join(map(str, self.bauds))}"] if self.bauds else [])

    def _refuse_if_locked(self) -> None:
        if self.store.state is DeviceState.LOCKED:
            raise _Refusal(ErrorCode.LOCKED, "device is locked")

    @staticmethod
    def _kind(text: str, allowed) -> ObjectKind:
        try:
            kind = ObjectKind(text)
        except ValueError:
            kind = None
        if kind not in allowed:
            raise _Refusal(ErrorCode.ARG, f"{text!r} is not one of "
                           + ", ".join(sorted(k.value for k in allowed)))
        return kind

    def _begin(self, args) -> list[str]:
        self._refuse_if_locked()
        if len(args) != 3 or not args[1].isdigit():
            raise _Refusal(ErrorCode.ARG, "BEGIN <obj> <len> <sha256>")
        kind, length = self._kind(args[0], UPLOAD_KINDS), int(args[1])
        if length == 0:
            raise _Refusal(ErrorCode.LENGTH, "an object cannot be empty")
        try:
            assembler = PayloadAssembler(length, args[2], max_len=CAPACITY[kind])
        except PayloadError as exc:
            raise _Refusal(exc.code, str(exc)) from None
        self._staged.pop(kind, None)
        self._transfer = (kind, assembler)
        return [kind]

    def _open_transfer(self, text: str) -> tuple[ObjectKind, PayloadAssembler] | None:
        kind = self._kind(text, UPLOAD_KINDS)
        if self._transfer is None or self._transfer[0] is not kind:
            return None
        return self._transfer

    def _put(self, args) -> list[str]:
        self._refuse_if_locked()
        if len(args) != 3 or not args[1].isdigit():
            raise _Refusal(ErrorCode.ARG, "PUT <obj> <index> <base64>")
        transfer = self._open_transfer(args[0])
        if transfer is None:
            raise _Refusal(ErrorCode.ORDER, f"no open transfer for {args[0]}: BEGIN first")
        kind, assembler = transfer
        try:
            assembler.add(int(args[1]), args[2])
        except PayloadError as exc:
            raise _Refusal(exc.code, str(exc)) from None
        return [kind, args[1], str(assembler.received)]

    def _end(self, args) -> list[str]:
        self._refuse_if_locked()
        if len(args) != 1:
            raise _Refusal(ErrorCode.ARG, "END <obj>")
        transfer = self._open_transfer(args[0])
        if transfer is None:
            kind = self._kind(args[0], UPLOAD_KINDS)
            if kind in self._staged:  # END repeated after success
                data = self._staged[kind]
                return [kind, str(len(data)), sha256_hex(data)]
            raise _Refusal(ErrorCode.ORDER, f"no open transfer for {kind}: BEGIN first")
        kind, assembler = transfer
        self._transfer = None  # any refusal below discards the transfer
        data = self._stage(kind, assembler)
        return [kind, str(len(data)), sha256_hex(data)]

    def _stage(self, kind: ObjectKind, assembler: PayloadAssembler, *chunks: str) -> bytes:
        """Add `chunks`, check the object whole (length, hash, format) and stage it."""
        try:
            for chunk in chunks:
                assembler.add(assembler.next_index, chunk)
            data = assembler.finish()
        except PayloadError as exc:
            raise _Refusal(exc.code, str(exc)) from None
        _check_object(kind, data)
        self._staged[kind] = data
        return data

    def _keygen(self, args) -> list[str]:
        return self._result(ObjectKind.CSR, self._make_csr(args, "KEYGEN"))

    def _gencsr(self, args) -> list[str]:
        return self._inline(ObjectKind.CSR, self._make_csr(args, "GENCSR"))

    def _make_csr(self, args, verb: str) -> bytes:
        """A new key (the pending key) and its CSR over the staged subject."""
        self._refuse_if_locked()
        if len(args) != 1:
            raise _Refusal(ErrorCode.ARG, f"{verb} <keytype>")
        if args[0] not in {k.value for k in self.key_types}:
            raise _Refusal(ErrorCode.UNSUPPORTED, f"key type {args[0]} not supported; "
                           + ",".join(self.key_types))
        subject = self._staged.get(ObjectKind.SUBJECT)
        if subject is None:
            raise _Refusal(ErrorCode.ORDER, "no subject staged: BEGIN/PUT/END subject first")
        key = self._generate_key(KeyType(args[0]))
        if self.faults.fire(FaultKind.WRONG_SUBJECT):
            subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME,
                                                    "not-what-you-asked")]).public_bytes()
        csr = build_csr(key, subject,
                        corrupt_signature=self.faults.fire(FaultKind.BAD_CSR_SIGNATURE))
        try:
            x509.load_der_x509_csr(csr).subject.rfc4514_string()
        except ValueError:
            raise _Refusal(ErrorCode.BADOBJ, "subject is not a valid X.509 Name") from None
        self.store.save_pending_key(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self._csr = csr
        return csr

    def _generate_key(self, key_type: KeyType):
        if self.faults.fire(FaultKind.DUPLICATE_KEY):
            return ec.derive_private_key(_BROKEN_RNG_SCALAR, ec.SECP256R1())
        if self.faults.fire(FaultKind.WEAK_KEY):
            return rsa.generate_private_key(65537, 1024)
        if key_type is KeyType.RSA_2048:
            return rsa.generate_private_key(65537, 2048)
        return ec.generate_private_key(ec.SECP384R1() if key_type is KeyType.EC_P384
                                       else ec.SECP256R1())

    @staticmethod
    def _inline(kind: ObjectKind, data: bytes) -> list[str]:
        """A compact answer: the whole object in the frame, announced by length and hash."""
        return [kind, str(len(data)), sha256_b64(data), base64.b64encode(data).decode("ascii")]

    def _result(self, kind: ObjectKind, data: bytes) -> list[str]:
        self._results[kind] = chunk_payload(data)
        return [kind, str(len(data)), sha256_hex(data), str(len(self._results[kind]))]

    def _get(self, args) -> list[str]:
        if len(args) != 2 or not args[1].isdigit():
            raise _Refusal(ErrorCode.ARG, "GET <csr|sig> <index>")
        kind = self._kind(args[0], {ObjectKind.CSR, ObjectKind.SIG})
        chunks = self._results.get(kind)
        if chunks is None:
            raise _Refusal(ErrorCode.ORDER, f"no {kind} to fetch")
        index = int(args[1])
        if index >= len(chunks):
            raise _Refusal(ErrorCode.ARG, f"{kind} has {len(chunks)} chunks")
        return [kind, str(index), chunks[index]]

    def _commit(self, args) -> list[str]:
        self._refuse_if_locked()
        if args:
            raise _Refusal(ErrorCode.ARG, "COMMIT takes no arguments")
        writes = {k: v for k, v in self._staged.items() if k is not ObjectKind.SUBJECT}
        if not writes:
            if self.store.state is DeviceState.PROVISIONED:
                return self._hash_fields(self.store.object_hashes())
            raise _Refusal(ErrorCode.ORDER, "nothing staged to commit")
        missing = [k.value for k in (ObjectKind.CERT, ObjectKind.CHAIN) if k not in writes]
        if missing:
            raise _Refusal(ErrorCode.ORDER, "not staged: " + ", ".join(missing))
        key_pem = self.store.pending_key_pem or self.store.key_pem
        cert = x509.load_der_x509_certificate(writes[ObjectKind.CERT])
        if key_pem is None or _spki(cert.public_key()) != _spki(
                serialization.load_pem_private_key(key_pem, None).public_key()):
            raise _Refusal(ErrorCode.KEYMISMATCH, "certificate is not for this device's key")
        if self.faults.fire(FaultKind.COMMIT_FAIL):
            raise _Refusal(ErrorCode.STORAGE, "flash write failed; nothing stored")
        hashes = self.store.commit(
            {k.value: v for k, v in writes.items()}, key_pem,
            flip_cert_bit=self.faults.fire(FaultKind.WRONG_HASH),
            power_fails=self.faults.fire(FaultKind.POWERLOSS, Verb.COMMIT))
        self._staged.clear()
        return self._hash_fields(hashes)

    @staticmethod
    def _hash_fields(hashes: dict[str, str]) -> list[str]:
        return [f"{kind}={hashes[kind]}" for kind in ("cert", "chain", "anchors") if kind in hashes]

    def _prove(self, args) -> list[str]:
        if len(args) != 1 or len(args[0]) != 2 * NONCE_LEN:
            raise _Refusal(ErrorCode.ARG, f"PROVE needs {NONCE_LEN} bytes as hex")
        try:
            nonce = bytes.fromhex(args[0])
        except ValueError:
            raise _Refusal(ErrorCode.ARG, "nonce is not hex") from None
        return self._result(ObjectKind.SIG, self._signature(nonce))

    def _sign(self, args) -> list[str]:
        nonce = _b64(args[0]) if len(args) == 1 else None
        if nonce is None or len(nonce) != NONCE_LEN:
            raise _Refusal(ErrorCode.ARG, f"SIGN needs {NONCE_LEN} bytes as base64")
        return self._inline(ObjectKind.SIG, self._signature(nonce))

    def _signature(self, nonce: bytes) -> bytes:
        if self.store.state is DeviceState.BLANK or self.store.key_pem is None:
            raise _Refusal(ErrorCode.ORDER, "no committed certificate: COMMIT first")
        key = serialization.load_pem_private_key(self.store.key_pem, None)
        if self.faults.fire(FaultKind.BAD_PROOF):
            nonce = bytes(b ^ 0xFF for b in nonce)
        return sign(key, nonce)

    def _writez(self, args) -> list[str]:
        """WRITEZ: WRITE with the object deflated against the session's other objects."""
        if len(args) != 4 or not args[1].isdigit():
            raise _Refusal(ErrorCode.ARG, "WRITEZ <obj> <len> <sha256-base64> <base64>")
        kind = self._kind(args[0], UPLOAD_KINDS)
        packed = _b64(args[3])
        objects = {k.value: v for k, v in self._staged.items()}
        if self._csr is not None:
            objects["csr"] = self._csr
        try:
            data = inflate(packed or b"", deflate_dictionary(objects, kind), int(args[1]))
        except ValueError as exc:
            raise _Refusal(ErrorCode.CHUNK, f"WRITEZ {kind}: {exc}") from None
        return self._write([*args[:3], base64.b64encode(data).decode("ascii")], "WRITEZ")

    def _write(self, args, verb: str = "WRITE") -> list[str]:
        """WRITE <obj> <len> <sha-b64> <b64>: BEGIN, one PUT and END in one frame."""
        self._refuse_if_locked()
        if len(args) != 4 or not args[1].isdigit():
            raise _Refusal(ErrorCode.ARG, f"{verb} <obj> <len> <sha256-base64> <base64>")
        kind, length = self._kind(args[0], UPLOAD_KINDS), int(args[1])
        digest = _b64(args[2])
        if digest is None or len(digest) != 32:
            raise _Refusal(ErrorCode.ARG, "the hash must be 32 bytes in base64")
        if length == 0:
            raise _Refusal(ErrorCode.LENGTH, "an object cannot be empty")
        self._transfer = None  # one transfer at a time: WRITE ends any open one
        self._staged.pop(kind, None)
        try:
            assembler = PayloadAssembler(length, digest, max_len=CAPACITY[kind])
        except PayloadError as exc:
            raise _Refusal(exc.code, str(exc)) from None
        data = self._stage(kind, assembler, args[3])
        return [kind, str(len(data)), sha256_b64(data)]

    def _line_rate(self, args) -> list[str]:
        if len(args) != 1 or not args[0].isdigit() or int(args[0]) not in self.bauds:
            raise _Refusal(ErrorCode.ARG, "LINE <baud>, one of " + ",".join(map(str, self.bauds)))
        return [args[0]]

    def _sync(self, args) -> list[str]:
        if args:
            raise _Refusal(ErrorCode.ARG, "SYNC takes no arguments")
        return []

    def _lock(self, args) -> list[str]:
        if len(args) != 1 or args[0].upper() != self.identity.device_id:
            raise _Refusal(ErrorCode.CONFIRM, "confirmation must be this device's id")
        if self.store.state is DeviceState.BLANK:
            raise _Refusal(ErrorCode.ORDER, "no committed certificate: COMMIT first")
        if self.store.state is not DeviceState.LOCKED:
            self.store.lock()
        return ["locked"]

    def _abort(self, args) -> list[str]:
        self._reset_session()
        return []


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def _flip_a_body_bit(frame: bytes) -> bytes:
    """Flip the low bit of an alphanumeric byte mid-body: the result stays printable and
    keeps its '*', so the receiver's CRC check (and only that) catches it."""
    garbled = bytearray(frame)
    body_end = frame.rindex(b"*")
    pos = next(i for i in [*range(body_end // 2, body_end), *range(body_end // 2)]
               if chr(frame[i]).isalnum())
    garbled[pos] ^= 0x01
    return bytes(garbled)


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_object(kind: ObjectKind, data: bytes) -> None:
    try:
        if kind is ObjectKind.SUBJECT:
            check_name_der(data)
        elif kind is ObjectKind.CERT:
            x509.load_der_x509_certificate(data)
        elif data[:1] == b"\x30":  # the compact form: DER certificates, concatenated
            for der in der_certificates(data):
                x509.load_der_x509_certificate(der)
        elif not x509.load_pem_x509_certificates(data):
            raise ValueError("no certificate in the bundle")
    except ValueError as exc:
        raise _Refusal(ErrorCode.BADOBJ, f"{kind} invalid: {exc}") from None
