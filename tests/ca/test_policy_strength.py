"""Policy rules found weakly tested by mutation testing (docs/testing.md): a signature that
cannot be evaluated, a key cryptography cannot load, key types outside every rule, a PEM
request with leading blank lines, and the exact text of each refusal the operator reads
(where a parser is quoted, its own message is taken from the parser, not written here)."""
from __future__ import annotations

import pytest
from asn1crypto import core
from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ed448
from cryptography.x509.oid import NameOID

from station.config import PolicyConfig
from station.errors import PolicyRefusal
from station.policy import IssuancePolicy, _malformed, describe_key, spki_sha256
from tests.csr_factory import (CHALLENGE_PASSWORD, EXTENSION_REQUEST, MS_EXTENSION_REQUEST, assemble_csr,
                               extension_der, extension_request, make_csr, new_key, sign_request_info)

SUBJECT = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SIM-1-00AA")])
DEFAULT = IssuancePolicy(PolicyConfig())
UNKNOWN_OID = "1.3.6.1.4.1.99999.9"
KEY_USAGE = extension_der(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)


class NoKeyKnown:
    def public_key_known(self, spki_sha256: str) -> bool:
        return False


def _refusal(csr: bytes, policy: IssuancePolicy = DEFAULT) -> PolicyRefusal:
    with pytest.raises(PolicyRefusal) as info:
        policy.validate(csr, SUBJECT, NoKeyKnown())
    return info.value


class _Parts(core.SequenceOf):
    _child_spec = core.Any


def _replace(csr_pem: bytes, *, info: bytes | None = None, algorithm: bytes | None = None) -> bytes:
    """The DER of a real CSR with its CertificationRequestInfo or signatureAlgorithm swapped
    for the given DER; the signature bytes stay as they were."""
    parsed = asn1_csr.CertificationRequest.load(
        x509.load_pem_x509_csr(csr_pem).public_bytes(serialization.Encoding.DER))
    return _Parts([core.Any.load(info or parsed["certification_request_info"].dump()),
                   core.Any.load(algorithm or parsed["signature_algorithm"].dump()),
                   core.Any.load(parsed["signature"].dump())]).dump()


def _algorithm(oid: str, parameters: bytes = core.Null().dump()) -> bytes:
    """An AlgorithmIdentifier with this OID and these parameters (NULL unless given)."""
    return core.Sequence(contents=core.ObjectIdentifier(oid).dump() + parameters).dump()


# --- the signature -------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", [_algorithm(UNKNOWN_OID), _algorithm("1.2.840.113549.1.1.11"),
                                       _algorithm("1.2.840.113549.1.1.4"), _algorithm("1.3.101.112", b"")],
                         ids=["unknown-oid", "rsa-sha256-on-an-ec-key", "md5-rsa", "ed25519-on-an-ec-key"])
def test_a_signature_that_cannot_be_evaluated_is_refused(algorithm):
    # cryptography 50 answers False here rather than raising; either way no proof of
    # possession was given, so the request must be refused.
    csr = _replace(make_csr(SUBJECT), algorithm=algorithm)
    refusal = _refusal(csr)
    assert refusal.code == "bad-csr-signature"
    assert str(refusal) == "CSR signature does not verify: the device did not prove it holds the key"


# --- keys ----------------------------------------------------------------------------------

def test_a_key_cryptography_cannot_load_is_refused_as_unsupported():
    # A P-256 key whose point is not on the curve: the SPKI is well formed (asn1crypto reads
    # it), but cryptography refuses to load the key.
    csr = make_csr(SUBJECT)
    info = asn1_csr.CertificationRequest.load(
        x509.load_pem_x509_csr(csr).public_bytes(serialization.Encoding.DER))["certification_request_info"]
    info["subject_pk_info"]["public_key"] = asn1_keys.ECPointBitString(b"\x04" + b"\x01" * 64)
    refusal = _refusal(_replace(csr, info=info.dump(force=True)))
    assert refusal.code == "key-not-allowed"
    assert str(refusal).startswith("device key refused: unsupported key (")


@pytest.mark.parametrize("key,algorithm,shown", [
    (ed448.Ed448PrivateKey.generate(), None, "ed448"),
    (dsa.generate_private_key(2048), hashes.SHA256(), "DSAPublicKey"),
], ids=["ed448", "dsa"])
def test_a_key_type_no_rule_knows_is_refused_and_named(key, algorithm, shown):
    csr = x509.CertificateSigningRequestBuilder().subject_name(SUBJECT).sign(key, algorithm)
    refusal = _refusal(csr.public_bytes(serialization.Encoding.PEM))
    assert refusal.code == "key-not-allowed"
    assert str(refusal) == f"device key {shown} refused (allowed: ec-p256, ec-p384)"


def test_a_curve_outside_the_policy_is_refused_with_the_allowed_list():
    refusal = _refusal(make_csr(SUBJECT, key=new_key("ec-p521")))
    assert str(refusal) == "device key ec-p521 refused (allowed: ec-p256, ec-p384)"


def test_rsa_when_not_allowed_says_so():
    refusal = _refusal(make_csr(SUBJECT, key=new_key("rsa-2048")))
    assert str(refusal) == "device key rsa-2048 refused: RSA keys are not allowed by policy"


# --- the bytes ---------------------------------------------------------------------------------

def test_a_pem_request_after_blank_lines_is_read():
    # Files and serial captures often start with a newline; the PEM block is still one request.
    validated = DEFAULT.validate(b"\n\r\n  " + make_csr(SUBJECT), SUBJECT, NoKeyKnown())
    assert validated.key_type == "ec-p256"


def test_a_der_request_is_read():
    assert DEFAULT.validate(make_csr(SUBJECT, pem=False), SUBJECT, NoKeyKnown()).key_type == "ec-p256"


# --- the text of each refusal ------------------------------------------------------------------

MALFORMED = "CSR is not a valid PEM or DER PKCS#10 request"


def _first_line_of_error(action) -> str:
    """What the parser itself says about these bytes (the policy quotes its first line)."""
    with pytest.raises(Exception) as info:
        action()
    return str(info.value).splitlines()[0]


def _attribute_one_byte_too_long() -> bytes:
    """A request whose attribute claims one byte more than its set holds: cryptography's
    parser explains this in more than 120 characters."""
    key = new_key()
    good = assemble_csr(SUBJECT, key, attributes=[(EXTENSION_REQUEST, [extension_request(KEY_USAGE)])])
    info = bytearray(asn1_csr.CertificationRequest.load(good)["certification_request_info"].dump())
    oid = core.ObjectIdentifier(EXTENSION_REQUEST).dump()
    info[bytes(info).find(oid) - 1] += 1  # the Attribute SEQUENCE's length byte
    return sign_request_info(bytes(info), key)


def test_the_parser_message_is_quoted_on_its_first_line_and_cut_at_120_characters():
    csr = _attribute_one_byte_too_long()
    said = _first_line_of_error(lambda: x509.load_der_x509_csr(csr))
    assert len(said) > 120
    assert str(_refusal(csr)) == f"{MALFORMED} ({said[:120]})"


def test_bytes_that_are_no_request_quote_the_parser_without_a_part():
    said = _first_line_of_error(lambda: x509.load_der_x509_csr(b"garbage"))
    refusal = _refusal(b"garbage")
    assert refusal.code == "malformed-csr" and str(refusal) == f"{MALFORMED} ({said})"


def test_two_pem_blocks_are_named():
    csr = make_csr(SUBJECT)
    assert str(_refusal(csr + csr)) == f"{MALFORMED} (more than one PEM block)"


def test_a_wrong_version_is_named():
    csr = assemble_csr(SUBJECT, version=1)
    said = _first_line_of_error(lambda: x509.load_der_x509_csr(csr))
    assert str(_refusal(csr)) == f"{MALFORMED} (version: {said})"


def test_invalid_utf8_in_the_subject_is_named():
    csr = assemble_csr(SUBJECT.public_bytes().replace(b"SIM-1-", b"SIM\xff1-"))
    said = _first_line_of_error(lambda: x509.load_der_x509_csr(csr).subject.public_bytes())
    assert str(_refusal(csr)) == f"{MALFORMED} (subject: {said})"


def test_an_unreadable_key_algorithm_is_malformed_in_the_attributes_walk():
    # asn1crypto cannot read a key algorithm it does not know; the walk refuses it before
    # cryptography is asked for the key.
    csr = make_csr(SUBJECT)
    info = asn1_csr.CertificationRequest.load(
        x509.load_pem_x509_csr(csr).public_bytes(serialization.Encoding.DER))["certification_request_info"]
    spki = core.Sequence(contents=_algorithm(UNKNOWN_OID) + core.BitString((0,) * 64).dump()).dump()
    contents = info["version"].dump() + info["subject"].dump() + spki + info["attributes"].dump()
    refusal = _refusal(_replace(csr, info=core.Sequence(contents=contents).dump()))
    assert refusal.code == "malformed-csr"
    assert str(refusal) == f"{MALFORMED} (attributes: '{UNKNOWN_OID}')"


def test_an_exception_without_a_message_is_named_by_its_type():
    # No parser input found raises an empty message today; the refusal must still say something.
    assert str(_malformed(ValueError())) == f"{MALFORMED} (ValueError)"


@pytest.mark.parametrize("attributes,text", [
    ([(CHALLENGE_PASSWORD, [core.PrintableString("x1").dump()])],
     "CSR carries attribute challengePassword, which the station does not accept (only one extension request is)"),
    ([(EXTENSION_REQUEST, [extension_request(KEY_USAGE), extension_request(KEY_USAGE)])],
     "CSR attribute extensionRequest has 2 values; exactly one is allowed"),
    ([(EXTENSION_REQUEST, [extension_request(KEY_USAGE)]), (MS_EXTENSION_REQUEST, [extension_request(KEY_USAGE)])],
     "CSR carries more than one extension request (extensionRequest, msExtReq)"),
], ids=["other-attribute", "two-values", "two-requests"])
def test_attribute_refusals_say_which_and_why(attributes, text):
    refusal = _refusal(assemble_csr(SUBJECT, attributes=attributes))
    assert refusal.code == "attribute-refused" and str(refusal) == text


@pytest.mark.parametrize("extension,text", [
    (x509.BasicConstraints(ca=True, path_length=None), "CSR asks for a CA certificate (basicConstraints CA:TRUE)"),
    (x509.SubjectAlternativeName([x509.DNSName("evil.example")]),
     "CSR asks for subjectAltName entries; the station does not issue them"),
], ids=["ca-true", "subject-alt-name"])
def test_extension_refusals_say_what_was_asked(extension, text):
    refusal = _refusal(make_csr(SUBJECT, extensions=[(extension, False)]))
    assert refusal.code == "extension-refused" and str(refusal) == text


def test_an_extension_value_cryptography_cannot_parse_is_refused_with_its_reason():
    # keyUsage whose value is a NULL, not a BIT STRING: asn1crypto reads only the extension's
    # OID and criticality, cryptography parses the value and fails.
    bad_key_usage = core.Sequence(contents=core.ObjectIdentifier("2.5.29.15").dump()
                                  + core.OctetString(core.Null().dump()).dump()).dump()
    csr = assemble_csr(SUBJECT, attributes=[(EXTENSION_REQUEST, [extension_request(bad_key_usage)])])
    said = _first_line_of_error(lambda: x509.load_der_x509_csr(csr).extensions)
    refusal = _refusal(csr)
    assert refusal.code == "extension-refused" and str(refusal) == f"CSR extensions cannot be parsed ({said})"


def test_ed25519_refusal_gives_the_reason():
    csr = x509.CertificateSigningRequestBuilder().subject_name(SUBJECT).sign(new_key("ed25519"), None)
    assert str(_refusal(csr.public_bytes(serialization.Encoding.PEM))) == \
        "device key ed25519 refused: AWS IoT does not accept Ed25519 device certificates"


def test_describe_key_names_edwards_keys():
    # `station ca show` prints it for any certificate's key.
    assert describe_key(new_key("ed25519").public_key()) == "ed25519"
    assert describe_key(ed448.Ed448PrivateKey.generate().public_key()) == "ed448"


class EveryKeyKnown:
    def public_key_known(self, spki_sha256: str) -> bool:
        return True


def test_a_reused_key_is_shown_by_its_fingerprint_prefix():
    key = new_key()
    with pytest.raises(PolicyRefusal) as info:
        DEFAULT.validate(make_csr(SUBJECT, key=key), SUBJECT, EveryKeyKnown())
    assert info.value.code == "key-reused"
    assert str(info.value) == (f"public key {spki_sha256(key.public_key())[:16]}... was already certified; "
                               "the device must generate a fresh key")
