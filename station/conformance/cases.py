"""The conformance suite for protocol version 1 (docs/conformance.md describes each case).

Cases run in the order of `SUITE`. Each opens its own session and starts with HELLO, so one
failing case does not spoil the next; the positive flow (keygen-csr -> write-commit ->
prove) carries its results from case to case in `Bench.flow`, and a later step names the
earlier one when it cannot run. Cases that need a blank device (nothing committed yet)
report SKIP on a provisioned one rather than guess.
"""
from __future__ import annotations

import base64
import hashlib
import os
import time
from contextlib import contextmanager
from typing import Iterator

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from station.conformance.runner import Bench, BoardUntestable, Case, CaseFailed, CaseSkipped
from station.drivers.base import DeviceIdentity
from station.drivers.cip import CipDriver, CipSession
from station.drivers.identity import parse_hello
from station.link.codec import (
    DEVICE_SEQ, EXT_COMPACT, LINE_CONFIRM_S, MAX_FRAME, PROTOCOL_VERSION, XMTU_MAX, XMTU_MIN, Frame,
    FrameError, Verb, answer_timeout, decode_frame, deflate, encode_frame, max_chunk_bytes,
    sha256_b64,
)
from station.link.errors import DeviceRefused, DeviceTimeout, FrameTooLong
from station.proof import proof_failure


@contextmanager
def _session(bench: Bench) -> Iterator[tuple[CipSession, DeviceIdentity]]:
    """A fresh port and a HELLO: the device's session state is reset, the mtu known. The
    identity fields are not judged here (the `hello` case does that, once)."""
    transport = bench.open()
    try:
        session = CipSession(transport, timeout_scale=bench.timeout_scale)
        identity = _hello(session, bench)
        if identity.state == "locked":
            raise BoardUntestable(
                f"the board on {bench.port} is locked: it refuses every provisioning command "
                "for ever, so the conformance kit cannot test it; use a blank or provisioned "
                "board")
        session.mtu = int(identity.extra["mtu"])
        yield session, identity
    finally:
        transport.close()


def _expect_refusal(session: CipSession, code: str, verb: Verb, *args: str) -> None:
    try:
        answer = session.request(verb, *args)
    except DeviceRefused as refused:
        if refused.code != code:
            raise CaseFailed(f"{verb.value} answered ERR {refused.code}, expected ERR {code}")
        return
    raise CaseFailed(f"{verb.value} answered OK {' '.join(answer.args)}, expected ERR {code}")


def _quick_answer_s(bench: Bench, request_len: int = MAX_FRAME) -> float:
    """A device answers a frame it could not read within HELLO's budget plus line time."""
    return bench.seconds(answer_timeout(Verb.HELLO, bench.baud, request_len))


def _next_answer(bench: Bench, session: CipSession, step: str, seq: int,
                 request_len: int = MAX_FRAME) -> tuple[bytes, Frame]:
    """The next valid frame answering `seq` (or carrying seq 0), with its raw line. Like the
    line (docs/protocol.md section 6), skips noise and valid frames with any other seq."""
    deadline = time.monotonic() + _quick_answer_s(bench, request_len)
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            raw = session.transport.receive(step=step, timeout=remaining)
            frame = decode_frame(raw)
        except (FrameError, FrameTooLong):
            continue  # noise is allowed before an answer (docs/protocol.md section 1)
        if frame.seq in (seq, DEVICE_SEQ):
            return raw, frame
    raise DeviceTimeout(step, _quick_answer_s(bench, request_len), port=session.port)


def _raw_exchange(bench: Bench, session: CipSession, line: bytes, step: str,
                  seq: int) -> tuple[bytes, Frame]:
    session.transport.send_raw(line, step=step)
    length = max(len(line), MAX_FRAME)  # a long line takes its time on the wire
    try:
        return _next_answer(bench, session, step, seq, length)
    except DeviceTimeout:
        raise CaseFailed(f"no answer to {line[:40]!r} within "
                         f"{_quick_answer_s(bench, length):g} s") from None


def _expect_frame_error(frame: Frame, code: str, what: str) -> None:
    if frame.seq != 0 or not frame.is_error or frame.args[:1] != (code,):
        raise CaseFailed(f"{what} answered {frame.seq} {frame.verb} {' '.join(frame.args)}, "
                         f"expected 0 ERR {code}")


def _hello(session: CipSession, bench: Bench) -> DeviceIdentity:
    return parse_hello(session.request(Verb.HELLO, str(PROTOCOL_VERSION)), bench.port,
                       identity=False)


def _still_answers(session: CipSession) -> None:
    answer = session.request(Verb.HELLO, str(PROTOCOL_VERSION))
    if not answer.is_ok:
        raise CaseFailed("device did not recover: HELLO afterwards failed")


# -- identity ------------------------------------------------------------------------------

def hello(bench: Bench) -> None:
    with _session(bench) as (session, _):
        # The line's own check (drivers/identity.py), so the reason is the line's words.
        bench.flow["identity"] = parse_hello(session.request(Verb.HELLO, str(PROTOCOL_VERSION)),
                                             bench.port)


def version_negotiation(bench: Bench) -> None:
    with _session(bench) as (session, _):
        answer = session.request(Verb.HELLO, "99")
        if answer.args[:1] != (str(PROTOCOL_VERSION),):
            raise CaseFailed(f"HELLO 99 answered version {answer.args[:1]}, expected "
                             f"{PROTOCOL_VERSION} (highest not greater than asked)")


# -- frame-level robustness ----------------------------------------------------------------

def bad_checksum(bench: Bench) -> None:
    with _session(bench) as (session, _):
        seq = session.next_seq()
        good = encode_frame(seq, Verb.ABORT)
        damaged = good[:-5] + (b"0000" if not good.endswith(b"0000\n") else b"1111") + b"\n"
        _, frame = _raw_exchange(bench, session, damaged, "ABORT", seq)
        _expect_frame_error(frame, "CRC", "a frame with a wrong checksum")
        # The damaged frame must not have been executed: the same seq is still free.
        _, frame = _raw_exchange(bench, session, good, "ABORT", seq)
        if frame.seq != seq or not frame.is_ok:
            raise CaseFailed(f"the corrected frame got {frame.seq} {frame.verb} "
                             f"{' '.join(frame.args)}, expected {seq} OK")


def over_long_frame(bench: Bench) -> None:
    with _session(bench) as (session, identity):
        mtu = int(identity.extra["mtu"])
        if CipDriver._announces_compact(identity.extra):
            mtu = int(identity.extra["xmtu"])  # its receive limit (docs/protocol.md 9.1)
        seq = session.next_seq()
        _, frame = _raw_exchange(bench, session, b"%d HELLO " % seq
                                 + b"A" * max(mtu, MAX_FRAME) + b"*0000\n", "HELLO", seq)
        _expect_frame_error(frame, "TOOLONG", f"a line over {mtu} bytes")
        try:
            extra, _ = _next_answer(bench, session, "HELLO", seq)
        except DeviceTimeout:
            pass
        else:
            raise CaseFailed(f"device answered the over-long line twice (then {extra[:40]!r})")
        _still_answers(session)


def unknown_command(bench: Bench) -> None:
    with _session(bench) as (session, _):
        seq = session.next_seq()
        _, frame = _raw_exchange(bench, session, encode_frame(seq, "FROBNICATE", ["1"]),
                                 "FROBNICATE", seq)
        if frame.seq != seq or frame.args[:1] != ("UNKNOWN",):
            raise CaseFailed(f"unknown verb answered {frame.seq} {frame.verb} "
                             f"{' '.join(frame.args)}, expected {seq} ERR UNKNOWN")
        _still_answers(session)


# -- out of order --------------------------------------------------------------------------

def put_without_begin(bench: Bench) -> None:
    with _session(bench) as (session, _):
        _expect_refusal(session, "ORDER", Verb.PUT, "cert", "0", "AAAA")
        _expect_refusal(session, "ORDER", Verb.END, "cert")


def get_before_keygen(bench: Bench) -> None:
    with _session(bench) as (session, _):
        _expect_refusal(session, "ORDER", Verb.GET, "csr", "0")
        _expect_refusal(session, "ORDER", Verb.KEYGEN, "EC-P256")  # no subject staged


def commit_before_write(bench: Bench) -> None:
    with _session(bench) as (session, identity):
        if identity.state == "blank":
            _expect_refusal(session, "ORDER", Verb.COMMIT)
        # In any state: a chain alone is not a certificate set.
        session.upload("chain", bench.ca.chain_pem())
        _expect_refusal(session, "ORDER", Verb.COMMIT)
        after = _hello(session, bench)
        if after.state != identity.state:
            raise CaseFailed(f"a refused COMMIT changed the state {identity.state} -> {after.state}")


def prove_before_commit(bench: Bench) -> None:
    with _session(bench) as (session, identity):
        if identity.state != "blank":
            raise CaseSkipped(f"needs a blank device; this one is {identity.state}")
        _expect_refusal(session, "ORDER", Verb.PROVE, os.urandom(32).hex())


# -- transfers and resends -----------------------------------------------------------------

def interrupted_write(bench: Bench) -> None:
    cert = bench.ca.root.public_bytes(serialization.Encoding.DER)  # any DER certificate
    digest = hashlib.sha256(cert).hexdigest()
    with _session(bench) as (session, _):
        # One chunk as big as the device's mtu allows (at most 128 bytes), then other borders.
        first = min(128, max_chunk_bytes(session.mtu))
        half = base64.b64encode(cert[:first]).decode()
        # Abandoned after one chunk, then END: the partial object must not be staged.
        session.request(Verb.BEGIN, "cert", str(len(cert)), digest)
        session.request(Verb.PUT, "cert", "0", half)
        _expect_refusal(session, "LENGTH", Verb.END, "cert")
        session.upload("chain", bench.ca.chain_pem())
        _expect_refusal(session, "ORDER", Verb.COMMIT)
        # Abandoned after one chunk, then restarted with BEGIN: only the new transfer counts.
        session.request(Verb.BEGIN, "cert", str(len(cert)), digest)
        session.request(Verb.PUT, "cert", "0", half)
        session.chunk_size = first - 28  # different chunk borders: stale bytes break the hash
        if session.upload("cert", cert) != digest:
            raise CaseFailed("restarted transfer staged different bytes")
        session.request(Verb.ABORT)


def replayed_sequence(bench: Bench) -> None:
    chain = bench.ca.chain_pem()
    with _session(bench) as (session, _):
        seq = session.next_seq()
        begin = encode_frame(seq, Verb.BEGIN, ["chain", str(len(chain)),
                                               hashlib.sha256(chain).hexdigest()])
        first, _ = _raw_exchange(bench, session, begin, "BEGIN", seq)
        again, _ = _raw_exchange(bench, session, begin, "BEGIN", seq)
        if again != first:
            raise CaseFailed(f"a resent frame got {again!r}, not the same answer {first!r}")
        seq = session.next_seq()
        size = min(120, max_chunk_bytes(session.mtu))  # one chunk that fits the device's mtu
        put = encode_frame(seq, Verb.PUT, ["chain", "0", base64.b64encode(chain[:size]).decode()])
        first, _ = _raw_exchange(bench, session, put, "PUT", seq)
        again, _ = _raw_exchange(bench, session, put, "PUT", seq)
        if again != first or not first.split(b" ")[-1].startswith(b"%d*" % size):
            raise CaseFailed(f"a resent PUT got {again!r} after {first!r}: it must be answered "
                             "the same and not add the chunk twice")
        _, frame = _raw_exchange(bench, session, encode_frame(seq, Verb.ABORT), "ABORT", seq)
        if frame.seq != seq or frame.args[:1] != ("SEQ",):
            raise CaseFailed(f"a new request reusing seq {seq} got {frame.verb} "
                             f"{' '.join(frame.args)}, expected ERR SEQ")


# -- the positive flow ---------------------------------------------------------------------

def keygen_csr(bench: Bench) -> None:
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Station conformance kit"),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, os.urandom(8).hex().upper()),
        x509.NameAttribute(NameOID.COMMON_NAME, f"conformance-{os.urandom(4).hex()}"),
    ]).public_bytes()
    with _session(bench) as (session, _):
        session.upload("subject", subject)
        announce = session.request(Verb.KEYGEN, "EC-P256")
        der = session.download(announce, "csr", "KEYGEN")
    try:
        csr = x509.load_der_x509_csr(der)
    except ValueError as exc:
        raise CaseFailed(f"CSR is not DER PKCS#10: {exc}") from None
    if not csr.is_signature_valid:
        raise CaseFailed("CSR signature does not verify with its own public key")
    if csr.subject.public_bytes() != subject:
        raise CaseFailed(f"CSR subject {csr.subject.rfc4514_string()!r} is not the one sent")
    key = csr.public_key()
    if not (isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"):
        raise CaseFailed(f"asked for EC-P256, CSR holds a {type(key).__name__} "
                         f"({getattr(key, 'key_size', '?')} bits)")
    bench.flow["csr"] = csr


def write_commit(bench: Bench) -> None:
    csr = _needs(bench, "csr", "keygen-csr")
    cert = bench.ca.issue(csr)
    objects = {"cert": cert.public_bytes(serialization.Encoding.DER),
               "chain": bench.ca.chain_pem(), "anchors": bench.ca.anchors_pem()}
    with _session(bench) as (session, _):
        for kind, data in objects.items():
            session.upload(kind, data)
        fields = session.request(Verb.COMMIT).fields()
        for kind, data in objects.items():
            if fields.get(kind, "").lower() != hashlib.sha256(data).hexdigest():
                raise CaseFailed(f"COMMIT reports {kind}={fields.get(kind, '(missing)')[:16]}..., "
                                 f"written {hashlib.sha256(data).hexdigest()[:16]}...")
        after = _hello(session, bench)
        if after.state != "provisioned":
            raise CaseFailed(f"after COMMIT the device says state={after.state}")
    bench.flow["cert"] = cert


def prove(bench: Bench) -> None:
    cert = _needs(bench, "cert", "write-commit")
    nonce = os.urandom(32)
    with _session(bench) as (session, _):
        signature = session.download(session.request(Verb.PROVE, nonce.hex()), "sig", "PROVE")
    if proof_failure(cert.public_key(), nonce, signature) is not None:
        raise CaseFailed("PROVE signature does not verify with the committed certificate's key")


def lock(bench: Bench) -> None:
    _needs(bench, "cert", "write-commit")
    with _session(bench) as (session, identity):
        wrong = f"{int(identity.device_id, 16) ^ 1:016X}"
        _expect_refusal(session, "CONFIRM", Verb.LOCK, wrong)
        session.request(Verb.LOCK, identity.device_id)
        _expect_refusal(session, "LOCKED", Verb.BEGIN, "subject", "1", "00" * 32)
        after = _hello(session, bench)
        if after.state != "locked":
            raise CaseFailed(f"after LOCK the device says state={after.state}")


# -- the compact extension (docs/protocol.md section 9) --------------------------------------

@contextmanager
def _compact(bench: Bench) -> Iterator[tuple[CipSession, DeviceIdentity]]:
    """A session with the extension on, or SKIP when the device does not announce it (it is
    optional); an announcement that is there but malformed fails."""
    with _session(bench) as (session, identity):
        extra = identity.extra
        if EXT_COMPACT not in extra.get("ext", "").split(","):
            raise CaseSkipped(f"the device does not announce the compact extension "
                              f"(ext={extra.get('ext', '(none)')})")
        if not CipDriver._announces_compact(extra):
            raise CaseFailed(f"ext lists {EXT_COMPACT} but xmtu={extra.get('xmtu', '(none)')} is "
                             f"not {XMTU_MIN} to {XMTU_MAX}")
        session.compact = True
        session.mtu = int(extra["xmtu"])
        session.transport.frame_limit = session.mtu
        yield session, identity


def compact_write(bench: Bench) -> None:
    chain = bench.ca.issuing.public_bytes(serialization.Encoding.DER)
    root = bench.ca.root.public_bytes(serialization.Encoding.DER)
    with _compact(bench) as (session, _):
        _expect_refusal(session, "HASH", Verb.WRITE, "chain", str(len(chain)),
                        sha256_b64(chain[:-1]), base64.b64encode(chain).decode())
        # DER certificates back to back, in a frame longer than version 1's 512 bytes; the
        # answer's hash must be the one sent (session.write compares).
        session.write("chain", chain + root)
        # WRITEZ: raw DEFLATE against the session's objects (here the staged chain).
        packed = base64.b64encode(deflate(root, chain + root)).decode()
        answer = session.request(Verb.WRITEZ, "anchors", str(len(root)), sha256_b64(root), packed)
        if answer.args[1:3] != (str(len(root)), sha256_b64(root)):
            raise CaseFailed(f"WRITEZ anchors answered {' '.join(answer.args)}, expected "
                             f"anchors {len(root)} {sha256_b64(root)}")
        session.request(Verb.ABORT)


def compact_gencsr(bench: Bench) -> None:
    _needs(bench, "cert", "write-commit")  # a new pending key before then would spoil it
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "conformance-compact")])
    with _compact(bench) as (session, _):
        session.write("subject", subject.public_bytes())
        der = session.inline(session.request(Verb.GENCSR, "EC-P256"), "csr", "GENCSR")
        session.request(Verb.ABORT)
    csr = x509.load_der_x509_csr(der)
    if not csr.is_signature_valid or csr.subject != subject:
        raise CaseFailed("GENCSR's CSR does not verify or does not carry the subject sent")


def compact_sign(bench: Bench) -> None:
    cert = _needs(bench, "cert", "write-commit")
    nonce = os.urandom(32)
    with _compact(bench) as (session, _):
        answer = session.request(Verb.SIGN, base64.b64encode(nonce).decode())
        signature = session.inline(answer, "sig", "SIGN")
    if proof_failure(cert.public_key(), nonce, signature) is not None:
        raise CaseFailed("SIGN's signature does not verify with the committed key")


def _offered_rates(identity: DeviceIdentity, bench: Bench) -> list[int]:
    rates = [int(b) for b in identity.extra.get("bauds", "").split(",") if b.isdigit()]
    faster = [b for b in rates if b != bench.baud]
    if not faster:
        raise CaseSkipped("the device offers no other rate (bauds=)")
    return faster


def line_revert(bench: Bench) -> None:
    with _compact(bench) as (session, identity):
        rate = max(_offered_rates(identity, bench))
        _expect_refusal(session, "ARG", Verb.LINE, "1")  # not a rate it offered
        session.request(Verb.LINE, str(rate))
        # Never confirmed: after the window the device must be back at the old rate.
        time.sleep(LINE_CONFIRM_S * 1.1)
        session.transport.discard_input()
        try:
            session.request(Verb.SYNC)
        except DeviceTimeout:
            raise CaseFailed(f"no answer at {bench.baud} after an unconfirmed switch to {rate}: "
                             f"the device must revert after {LINE_CONFIRM_S:g} s") from None


def line_switch(bench: Bench) -> None:
    with _compact(bench) as (session, identity):
        rate = max(_offered_rates(identity, bench))
        # The device's window is 1 s whatever the kit's scale: no reason to be quicker.
        session.timeout_scale = max(session.timeout_scale, 1.0)
        line = session.switch_line(rate)
        if line != str(rate):
            raise CaseFailed(f"switch to {rate} not confirmed: the line stayed at {line}")
        _still_answers(session)
    # The board now runs at `rate` until it resets: later cases speak to it there.
    bench.baud = rate


def _needs(bench: Bench, key: str, case: str):
    try:
        return bench.flow[key]
    except KeyError:
        raise CaseFailed(f"not run: needs case {case} to pass first") from None


SUITE: list[Case] = [
    Case("hello", "HELLO answers version 1 and a well-formed identity", hello),
    Case("version-negotiation", "HELLO 99 is answered with version 1", version_negotiation),
    Case("bad-checksum", "a frame with a wrong CRC gets 0 ERR CRC and is not executed",
         bad_checksum),
    Case("over-long-frame", "a line over the mtu gets one 0 ERR TOOLONG, then the link works",
         over_long_frame),
    Case("unknown-command", "an unknown verb gets ERR UNKNOWN with its seq", unknown_command),
    Case("put-without-begin", "PUT and END without BEGIN get ERR ORDER", put_without_begin),
    Case("get-before-keygen", "GET csr and KEYGEN without a subject get ERR ORDER",
         get_before_keygen),
    Case("commit-before-write", "COMMIT without cert and chain gets ERR ORDER, state unchanged",
         commit_before_write),
    Case("prove-before-commit", "PROVE on a blank device gets ERR ORDER", prove_before_commit),
    Case("interrupted-write", "an abandoned upload is never staged; a restart counts alone",
         interrupted_write),
    Case("replayed-sequence", "a resent frame gets the identical answer, executed once; "
         "a reused seq with new content gets ERR SEQ", replayed_sequence),
    Case("keygen-csr", "KEYGEN gives a CSR with a valid signature and exactly the subject sent",
         keygen_csr),
    Case("write-commit", "cert, chain, anchors written; COMMIT reports their SHA-256",
         write_commit),
    Case("prove", "PROVE signs a nonce with the committed key", prove),
    Case("compact-write", "compact extension: WRITE stages DER chains in long frames, refuses "
         "a wrong hash; WRITEZ inflates against the session's objects", compact_write),
    Case("compact-gencsr", "compact extension: GENCSR answers a valid CSR for the subject sent",
         compact_gencsr),
    Case("compact-sign", "compact extension: SIGN signs a nonce with the committed key",
         compact_sign),
    Case("line-revert", "compact extension: LINE refuses a rate not offered; an unconfirmed "
         "switch reverts", line_revert),
    Case("line-switch", "compact extension: LINE then SYNC at the new rate confirms the switch",
         line_switch),
    Case("lock", "LOCK needs the device id, then refuses provisioning (IRREVERSIBLE)", lock,
         irreversible=True),
]
