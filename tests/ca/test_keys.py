"""The CA and audit keys on the real token: sign-only (no derive, decrypt, unwrap or
sign-recover; `station ca show` flags a key that allows more), signing with the hash their
size calls for, and certified only by a certificate that allows certificate signing."""
from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID
from pkcs11 import KDF, KeyType, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11._pkcs11 import DeriveMixin

from hsm.ca import check_issuing_import
from hsm.errors import CAError
from hsm.token import PKCS11_LOCK
from tests.ca.offline_root import OfflineRoot
from tests.cli_runner import run_station
from tests.csr_factory import make_csr

LABELS = ["issuing-ca", "root-ca", "audit"]


@pytest.mark.parametrize("label", LABELS)
def test_fresh_keys_are_sign_only(station, label):
    assert station.token.private_key_capabilities(label) == {
        "sign": True, "sign_recover": False, "derive": False, "decrypt": False, "unwrap": False}


@pytest.mark.parametrize("label", LABELS)
def test_fresh_keys_refuse_an_ecdh_derive(station, label):
    # The attack this closes: anyone with the PIN could agree a secret with the CA key, making
    # it a key-agreement key as well as a signing key.
    peer = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    private = station.token._find(label, ObjectClass.PRIVATE_KEY)
    # python-pkcs11 offers derive_key() only on objects whose CKA_DERIVE is true; call its
    # implementation directly so the token itself is asked, and answers.
    with PKCS11_LOCK, pytest.raises(p11.PKCS11Error) as info:
        DeriveMixin.derive_key(private, KeyType.GENERIC_SECRET, 256, mechanism_param=(KDF.NULL, None, peer))
    # CKR_KEY_FUNCTION_NOT_PERMITTED (0x68), which python-pkcs11 0.10 leaves unmapped.
    assert "0x68" in str(info.value), info.value


_MAKE_DERIVE_KEY = """
import sys
from pkcs11 import Attribute, KeyType
from pkcs11.util.ec import encode_named_curve_parameters
from station.boot import open_token
from station.config import load_config
from hsm.token import PKCS11_LOCK

with open_token(load_config(sys.argv[1])) as token, PKCS11_LOCK:
    params = token._session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
    params.generate_keypair(store=True, label="audit-derive", id=b"audit-derive",
                            private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                                              Attribute.DERIVE: True, Attribute.SIGN: True})
"""


def test_ca_show_flags_a_key_that_allows_derive(tmp_path):
    assert run_station("init", "--workdir", tmp_path).returncode == 0
    config = tmp_path / "station.toml"
    made = subprocess.run([sys.executable, "-c", _MAKE_DERIVE_KEY, str(config)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr

    honest = run_station("ca", "show", cwd=tmp_path)
    assert honest.returncode == 0, honest.stderr
    assert "FLAG" not in honest.stdout
    assert honest.stdout.count("allows:      sign only") == 3  # issuing, root, audit

    config.write_text(config.read_text().replace('audit_key_label = "audit"', 'audit_key_label = "audit-derive"'))
    flagged = run_station("ca", "show", cwd=tmp_path)
    assert flagged.returncode == 3, flagged.stdout + flagged.stderr
    assert "FLAG: key 'audit-derive' allows sign_recover, derive" in flagged.stdout
    assert "Traceback" not in flagged.stderr
    assert "'audit-derive'" in flagged.stderr and "sign-only" in flagged.stderr


def test_a_p384_ca_signs_with_sha384(tmp_path):
    # SHA-256 under a P-384 key would cap the chain at 128-bit strength and fail profile
    # linters; every certificate the P-384 CA makes must say ecdsa-with-SHA384.
    assert run_station("init", "--workdir", tmp_path, "--key-type", "ec-p384").returncode == 0
    from station.config import load_config
    from station.profile import DeviceRef, subject_for

    subject = subject_for(load_config(tmp_path / "station.toml").profile, DeviceRef("AB12", "L-1", "M"))
    (tmp_path / "d.csr").write_bytes(make_csr(subject))
    result = run_station("issue", tmp_path / "d.csr", "--device-id", "AB12", "--label", "L-1", "--model", "M",
                         "--out", tmp_path / "d.pem", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    issuing, root = x509.load_pem_x509_certificates((tmp_path / "ca/chain.pem").read_bytes())
    device = x509.load_pem_x509_certificate((tmp_path / "d.pem").read_bytes())
    audit = x509.load_pem_x509_certificates((tmp_path / "ca/audit.pem").read_bytes())[0]
    for cert in (root, issuing, device, audit):
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA384), cert.subject.rfc4514_string()
        assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA384


def test_an_issuing_certificate_without_key_cert_sign_is_refused(station):
    # The offline root certified the token's issuing key, but only for digitalSignature:
    # relying parties would reject every device certificate it signs.
    root = OfflineRoot()
    issuing_key = station.token.public_key("issuing-ca")
    issuing_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Issuing without keyCertSign")])
    signing_only = root.certify(issuing_name, issuing_key, usage=("digital_signature",))
    with pytest.raises(CAError, match="does not allow certificate signing \\(keyUsage keyCertSign missing\\)"):
        check_issuing_import(station.token, "issuing-ca", [signing_only, root.certificate])
    # The same certificate with keyCertSign is accepted: the refusal is about that bit alone.
    check_issuing_import(station.token, "issuing-ca", [root.certify(issuing_name, issuing_key), root.certificate])


_TRY_RSA_DECRYPT = """
import sys
from cryptography.hazmat.primitives.asymmetric import padding
from pkcs11 import Mechanism, ObjectClass
from pkcs11._pkcs11 import DecryptMixin
from station.boot import open_token
from station.config import load_config
from hsm.token import PKCS11_LOCK

with open_token(load_config(sys.argv[1])) as token, PKCS11_LOCK:
    for label in ("issuing-ca", "root-ca"):
        print(label, sorted(use for use, on in token.private_key_capabilities(label).items() if on))
        secret = token.public_key(label).encrypt(b"wrapped key", padding.PKCS1v15())
        try:
            # python-pkcs11 offers decrypt() only where CKA_DECRYPT is true: give the object
            # the method anyway, so that the token itself is asked.
            key = token._find(label, ObjectClass.PRIVATE_KEY)
            key.__class__ = type("Probe", (type(key), DecryptMixin), {})
            key.decrypt(secret, mechanism=Mechanism.RSA_PKCS)
            print(label, "DECRYPTED")
        except Exception as exc:
            print(label, "refused", exc)
"""


def test_rsa_ca_keys_refuse_to_decrypt(tmp_path):
    assert run_station("init", "--workdir", tmp_path, "--key-type", "rsa-3072").returncode == 0
    tried = subprocess.run([sys.executable, "-c", _TRY_RSA_DECRYPT, str(tmp_path / "station.toml")],
                           capture_output=True, text=True)
    assert tried.returncode == 0, tried.stderr
    for label in ("issuing-ca", "root-ca"):
        assert f"{label} ['sign']" in tried.stdout, tried.stdout
        # CKR_KEY_FUNCTION_NOT_PERMITTED (0x68)
        assert f"{label} refused Unmapped error code 0x68" in tried.stdout, tried.stdout
