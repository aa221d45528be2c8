"""Building a PKCS#10 request the way a firmware does: the subject goes in as the exact DER
bytes the station sent (never parsed and re-encoded), next to the key's SubjectPublicKeyInfo,
and the device key signs the result. cryptography's CSR builder only takes a parsed `Name`,
which would not prove byte-exactness, hence the few lines of DER here."""
from __future__ import annotations

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

# AlgorithmIdentifier DER: ecdsa-with-SHA256 / -SHA384 (RFC 5758, no parameters) and
# sha256WithRSAEncryption (RFC 4055, NULL parameters).
_ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
_ECDSA_SHA384 = bytes.fromhex("300a06082a8648ce3d040303")
_RSA_SHA256 = bytes.fromhex("300d06092a864886f70d01010b0500")


def der_tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def der_elements(data: bytes) -> list[tuple[int, bytes]]:
    """Split `data` into its top-level (tag, content) elements; ValueError if any length is
    malformed or runs past the end (definite lengths only, as DER demands)."""
    out, pos = [], 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise ValueError("truncated DER element")
        tag, first = data[pos], data[pos + 1]
        pos += 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count == 0 or count > 4 or pos + count > len(data):
                raise ValueError("bad DER length")
            length = int.from_bytes(data[pos:pos + count], "big")
            pos += count
        if pos + length > len(data):
            raise ValueError("DER element runs past the end")
        out.append((tag, data[pos:pos + length]))
        pos += length
    return out


def check_name_der(subject: bytes) -> None:
    """A DER X.509 Name is one SEQUENCE of SETs (RDNs) of SEQUENCEs; ValueError otherwise."""
    elements = der_elements(subject)
    if len(elements) != 1 or elements[0][0] != 0x30:
        raise ValueError("subject is not one DER SEQUENCE")
    for tag, rdn in der_elements(elements[0][1]):
        if tag != 0x31 or not rdn:
            raise ValueError("subject holds something other than non-empty SETs")
        for atv_tag, _ in der_elements(rdn):
            if atv_tag != 0x30:
                raise ValueError("subject RDN holds something other than SEQUENCEs")


def sign(key, data: bytes) -> bytes:
    """PROVE's signature over `data`: ECDSA-SHA256 (DER) for any EC key, RSASSA-PKCS1-v1_5
    with SHA-256 for RSA (docs/protocol.md, PROVE)."""
    return _sign(key, data, hashes.SHA256())


def _sign(key, data: bytes, digest) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(digest))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), digest)
    raise TypeError(f"unsupported key {type(key).__name__}")


def build_csr(key, subject_der: bytes, *, corrupt_signature: bool = False) -> bytes:
    """DER CertificationRequest for `key` with `subject_der` verbatim."""
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    info = der_tlv(0x30, der_tlv(0x02, b"\x00") + subject_der + spki + der_tlv(0xA0, b""))
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        digest, alg = hashes.SHA384(), _ECDSA_SHA384
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        digest, alg = hashes.SHA256(), _ECDSA_SHA256
    else:
        digest, alg = hashes.SHA256(), _RSA_SHA256
    signature = bytearray(_sign(key, info, digest))
    if corrupt_signature:
        # The last byte is inside the signature value (s, or the RSA block): still parses.
        signature[-1] ^= 0x01
    return der_tlv(0x30, info + alg + der_tlv(0x03, b"\x00" + bytes(signature)))
