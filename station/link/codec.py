"""Frames of the station <-> device line protocol (docs/protocol.md is the contract).

Pure functions and value types, no I/O: the station's transport and the device simulator
both build on this module, and firmware teams can read it as an executable spec.

Public names (stable; other modules import them):

Constants
    PROTOCOL_VERSION, SUPPORTED_VERSIONS   protocol major version(s) this code speaks
    MAX_FRAME                               512: longest frame in bytes, LF included
    MIN_MTU                                 128: smallest receive limit a device may announce
    MAX_SEQ, DEVICE_SEQ                     1..65535 for requests; 0 on answers to unreadable frames
    DEFAULT_CHUNK                           raw payload bytes per chunk (256)
    NONCE_LEN                               32: PROVE nonce length in bytes
    EXT_COMPACT, XMTU_MIN, XMTU_MAX         the compact extension's name and frame limits
    LINE_CONFIRM_S, LINE_SETTLE_S           the baud switch's timing (protocol.md 9.3)
Enums
    Verb            request verbs (HELLO, BEGIN, PUT, END, KEYGEN, GET, COMMIT, PROVE, LOCK, ABORT)
                    and answer verbs (OK, ERR); REQUEST_VERBS is the request subset
    ErrorCode       ERR codes; `.meaning` is the documented text, `.resend_safe` says whether
                    the station may resend the same frame after this error
    ObjectKind      payload names: subject, cert, chain, anchors (station -> device),
                    csr, sig (device -> station); UPLOAD_KINDS, DOWNLOAD_KINDS
    KeyType         EC-P256, EC-P384, RSA-2048
    DeviceState     blank, provisioned, locked
    FrameErrorReason  why decode_frame refused a line
Commands
    CommandSpec(verb, timeout_s, retries, idempotent), COMMANDS: dict[Verb, CommandSpec]
    answer_timeout(verb, baud, request_len) -> float    timeout including line transfer time
    line_seconds(n_bytes, baud) -> float                 time n bytes take on the UART (8N1)
Frames
    Frame(seq, verb, args)  with .is_ok, .is_error, .error_code, .error_text, .fields(),
                            .field_items()
    FrameError(ValueError)  with .reason (FrameErrorReason)
    crc16_ccitt_false(data, crc=0xFFFF) -> int      binascii.crc_hqx (C)
    crc16_ccitt_false_reference(data, crc=0xFFFF) -> int   the bitwise reference, as in C
    encode_frame(seq, verb, args=(), max_frame=MAX_FRAME) -> bytes
    encode_ok(seq, *args) -> bytes, encode_error(seq, code, text) -> bytes
    decode_frame(line, max_frame=MAX_FRAME) -> Frame
Payloads
    sha256_hex(data) -> str, sha256_b64(data) -> str (the compact extension's form)
    der_certificates(data) -> list[bytes]   a compact chain split into its certificates
    deflate(data, dictionary), inflate(packed, dictionary, length), deflate_dictionary(objects,
    kind)   WRITEZ's compression (raw DEFLATE with the session's objects as dictionary)
    max_chunk_bytes(max_frame=MAX_FRAME) -> int
    chunk_payload(data, chunk_size=DEFAULT_CHUNK) -> list[str]     base64 chunks
    PayloadAssembler(total_len, sha256)  .add(index, b64) .complete .finish() -> bytes
    PayloadError(ValueError)  with .code (ErrorCode) to answer on the wire
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Iterable

from asn1crypto import parser as asn1_parser

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
MAX_FRAME = 512
MIN_MTU = 128  # the smallest receive limit a device may announce in HELLO
MAX_SEQ = 65535
DEVICE_SEQ = 0
DEFAULT_CHUNK = 256
NONCE_LEN = 32
# The compact extension (docs/protocol.md section 9).
EXT_COMPACT = "c1"  # its name in HELLO's `ext=` list
XMTU_MIN, XMTU_MAX = 2048, 8192  # what a device may announce as `xmtu=`
LINE_CONFIRM_S = 1.0  # a device waits this long at a new rate for a valid frame, then reverts
LINE_SETTLE_S = 0.02  # the station waits this long after LINE's OK before sending at the new rate

# The longest fixed part of a chunk frame: "65535 PUT anchors 65535 " + "*XXXX\n" = 30 bytes.
# Rounded up so a firmware's own verbs/paddings never push a full chunk over MAX_FRAME.
_CHUNK_FRAME_OVERHEAD = 32


_FIELD_KEY = re.compile(r"[a-z][a-z0-9_]*")


class Verb(StrEnum):
    HELLO = "HELLO"
    BEGIN = "BEGIN"
    PUT = "PUT"
    END = "END"
    KEYGEN = "KEYGEN"
    GET = "GET"
    COMMIT = "COMMIT"
    PROVE = "PROVE"
    LOCK = "LOCK"
    ABORT = "ABORT"
    # The compact extension (docs/protocol.md section 9): only sent to a device that announced
    # it in HELLO, so a version-1 device never sees them.
    WRITE = "WRITE"
    WRITEZ = "WRITEZ"
    GENCSR = "GENCSR"
    SIGN = "SIGN"
    LINE = "LINE"
    SYNC = "SYNC"
    # Answers
    OK = "OK"
    ERR = "ERR"


REQUEST_VERBS = frozenset(v for v in Verb if v not in (Verb.OK, Verb.ERR))


class ErrorCode(StrEnum):
    """ERR codes. Value is the wire token; `meaning` is the table text of docs/protocol.md."""

    def __new__(cls, token: str, meaning: str, resend_safe: bool):
        obj = str.__new__(cls, token)
        obj._value_ = token
        obj.meaning = meaning
        obj.resend_safe = resend_safe
        return obj

    CRC = ("CRC", "checksum mismatch; the frame was not executed (answered with seq 0)", True)
    TOOLONG = ("TOOLONG", "frame longer than the maximum; discarded up to LF, not executed (seq 0)",
               True)
    SYNTAX = ("SYNTAX", "frame not well formed (non-ASCII, no checksum, bad seq or verb); "
              "not executed (seq 0 when the seq was unreadable)", True)
    UNKNOWN = ("UNKNOWN", "verb not known to this device", False)
    ARG = ("ARG", "wrong number or format of arguments", False)
    VERSION = ("VERSION", "no protocol version in common; text lists the device's versions", False)
    ORDER = ("ORDER", "command not allowed in the current state (e.g. COMMIT before any write, "
             "PROVE before COMMIT, PUT without BEGIN, GET before KEYGEN)", False)
    CHUNK = ("CHUNK", "chunk index skips ahead, or chunk is not valid base64; text names the "
             "expected index", False)
    LENGTH = ("LENGTH", "object larger than the device can store, or received length differs "
              "from the announced one", False)
    HASH = ("HASH", "SHA-256 of the received object differs from the announced one", False)
    BADOBJ = ("BADOBJ", "object content invalid (subject not a DER Name, cert not DER X.509, "
              "bundle not PEM certificates)", False)
    KEYMISMATCH = ("KEYMISMATCH", "staged certificate's public key is not the device's key", False)
    UNSUPPORTED = ("UNSUPPORTED", "key type not supported by this device", False)
    CONFIRM = ("CONFIRM", "LOCK confirmation argument is not this device's id", False)
    LOCKED = ("LOCKED", "device is locked; provisioning commands are refused forever", False)
    SEQ = ("SEQ", "sequence number repeats the previous request with different content", False)
    STORAGE = ("STORAGE", "persistent write failed; the stored objects are unchanged", False)
    INTERNAL = ("INTERNAL", "device-side failure not covered above", False)


class ObjectKind(StrEnum):
    SUBJECT = "subject"  # station -> device: DER X.509 Name for the CSR
    CERT = "cert"  # station -> device: DER device certificate
    CHAIN = "chain"  # station -> device: PEM bundle, issuing CA chain
    ANCHORS = "anchors"  # station -> device: PEM bundle, server trust anchors (optional)
    CSR = "csr"  # device -> station: DER PKCS#10
    SIG = "sig"  # device -> station: DER ECDSA or PKCS#1 v1.5 signature


UPLOAD_KINDS = frozenset({ObjectKind.SUBJECT, ObjectKind.CERT, ObjectKind.CHAIN,
                          ObjectKind.ANCHORS})
DOWNLOAD_KINDS = frozenset({ObjectKind.CSR, ObjectKind.SIG})


class KeyType(StrEnum):
    EC_P256 = "EC-P256"
    EC_P384 = "EC-P384"
    RSA_2048 = "RSA-2048"


class DeviceState(StrEnum):
    BLANK = "blank"
    PROVISIONED = "provisioned"
    LOCKED = "locked"


@dataclass(frozen=True)
class CommandSpec:
    """Per-command timing. `timeout_s` is the device's processing budget (answer_timeout adds
    the line time); `retries` is how many times the station may resend the *identical* frame
    (same seq, the device replays its cached answer); `idempotent` says a fresh repeat with a
    new seq leaves the device in the same state."""

    verb: Verb
    timeout_s: float
    retries: int
    idempotent: bool


COMMANDS: dict[Verb, CommandSpec] = {
    spec.verb: spec
    for spec in (
        CommandSpec(Verb.HELLO, 1.0, 2, True),
        CommandSpec(Verb.BEGIN, 1.0, 2, True),
        CommandSpec(Verb.PUT, 1.0, 2, True),
        CommandSpec(Verb.END, 1.0, 2, True),
        # Key generation on a small MCU takes seconds; a fresh KEYGEN makes a new key.
        CommandSpec(Verb.KEYGEN, 8.0, 1, False),
        CommandSpec(Verb.GET, 1.0, 2, True),
        # Flash writes (erase + program) and RSA signing are the slow ones after KEYGEN.
        CommandSpec(Verb.COMMIT, 2.0, 1, True),
        CommandSpec(Verb.PROVE, 2.0, 2, True),
        CommandSpec(Verb.LOCK, 2.0, 1, True),
        CommandSpec(Verb.ABORT, 1.0, 2, True),
        CommandSpec(Verb.WRITE, 1.0, 2, True),
        CommandSpec(Verb.WRITEZ, 1.0, 2, True),
        CommandSpec(Verb.GENCSR, 8.0, 1, False),
        CommandSpec(Verb.SIGN, 2.0, 2, True),
        # No resend: a lost OK may mean the device already listens at the new rate, where a
        # resend at the old one is noise. The station settles it with SYNC (section 9.3).
        CommandSpec(Verb.LINE, 1.0, 0, True),
        # The confirmation at a new rate: short, so two attempts fit the device's window.
        CommandSpec(Verb.SYNC, 0.2, 1, True),
    )
}


def line_seconds(n_bytes: int, baud: int) -> float:
    """Time `n_bytes` take through a UART at `baud` (8N1: 10 bits a byte, start and stop)."""
    return n_bytes * 10 / baud


def answer_timeout(verb: Verb | str, baud: int = 115200, request_len: int = MAX_FRAME) -> float:
    """Seconds to wait for the answer's LF after sending a request of `request_len` bytes:
    the command's device budget plus the time to clock the request and a maximal answer
    through a UART at `baud`."""
    spec = COMMANDS[Verb(verb)]
    return spec.timeout_s + line_seconds(request_len + MAX_FRAME, baud)


class FrameErrorReason(StrEnum):
    EMPTY = "empty"
    TOO_LONG = "too long"
    NOT_ASCII = "not ASCII"
    NO_CHECKSUM = "no checksum"
    BAD_CHECKSUM = "bad checksum"
    BAD_SEQ = "bad sequence number"
    BAD_VERB = "bad verb"
    SYNTAX = "syntax"

    def answer_code(self) -> ErrorCode:
        """The ERR code a device answers (with seq 0) to a frame refused for this reason."""
        if self is FrameErrorReason.TOO_LONG:
            return ErrorCode.TOOLONG
        if self is FrameErrorReason.BAD_CHECKSUM:
            return ErrorCode.CRC
        return ErrorCode.SYNTAX


class FrameError(ValueError):
    """A line is not a valid frame. `reason` is the category, str() the precise explanation."""

    def __init__(self, reason: FrameErrorReason, detail: str):
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Frame:
    seq: int
    verb: str
    args: tuple[str, ...] = ()

    @property
    def is_ok(self) -> bool:
        return self.verb == Verb.OK.value

    @property
    def is_error(self) -> bool:
        return self.verb == Verb.ERR.value

    @property
    def error_code(self) -> ErrorCode | None:
        """The ERR code, or None if this is not an ERR frame or the code is not one we know
        (a newer device may add codes; treat unknown ones like INTERNAL)."""
        if not self.is_error or not self.args:
            return None
        try:
            return ErrorCode(self.args[0])
        except ValueError:
            return None

    @property
    def error_text(self) -> str:
        return " ".join(self.args[1:]) if self.is_error else ""

    def field_items(self) -> list[tuple[str, str]]:
        """The key=value arguments (HELLO and COMMIT answers) in order, repeats included;
        positional ones are skipped. Keys are lower-case names and values are not empty, so
        base64 padding (`QUI=`) is never mistaken for a field."""
        out = []
        for arg in self.args:
            key, sep, value = arg.partition("=")
            if sep and value and not value.startswith("=") and _FIELD_KEY.fullmatch(key):
                out.append((key, value))
        return out

    def fields(self) -> dict[str, str]:
        """field_items() as a dict (a repeated key keeps its last value)."""
        return dict(self.field_items())


def crc16_ccitt_false(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0.
    crc16_ccitt_false(b"123456789") == 0x29B1. The standard library computes exactly this
    CRC in C (`binascii.crc_hqx`); every frame in both directions goes through it, so the
    bitwise loop (about 1 ms for a full frame) cost the station most of its CPU per device.
    `crc16_ccitt_false_reference` is the same CRC as a firmware writes it."""
    return binascii.crc_hqx(data, crc)


def crc16_ccitt_false_reference(data: bytes, crc: int = 0xFFFF) -> int:
    """The bitwise form of crc16_ccitt_false, line for line the C in docs/protocol.md §2.1:
    the reference a firmware team reads. Not used on the line; tests check both agree."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


_SEQ_RE = re.compile(rb"0|[1-9][0-9]{0,4}")
_VERB_RE = re.compile(rb"[A-Z][A-Z0-9_]{0,15}")
_HEX4_RE = re.compile(rb"[0-9A-Fa-f]{4}")


def _check_arg(arg: str) -> None:
    if not arg:
        raise ValueError("empty argument")
    for ch in arg:
        if not ("!" <= ch <= "~") or ch == "*":
            raise ValueError(f"argument {arg!r} holds {ch!r}: only printable ASCII "
                             "without space or '*'")


def encode_frame(seq: int, verb: Verb | str, args: Iterable[str] = (), *,
                 max_frame: int = MAX_FRAME) -> bytes:
    """One frame: b"<seq> <VERB> <arg>...*<CRC>\\n". Raises ValueError for an argument the
    grammar cannot carry or a frame longer than max_frame (programming errors, not line
    noise: callers chunk payloads with max_chunk_bytes)."""
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"sequence number {seq} outside 0..{MAX_SEQ}")
    verb = verb.value if isinstance(verb, Verb) else verb
    if not _VERB_RE.fullmatch(verb.encode("ascii", "replace")):
        raise ValueError(f"verb {verb!r} is not 1-16 of A-Z, 0-9, _ starting with a letter")
    parts = [str(seq), verb]
    for arg in args:
        arg = arg.value if isinstance(arg, Enum) else str(arg)
        _check_arg(arg)
        parts.append(arg)
    body = " ".join(parts).encode("ascii")
    frame = body + b"*%04X\n" % crc16_ccitt_false(body)
    if len(frame) > max_frame:
        raise ValueError(f"frame of {len(frame)} bytes exceeds the maximum of {max_frame}")
    return frame


def encode_ok(seq: int, *args: str) -> bytes:
    return encode_frame(seq, Verb.OK, args)


def encode_error(seq: int, code: ErrorCode, text: str = "") -> bytes:
    """ERR frame; `text` is made wire-safe (printable ASCII, no '*', single spaces) and cut
    so the frame fits."""
    safe = "".join(ch if " " <= ch <= "~" and ch != "*" else "?" for ch in text)
    words = safe.split()
    while True:
        try:
            return encode_frame(seq, Verb.ERR, [code.value, *words])
        except ValueError:
            if not words:
                raise
            words.pop()


def decode_frame(line: bytes, *, max_frame: int = MAX_FRAME) -> Frame:
    """Parse one line (with or without its trailing LF; a CR before the LF is ignored).
    Raises FrameError for anything that is not a well-formed frame with a correct checksum;
    never anything else."""
    # max_frame counts the LF. Transports hand over lines with the LF already cut: count it
    # anyway, or a 513-byte frame would pass as 512.
    length = len(line) if line.endswith(b"\n") else len(line) + 1
    if length > max_frame:
        raise FrameError(FrameErrorReason.TOO_LONG,
                         f"{length} bytes with the LF, the maximum is {max_frame}")
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line:
        raise FrameError(FrameErrorReason.EMPTY, "no bytes before the line end")
    bad = next((i for i, b in enumerate(line) if not 0x20 <= b <= 0x7E), None)
    if bad is not None:
        raise FrameError(FrameErrorReason.NOT_ASCII,
                         f"byte 0x{line[bad]:02X} at offset {bad}; frames are printable ASCII")
    body, star, crc_text = line.rpartition(b"*")
    if not star or not _HEX4_RE.fullmatch(crc_text):
        raise FrameError(FrameErrorReason.NO_CHECKSUM, "line does not end in '*' and 4 hex digits")
    expected = crc16_ccitt_false(body)
    if int(crc_text, 16) != expected:
        raise FrameError(FrameErrorReason.BAD_CHECKSUM,
                         f"frame says {crc_text.decode()}, content gives {expected:04X}")
    if b"*" in body:
        raise FrameError(FrameErrorReason.SYNTAX, "'*' inside the frame body")
    parts = body.split(b" ")
    if len(parts) < 2 or any(not p for p in parts):
        raise FrameError(FrameErrorReason.SYNTAX,
                         "expected '<seq> <VERB> [args]' separated by single spaces")
    if not _SEQ_RE.fullmatch(parts[0]) or int(parts[0]) > MAX_SEQ:
        raise FrameError(FrameErrorReason.BAD_SEQ,
                         f"{parts[0].decode()!r} is not a decimal 0..{MAX_SEQ} without leading zeros")
    if not _VERB_RE.fullmatch(parts[1]):
        raise FrameError(FrameErrorReason.BAD_VERB,
                         f"{parts[1].decode()!r} is not 1-16 of A-Z, 0-9, _ starting with a letter")
    return Frame(int(parts[0]), parts[1].decode(), tuple(p.decode() for p in parts[2:]))


def sha256_hex(data: bytes) -> str:
    """Hashes travel as 64 lowercase hex digits (receivers accept either case)."""
    return hashlib.sha256(data).hexdigest()


def sha256_b64(data: bytes) -> str:
    """The compact extension's hashes: the 32 bytes in standard base64 (44 characters)."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


# WRITEZ's preset dictionary: the session's objects in this order (docs/protocol.md 9.3).
DICTIONARY_ORDER = ("subject", "csr", "cert", "chain", "anchors")


def deflate_dictionary(objects: dict[str, bytes], kind: str) -> bytes:
    """The preset dictionary for a WRITEZ of `kind`: the session's other objects, in
    DICTIONARY_ORDER. A certificate repeats the subject and key of the CSR, and the chain
    the certificate's issuer, so with them deflate leaves mostly what is new."""
    return b"".join(objects[k] for k in DICTIONARY_ORDER if k != kind and k in objects)


def deflate(data: bytes, dictionary: bytes) -> bytes:
    """Raw DEFLATE (RFC 1951, no zlib header) of `data` with a preset dictionary."""
    if dictionary:
        packer = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=dictionary)
    else:  # zlib refuses an empty zdict
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def inflate(packed: bytes, dictionary: bytes, length: int) -> bytes:
    """Undo `deflate`, producing at most `length` + 1 bytes (a bomb stops there). ValueError
    when the stream is damaged or incomplete."""
    unpacker = (zlib.decompressobj(-15, zdict=dictionary) if dictionary
                else zlib.decompressobj(-15))
    try:
        data = unpacker.decompress(packed, length + 1)
    except zlib.error as exc:
        raise ValueError(f"not a DEFLATE stream ({exc})") from None
    if not unpacker.eof:
        raise ValueError("the DEFLATE stream is incomplete or longer than announced")
    return data


def der_certificates(data: bytes) -> list[bytes]:
    """Split concatenated DER certificates (the compact chain) into each one's bytes, each a
    whole universal SEQUENCE as asn1crypto's DER parser reads it. ValueError when the bytes are
    not whole SEQUENCEs (truncated, another tag) or hold none."""
    out, pos = [], 0
    while pos < len(data):
        try:
            klass, _method, tag, header, content, trailer = asn1_parser.parse(data[pos:])
        except ValueError as exc:
            raise ValueError(f"no whole DER value at offset {pos} ({exc})") from None
        if (klass, tag) != (0, 16):  # universal SEQUENCE, as every certificate is
            raise ValueError(f"no DER SEQUENCE at offset {pos}")
        if trailer:  # the parser also reads BER's indefinite length; a certificate is DER
            raise ValueError(f"indefinite length at offset {pos}: not DER")
        size = len(header) + len(content)
        out.append(data[pos:pos + size])
        pos += size
    if not out:
        raise ValueError("no certificate")
    return out


def max_chunk_bytes(max_frame: int = MAX_FRAME) -> int:
    """Largest raw chunk whose base64 fits in a PUT/GET frame of max_frame bytes."""
    return (max_frame - _CHUNK_FRAME_OVERHEAD) // 4 * 3


def chunk_payload(data: bytes, chunk_size: int = DEFAULT_CHUNK) -> list[str]:
    """Split `data` into base64 strings of at most `chunk_size` raw bytes each; an empty
    payload gives no chunks."""
    if chunk_size <= 0:
        raise ValueError("chunk size must be positive")
    return [base64.b64encode(data[i:i + chunk_size]).decode("ascii")
            for i in range(0, len(data), chunk_size)]


class PayloadError(ValueError):
    """A chunked transfer went wrong; `code` is what a device answers on the wire."""

    def __init__(self, code: ErrorCode, detail: str):
        super().__init__(detail)
        self.code = code


def _parse_sha256(sha256: bytes | str) -> bytes:
    if isinstance(sha256, bytes):
        digest = sha256
    else:
        try:
            digest = bytes.fromhex(sha256) if len(sha256) == 64 else b""
        except ValueError:
            digest = b""
    if len(digest) != 32:
        raise PayloadError(ErrorCode.ARG, "SHA-256 must be 32 bytes (64 hex digits)")
    return digest


class PayloadAssembler:
    """Receiving half of a chunked transfer: chunks 0, 1, 2... in order.

    A chunk already received, sent again (a resend after a lost answer), is accepted if
    identical and ignored; a different one, or an index that skips ahead, raises
    PayloadError(CHUNK). The total length may never be exceeded (LENGTH); finish() checks
    length (LENGTH) and SHA-256 (HASH)."""

    def __init__(self, total_len: int, sha256: bytes | str, *, max_len: int | None = None):
        if total_len < 0:
            raise PayloadError(ErrorCode.ARG, "length must not be negative")
        if max_len is not None and total_len > max_len:
            raise PayloadError(ErrorCode.LENGTH,
                               f"{total_len} bytes announced, this object holds at most {max_len}")
        self.total_len = total_len
        self.sha256 = _parse_sha256(sha256)
        self._chunks: list[bytes] = []
        self.received = 0

    @property
    def next_index(self) -> int:
        return len(self._chunks)

    @property
    def complete(self) -> bool:
        return self.received == self.total_len

    def add(self, index: int, b64: str) -> None:
        try:
            chunk = base64.b64decode(b64.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise PayloadError(ErrorCode.CHUNK, f"chunk {index} is not valid base64") from None
        if 0 <= index < self.next_index:
            if self._chunks[index] != chunk:
                raise PayloadError(ErrorCode.CHUNK,
                                   f"chunk {index} resent with different content")
            return
        if index != self.next_index:
            raise PayloadError(ErrorCode.CHUNK, f"chunk {index} out of order, expected "
                                                f"{self.next_index}")
        if not chunk:
            raise PayloadError(ErrorCode.CHUNK, f"chunk {index} is empty")
        if self.received + len(chunk) > self.total_len:
            raise PayloadError(ErrorCode.LENGTH, f"chunk {index} goes past the announced "
                                                 f"{self.total_len} bytes")
        self._chunks.append(chunk)
        self.received += len(chunk)

    def finish(self) -> bytes:
        if self.received != self.total_len:
            raise PayloadError(ErrorCode.LENGTH, f"received {self.received} of "
                                                 f"{self.total_len} announced bytes")
        data = b"".join(self._chunks)
        if hashlib.sha256(data).digest() != self.sha256:
            raise PayloadError(ErrorCode.HASH, "SHA-256 of the received bytes differs from "
                                               "the announced one")
        return data
