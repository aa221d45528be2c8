"""The CA and audit keys are sign-only on the real token: no derive, decrypt, unwrap or
sign-recover, and `station ca show` flags a key that allows more."""
from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import KDF, KeyType, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11._pkcs11 import DeriveMixin

from hsm.token import PKCS11_LOCK
from tests.cli_runner import run_station

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
