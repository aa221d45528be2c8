"""The token layer on the session's real SoftHSM2 token: one login per token per process shared
by every opener (counted, checked against the PIN, given up by the last close), the exact
attributes of a key the station generates, and what the token says when it refuses.

Everything here uses the session station's token and configuration: a second softhsm2.conf in
this process would re-initialise the PKCS#11 library and end the session every other test
shares (hsm/token.py, `_load_library`)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from hsm.errors import HSMError, KeyNotFound, PinIncorrect, TokenNotFound
from hsm.token import PKCS11_LOCK, KeySpec, Token, _Login, _logins
from station.boot import module_path, open_token
from station.pin import obtain_pin


def second(station, **kw) -> Token:
    """Another opener of the station's token, as a second component of the process would."""
    return open_token(station.cfg, **kw)


def users(token: Token) -> int:
    return _logins[token._login_key].users


def signs(token: Token) -> bool:
    return len(token.sign_raw("issuing-ca", Mechanism.ECDSA, os.urandom(32))) == 64


def test_every_opener_shares_one_login_counted_until_the_last_close(station):
    before = users(station.token)
    a, b = second(station), second(station)
    assert a._login_key == b._login_key == station.token._login_key
    assert users(station.token) == before + 2
    assert signs(a) and signs(b)
    a.close()
    assert users(station.token) == before + 1
    a.close()  # a second close gives nothing up twice
    assert users(station.token) == before + 1
    b.close()
    assert users(station.token) == before
    # The session the station holds was not closed with them.
    assert signs(station.token)


def test_a_second_opener_with_the_wrong_pin_is_refused_by_name_and_takes_no_share(station):
    before = users(station.token)
    with pytest.raises(PinIncorrect) as info:
        second(station, pin="not-the-pin")
    assert str(info.value) == "wrong PIN for token 'station-ca'"
    assert users(station.token) == before
    with second(station, pin=obtain_pin(station.cfg.hsm)) as right:
        assert signs(right)
    assert users(station.token) == before


def test_a_token_opened_through_the_environments_softhsm2_conf_reuses_the_loaded_library(station, monkeypatch):
    # Same configuration, named by SOFTHSM2_CONF instead of the station file: no re-initialise
    # (which would end the station's session), the same shared login.
    hsm = station.cfg.hsm
    monkeypatch.setenv("SOFTHSM2_CONF", str(hsm.softhsm_conf))
    with Token(module_path(hsm), hsm.token_label, obtain_pin(hsm)) as token:
        assert token._login_key == station.token._login_key
        assert signs(token)
    assert signs(station.token)


def test_a_missing_key_is_named_with_its_kind_and_token(station):
    with second(station) as token:  # opened here, not by a fixture: the opener is under test too
        for lookup, kind in ((token.public_key, "public key"), (token.private_key_attributes, "private key")):
            with pytest.raises(KeyNotFound) as info:
                lookup("no-such-key")
            assert str(info.value) == f"no {kind} 'no-such-key' on token 'station-ca'"


def test_a_first_login_is_one_share_holding_the_salted_pin_digest():
    # The first opener's login is made by the session's fixture; its record is checked here
    # directly, as every later opener relies on it.
    login = _Login("the session", b"digest", b"salt")
    assert (login.session, login.pin_digest, login.salt, login.users) == ("the session", b"digest", b"salt", 1)


def public_attributes(token: Token, label: str) -> dict:
    handle = token._find(label, ObjectClass.PUBLIC_KEY)
    with PKCS11_LOCK:
        return {name: bool(handle[attr]) for name, attr in (
            ("token", Attribute.TOKEN), ("verify", Attribute.VERIFY), ("verify_recover", Attribute.VERIFY_RECOVER),
            ("encrypt", Attribute.ENCRYPT), ("wrap", Attribute.WRAP), ("derive", Attribute.DERIVE))}


def labels_and_ids(token: Token, label: str) -> list:
    out = []
    for object_class in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
        handle = token._find(label, object_class)
        with PKCS11_LOCK:
            out.append((handle[Attribute.LABEL], handle[Attribute.ID], bool(handle[Attribute.TOKEN])))
    return out


@pytest.mark.parametrize("label,spec", [("gen-ec", "ec-p256"), ("gen-rsa", "rsa-2048")])
def test_a_generated_key_pair_is_stored_named_and_allowed_to_sign_only(station, label, spec):
    token = station.token
    public = token.generate_key(label, KeySpec.parse(spec))
    assert public == token.public_key(label)
    assert labels_and_ids(token, label) == [(label, label.encode(), True), (label, label.encode(), True)]
    assert token.private_key_attributes(label) == {"token": True, "sensitive": True, "extractable": False,
                                                   "always_sensitive": True, "never_extractable": True}
    assert token.private_key_capabilities(label) == {"sign": True, "sign_recover": False, "derive": False,
                                                     "decrypt": False, "unwrap": False}
    private = token._find(label, ObjectClass.PRIVATE_KEY)
    with PKCS11_LOCK:
        assert private[Attribute.PRIVATE] is True
    assert public_attributes(token, label) == {"token": True, "verify": True, "verify_recover": False,
                                               "encrypt": False, "wrap": False, "derive": False}
    # Kept on the token, not in the session: a second opener finds it.
    with second(station) as other:
        assert other.public_key(label) == public


def test_a_label_already_in_use_is_never_overwritten(station):
    before = station.token.public_key("issuing-ca")
    with pytest.raises(HSMError) as info:
        station.token.generate_key("issuing-ca", KeySpec.parse("ec-p256"))
    assert str(info.value) == "token 'station-ca' already holds a key 'issuing-ca'; refusing to overwrite it"
    assert station.token.public_key("issuing-ca") == before


def test_a_key_the_token_cannot_make_is_reported_with_the_tokens_reason(station):
    with pytest.raises(HSMError) as info:
        station.token.generate_key("too-small-rsa", KeySpec("rsa", bits=256))
    # SoftHSM2 answers CKR_GENERAL_ERROR for an RSA size it does not support.
    assert str(info.value) == "token 'station-ca' could not generate key 'too-small-rsa': GeneralError"
    assert not station.token.has_key("too-small-rsa")


def test_a_sensitive_key_is_refused_by_name(station):
    with pytest.raises(HSMError) as info:
        station.token.read_private_value("issuing-ca")
    assert str(info.value) == "token refused to reveal key 'issuing-ca' (AttributeSensitive)"


def readable_key(station, label: str, key_type: str):
    """A key made with the token's own tools, readable (not sensitive, extractable): what
    `read_private_value` exists to expose."""
    session = station.token._session
    private = {Attribute.TOKEN: True, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True,
               Attribute.SIGN: True}
    with PKCS11_LOCK:
        if key_type == "ec":
            params = session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
            params.generate_keypair(store=True, label=label, id=label.encode(), private_template=private)
        else:
            session.generate_keypair(KeyType.RSA, 2048, store=True, label=label, id=label.encode(),
                                     private_template=private)


def test_a_readable_key_gives_up_its_secret_ec_scalar_or_rsa_exponent(station):
    readable_key(station, "readable-ec", "ec")
    readable_key(station, "readable-rsa", "rsa")
    assert len(station.token.read_private_value("readable-ec")) == 32  # the P-256 private scalar
    exponent = int.from_bytes(station.token.read_private_value("readable-rsa"), "big")
    public = station.token.public_key("readable-rsa").public_numbers()
    # d is the inverse of e modulo lambda(n): e*d = 1 mod (p-1)(q-1)/gcd, so e*d - 1 is even and
    # d is below n; enough to tell it from the public exponent or the modulus.
    assert 1 < exponent < public.n and exponent != public.e and (public.e * exponent - 1) % 2 == 0


def a_shared_object_that_is_no_pkcs11_module(tmp_path) -> Path:
    from cryptography.hazmat.bindings import _rust  # a compiled extension: loads, has no C_GetFunctionList

    return Path(_rust.__file__)


def a_file_that_is_no_shared_object(tmp_path) -> Path:
    path = tmp_path / "not-a-library.so"
    path.write_text("not a shared object")
    return path


@pytest.mark.parametrize("make,reason", [(a_file_that_is_no_shared_object, "file too short"),
                                         (a_shared_object_that_is_no_pkcs11_module,
                                          "undefined symbol: C_GetFunctionList")])
def test_a_module_that_is_no_pkcs11_library_is_refused_with_the_loaders_reason(tmp_path, make, reason):
    # Another module path: the loaded SoftHSM2 library (and the station's session) is untouched.
    path = make(tmp_path)
    with pytest.raises(TokenNotFound) as info:
        Token(path, "station-ca", "any-pin")
    assert str(info.value) == f"cannot load PKCS#11 module {path}: OS exception while loading {path}: {path}: {reason}"
