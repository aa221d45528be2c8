"""The CA keys live in a real SoftHSM2 token and cannot leave it."""
from __future__ import annotations

from pathlib import Path

import pytest

from hsm import softhsm
from hsm.errors import HSMError, PinIncorrect, TokenNotFound
from hsm.token import Token
from station.boot import module_path


@pytest.mark.parametrize("label", ["issuing-ca", "root-ca", "audit"])
def test_ca_private_keys_are_sensitive_and_never_extractable(station, label):
    attrs = station.token.private_key_attributes(label)
    assert attrs == {"token": True, "sensitive": True, "extractable": False,
                     "always_sensitive": True, "never_extractable": True}
    with pytest.raises(HSMError, match="refused to reveal"):
        station.token.read_private_value(label)


def test_signer_refuses_to_export_the_private_key(station):
    from cryptography.hazmat.primitives import serialization

    with pytest.raises(HSMError, match="lives in the HSM"):
        station.ca.signer.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    with pytest.raises(HSMError):
        station.ca.signer.private_numbers()


def test_wrong_pin_is_refused_even_while_the_process_is_logged_in(station, station_config):
    # The station fixture holds a logged-in session: PKCS#11 would accept any PIN for a
    # second session, so the token layer must check it itself.
    with pytest.raises(PinIncorrect) as info:
        Token(module_path(station_config.hsm), station_config.hsm.token_label, "not-the-pin",
              softhsm_conf=station_config.hsm.softhsm_conf)
    assert "not-the-pin" not in str(info.value)


def test_unknown_token_label_names_the_tokens_present(station_config, station):
    with pytest.raises(TokenNotFound, match="no token labelled 'missing'.*'station-ca'"):
        Token(module_path(station_config.hsm), "missing", "x", softhsm_conf=station_config.hsm.softhsm_conf)


def test_missing_softhsm_config_is_explained(tmp_path):
    with pytest.raises(TokenNotFound, match="softhsm2.conf does not exist"):
        softhsm.check_config(tmp_path / "softhsm2.conf")


def test_missing_token_directory_is_explained(tmp_path):
    conf = tmp_path / "softhsm2.conf"
    softhsm.write_config(conf, tmp_path / "tokens")
    (tmp_path / "tokens").rmdir()
    with pytest.raises(TokenNotFound, match="token directory .*tokens.* does not exist"):
        softhsm.check_config(conf)


def test_missing_module_is_explained(tmp_path):
    with pytest.raises(TokenNotFound, match="does not exist"):
        Token(Path(tmp_path / "libnothing.so"), "x", "1234")


def test_an_extractable_issuing_key_is_refused(station):
    from pkcs11 import Attribute, KeyType
    from pkcs11.util.ec import encode_named_curve_parameters

    from hsm.ca import CertificateAuthority
    from hsm.errors import CAError
    from hsm.token import PKCS11_LOCK

    label = "leaky-ca"
    if not station.token.has_key(label):
        with PKCS11_LOCK:
            params = station.token._session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
            params.generate_keypair(store=True, label=label, id=label.encode(),
                                    private_template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True})
    with pytest.raises(CAError, match="extractable"):
        CertificateAuthority(token=station.token, issuing_label=label, chain=station.ca.chain)



def _make_key_pair(station, label: str, private_template: dict) -> None:
    """A key pair made the careless way (vendor tools, old scripts): raw PKCS#11, any flags."""
    from pkcs11 import Attribute, KeyType
    from pkcs11.util.ec import encode_named_curve_parameters

    from hsm.token import PKCS11_LOCK

    with PKCS11_LOCK:
        params = station.token._session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
        params.generate_keypair(store=True, label=label, id=label.encode(), private_template=private_template)


def test_a_sensitive_but_extractable_issuing_key_is_refused(station):
    # Sensitive hides the value from attribute reads, but an extractable key can still be
    # wrapped out of the token: it is refused as well.
    from pkcs11 import Attribute

    from hsm.ca import CertificateAuthority
    from hsm.errors import CAError

    label = "wrappable-ca"
    if not station.token.has_key(label):
        _make_key_pair(station, label, {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True})
    attrs = station.token.private_key_attributes(label)
    assert attrs["sensitive"] and attrs["extractable"]
    with pytest.raises(CAError, match=f"issuing key '{label}' on the token is extractable"):
        CertificateAuthority(token=station.token, issuing_label=label, chain=station.ca.chain)


def test_two_keys_with_one_label_are_refused_with_a_clear_message(station):
    from pkcs11 import Attribute

    label = "twin-ca"
    if not station.token.has_key(label):
        for _ in range(2):
            _make_key_pair(station, label, {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False})
    with pytest.raises(HSMError, match="2 private keys labelled 'twin-ca' on token 'station-ca'; expected one"):
        station.token.private_key_attributes(label)
    with pytest.raises(HSMError, match="2 public keys labelled 'twin-ca'"):
        station.token.public_key(label)
