"""The compact extension's pieces in the codec (docs/protocol.md section 9), on their own: the
base64 hash form, WRITEZ's raw DEFLATE with its preset dictionary (and its limit against a
stream that inflates past the announced length), the dictionary's order, the DER chain split,
and the new verbs' resend rules."""
from __future__ import annotations

import datetime
import hashlib
import zlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from station.link.codec import (COMMANDS, DICTIONARY_ORDER, Verb, deflate, deflate_dictionary, der_certificates,
                                inflate, sha256_b64)


def _certificate(name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def test_sha256_b64_is_the_digest_in_standard_base64():
    assert sha256_b64(b"") == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    assert sha256_b64(b"abc") == "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
    assert len(sha256_b64(b"x" * 1000)) == 44


def test_deflate_is_raw_and_inflate_undoes_it_with_the_same_dictionary():
    data = b"certificate body " * 40
    for dictionary in (b"", b"a dictionary " * 5):
        packed = deflate(data, dictionary)
        # Raw DEFLATE (wbits -15): no zlib header, so zlib's own decoder refuses it.
        with pytest.raises(zlib.error):
            zlib.decompress(packed)
        assert inflate(packed, dictionary, len(data)) == data


def test_the_dictionary_is_what_makes_a_repeated_object_small():
    data = _certificate("device")
    assert len(deflate(data, data)) < 40 < len(deflate(data, b""))


def test_inflate_refuses_a_damaged_stream_a_wrong_dictionary_and_a_short_one():
    data = _certificate("device")
    packed = deflate(data, b"the session's objects")
    with pytest.raises(ValueError, match="not a DEFLATE stream"):
        inflate(b"\xff\xff\xff\xff", b"", 10)
    # A stream that refers into its dictionary cannot be read back with another one: the
    # bytes come out wrong (the hash check after WRITEZ refuses them) or not at all.
    referring = deflate(data, data)
    try:
        wrong = inflate(referring, bytes(len(data)), len(data))
    except ValueError:
        wrong = None
    assert wrong != data
    with pytest.raises(ValueError, match=r"^the DEFLATE stream is incomplete or longer than announced$"):
        inflate(packed[:len(packed) // 2], b"the session's objects", len(data))


def test_inflate_stops_just_past_the_announced_length():
    bomb = deflate(b"\0" * 1_000_000, b"")
    with pytest.raises(ValueError, match="incomplete or longer than announced"):
        inflate(bomb, b"", 100)
    unpacker = zlib.decompressobj(-15)
    assert len(unpacker.decompress(bomb, 101)) == 101  # the most inflate ever produces here
    assert inflate(deflate(b"\0" * 100, b""), b"", 100) == b"\0" * 100


def test_the_dictionary_is_the_other_objects_in_the_documented_order():
    assert DICTIONARY_ORDER == ("subject", "csr", "cert", "chain", "anchors")
    objects = {"chain": b"C", "anchors": b"A", "subject": b"S", "cert": b"T", "csr": b"R"}
    assert deflate_dictionary(objects, "cert") == b"SRCA"
    assert deflate_dictionary(objects, "chain") == b"SRTA"
    assert deflate_dictionary({"subject": b"S", "csr": b"R"}, "cert") == b"SR"
    assert deflate_dictionary({}, "cert") == b""


def test_a_compact_chain_splits_into_its_certificates():
    first, second = _certificate("issuing"), _certificate("root")
    assert der_certificates(first + second) == [first, second]
    assert der_certificates(first) == [first]
    assert hashlib.sha256(b"".join(der_certificates(first + second))).digest() == \
        hashlib.sha256(first + second).digest()


@pytest.mark.parametrize("data, message", [
    (b"", "^no certificate$"),
    (b"\x30\x80\x02\x01\x00\x00\x00", "^indefinite length at offset 0: not DER$"),
    (b"\x02\x01\x00", "no DER SEQUENCE at offset 0"),
    (b"\x30\x05\x02\x01", "no whole DER value at offset 0"),
])
def test_bytes_that_are_not_whole_sequences_are_refused(data, message):
    with pytest.raises(ValueError, match=message):
        der_certificates(data)


def test_a_bad_certificate_after_a_good_one_is_named_by_its_offset():
    first = _certificate("issuing")
    with pytest.raises(ValueError, match=f"no DER SEQUENCE at offset {len(first)}"):
        der_certificates(first + b"\x04\x00")


def test_line_is_never_resent_and_sync_fits_twice_in_the_device_s_window():
    # A lost OK to LINE may mean the device already listens at the new rate: no resend.
    assert COMMANDS[Verb.LINE].retries == 0
    assert COMMANDS[Verb.SYNC].retries == 1 and COMMANDS[Verb.SYNC].timeout_s == 0.2
    assert (COMMANDS[Verb.GENCSR].retries, COMMANDS[Verb.GENCSR].idempotent) == (1, False)
    assert all(COMMANDS[v].idempotent for v in (Verb.WRITE, Verb.WRITEZ, Verb.SIGN, Verb.LINE, Verb.SYNC))
