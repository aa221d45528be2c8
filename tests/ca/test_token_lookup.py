"""How the token finds a key (hsm.token.Token._find) on the real SoftHSM2 token: by CKA_ID
first (the station makes every key with ID = label), by label for keys other tools made, never
a guess between two, and the handle is looked up once and then reused (a lookup costs a
PKCS#11 search; issue 10)."""
from __future__ import annotations

import pytest
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from hsm.errors import HSMError, KeyNotFound
from hsm.token import PKCS11_LOCK


def _key_pair(station, *, label: str, key_id: bytes) -> None:
    with PKCS11_LOCK:
        params = station.token._session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
        params.generate_keypair(store=True, label=label, id=key_id,
                                private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False})


def _label_of(handle) -> str:
    with PKCS11_LOCK:
        return handle[Attribute.LABEL]


def test_a_handle_is_looked_up_once_and_reused(station):
    first = station.token._find("issuing-ca", ObjectClass.PRIVATE_KEY)
    assert station.token._find("issuing-ca", ObjectClass.PRIVATE_KEY) is first
    assert station.token._find("issuing-ca", ObjectClass.PUBLIC_KEY) is not first


@pytest.fixture(scope="session")
def id_and_label_clash(station):
    """One key whose CKA_ID is "lookup-x" (label "by-id"), another labelled "lookup-x"."""
    _key_pair(station, label="by-id", key_id=b"lookup-x")
    _key_pair(station, label="lookup-x", key_id=b"something-else")
    return "lookup-x"


def test_the_id_wins_over_another_keys_label(station, id_and_label_clash):
    assert _label_of(station.token._find(id_and_label_clash, ObjectClass.PRIVATE_KEY)) == "by-id"


def test_a_key_made_by_other_tools_is_found_by_its_label(station):
    _key_pair(station, label="vendor-tool-key", key_id=b"\x01\x02")
    assert _label_of(station.token._find("vendor-tool-key", ObjectClass.PRIVATE_KEY)) == "vendor-tool-key"
    assert station.token.has_key("vendor-tool-key")


def test_a_missing_key_is_named(station):
    with pytest.raises(KeyNotFound, match="^no private key 'absent-key' on token 'station-ca'$"):
        station.token._find("absent-key", ObjectClass.PRIVATE_KEY)
    assert not station.token.has_key("absent-key")


def test_two_keys_with_one_label_are_refused_in_full(station):
    for _ in range(2):
        _key_pair(station, label="twin-lookup", key_id=b"twin-lookup")
    with pytest.raises(HSMError) as refused:
        station.token._find("twin-lookup", ObjectClass.PRIVATE_KEY)
    assert str(refused.value) == (
        "2 private keys labelled 'twin-lookup' on token 'station-ca'; expected one: the station cannot tell which "
        "to use (remove or relabel the others with the token's tools)")


def test_the_chain_pem_is_each_certificate_in_order_and_nothing_else(station):
    from cryptography import x509

    pem = station.ca.chain_pem()
    assert x509.load_pem_x509_certificates(pem) == station.ca.chain
    # Nothing between the blocks: other tools split a bundle on the markers.
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----\n") and pem.endswith(b"-----END CERTIFICATE-----\n")
    assert b"-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n" in pem


def test_a_key_of_a_type_the_station_does_not_sign_with_is_named(station):
    # An Ed25519 pair (SoftHSM2 makes them): neither EC (ECDSA) nor RSA, so no signer for it.
    from pkcs11 import Mechanism

    with PKCS11_LOCK:
        params = station.token._session.create_domain_parameters(
            KeyType.EC_EDWARDS, {Attribute.EC_PARAMS: encode_named_curve_parameters("1.3.101.112")}, local=True)
        params.generate_keypair(store=True, label="ed25519-key", id=b"ed25519-key",
                                mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN)
    with pytest.raises(HSMError, match="^key 'ed25519-key' has unsupported type EC_EDWARDS$"):
        station.token.public_key("ed25519-key")
