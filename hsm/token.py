"""One logged-in PKCS#11 token, safe to share between threads.

Quirks of this stack that shape the code (verified on SoftHSM2 2.6.1 + python-pkcs11 0.10.1):

* python-pkcs11 calls C_Initialize without locking flags, so SoftHSM2 turns its own locks off,
  and python-pkcs11 releases the GIL during every call: two threads inside the token at once
  segfault or corrupt the heap. Every PKCS#11 call in this module therefore holds
  `PKCS11_LOCK`, one lock for the whole process. Separate processes on one token are safe.
* Closing the session that logged in logs out every session of the process, so we log in
  once on a long-lived session and keep it until `close()`.
* `get_key(label=...)` without an object class matches both halves of a key pair. Keys are
  looked up by CKA_ID plus class (falling back to label plus class for keys made by other
  tools) and the handles are cached; a lookup costs about 0.3 ms.
* A wrong PIN raises PinIncorrect. SoftHSM never locks the token but real HSMs do, so a
  wrong PIN is reported once and never retried.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11
from cryptography.hazmat.primitives import serialization
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, TokenFlag
from pkcs11 import exceptions as p11
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
from pkcs11.util.rsa import encode_rsa_public_key

from hsm import softhsm
from hsm.errors import HSMError, KeyNotFound, PinIncorrect, SigningFailed, TokenNotFound

# The one lock around every PKCS#11 call in this process (see the module docstring).
PKCS11_LOCK = threading.RLock()

# The SoftHSM2 configuration the loaded library was initialised with; SoftHSM reads
# SOFTHSM2_CONF only in C_Initialize.
_initialised_conf: dict[str, str | None] = {}


@dataclass(frozen=True)
class KeySpec:
    """A key type the CA supports: EC P-256 (default), EC P-384, RSA-3072."""

    algorithm: str  # "ec" or "rsa"
    curve: str | None = None  # "secp256r1" / "secp384r1"
    bits: int | None = None

    @classmethod
    def parse(cls, text: str) -> "KeySpec":
        specs = {
            "ec-p256": cls("ec", curve="secp256r1"),
            "ec-p384": cls("ec", curve="secp384r1"),
            "rsa-3072": cls("rsa", bits=3072),
            "rsa-2048": cls("rsa", bits=2048),
        }
        try:
            return specs[text.lower()]
        except KeyError:
            raise ValueError(f"unknown key type {text!r} (expected one of {', '.join(specs)})") from None


def _load_library(module_path: Path, softhsm_conf: Path | None):
    if not module_path.exists():
        raise TokenNotFound(f"PKCS#11 module {module_path} does not exist")
    if softhsm_conf is not None:
        # SoftHSM fails with an empty GeneralError on a missing config or token directory,
        # so check both first and say which one is missing.
        softhsm.check_config(softhsm_conf)
        wanted = str(softhsm_conf)
    else:
        wanted = os.environ.get("SOFTHSM2_CONF")
    key = str(module_path)
    try:
        if softhsm_conf is not None:
            os.environ["SOFTHSM2_CONF"] = wanted
        lib = pkcs11.lib(key)
        if key in _initialised_conf and _initialised_conf[key] != wanted:
            # Another station configuration was used earlier in this process (tests,
            # `station init` followed by use): re-read the configuration.
            lib.reinitialize()
            # C_Finalize ended every session of the process on this module.
            for stale in [k for k in _logins if k[0] == key]:
                del _logins[stale]
        _initialised_conf[key] = wanted
        return lib
    except p11.PKCS11Error as exc:
        # python-pkcs11 reports a dlopen failure as a PKCS11Error carrying the loader's reason
        # ("file too short", "undefined symbol: C_GetFunctionList"); a failing C_Initialize
        # carries no text, only its class.
        raise TokenNotFound(f"cannot load PKCS#11 module {module_path}: {str(exc) or type(exc).__name__}") from None
    except OSError as exc:
        raise TokenNotFound(f"cannot load PKCS#11 module {module_path}: {exc.strerror or exc}") from None


# The uses a private key can be allowed, by PKCS#11 attribute. A signing key needs "sign" only.
SIGN_CAPABILITIES = {
    "sign": Attribute.SIGN, "sign_recover": Attribute.SIGN_RECOVER, "derive": Attribute.DERIVE,
    "decrypt": Attribute.DECRYPT, "unwrap": Attribute.UNWRAP,
}


def _flag(handle, attr: Attribute) -> bool:
    try:
        return bool(handle[attr])
    except (p11.AttributeTypeInvalid, p11.AttributeSensitive):
        # A token that does not know the attribute cannot grant that use.
        return False


class _Login:
    def __init__(self, session, pin_digest: bytes, salt: bytes):
        self.session = session
        self.pin_digest = pin_digest
        self.salt = salt
        self.users = 1


# One logged-in session per token per process. A second C_Login in the same process answers
# USER_ALREADY_LOGGED_IN without checking the PIN, so a second opener is checked against a
# salted digest of the PIN that logged in, and shares that session.
_logins: dict[tuple, _Login] = {}


def _pin_digest(pin: str, salt: bytes) -> bytes:
    return hashlib.scrypt(pin.encode(), salt=salt, n=2**12, r=8, p=1)


def _login(key: tuple, token, token_label: str, pin: str):
    existing = _logins.get(key)
    if existing is not None:
        if not hmac.compare_digest(existing.pin_digest, _pin_digest(pin, existing.salt)):
            raise PinIncorrect(f"wrong PIN for token {token_label!r}")
        existing.users += 1
        return existing.session
    try:
        session = token.open(rw=True, user_pin=pin)
    except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange):
        # Never retried: a real HSM locks the token after a few wrong PINs.
        raise PinIncorrect(f"wrong PIN for token {token_label!r}") from None
    except p11.PinLocked:
        raise PinIncorrect(f"token {token_label!r} is locked after too many wrong PINs") from None
    except p11.PKCS11Error as exc:
        raise HSMError(f"cannot log in to token {token_label!r}: {type(exc).__name__}") from None
    salt = os.urandom(16)
    _logins[key] = _Login(session, _pin_digest(pin, salt), salt)
    return session


def _logout(key: tuple) -> None:
    login = _logins.get(key)
    if login is None:
        return
    login.users -= 1
    if login.users == 0:
        del _logins[key]
        try:
            login.session.close()  # logs out the whole process on this token
        except p11.PKCS11Error:
            pass


class Token:
    """A logged-in user session on one token. Thread-safe; close() logs out."""

    def __init__(self, module_path: Path | str, token_label: str, pin: str, *,
                 softhsm_conf: Path | str | None = None):
        self.module_path = Path(module_path)
        self.token_label = token_label
        self._handles: dict[tuple[str, ObjectClass], Any] = {}
        with PKCS11_LOCK:
            lib = _load_library(self.module_path, Path(softhsm_conf) if softhsm_conf else None)
            try:
                token = lib.get_token(token_label=token_label)
            except p11.NoSuchToken:
                # SoftHSM2 always offers one free slot with an uninitialised token (label ""):
                # naming it would read as "tokens present: ''" on a fresh directory. Sorted: the
                # slot order follows token serials, not the order they were made.
                labels = sorted(t.label for t in lib.get_tokens() if t.flags & TokenFlag.TOKEN_INITIALIZED)
                present = ", ".join(repr(label) for label in labels) or "none"
                raise TokenNotFound(
                    f"no token labelled {token_label!r} in {self.module_path.name} (tokens present: {present})"
                ) from None
            except p11.PKCS11Error as exc:
                raise TokenNotFound(f"cannot list tokens in {self.module_path.name}: {type(exc).__name__}") from None
            self._login_key = (str(self.module_path), token_label, _initialised_conf.get(str(self.module_path)))
            self._session = _login(self._login_key, token, token_label, pin)

    # -- keys ---------------------------------------------------------------------------

    def _find(self, label: str, object_class: ObjectClass):
        cached = self._handles.get((label, object_class))
        if cached is not None:
            return cached
        with PKCS11_LOCK:
            found = list(self._session.get_objects({Attribute.ID: label.encode(), Attribute.CLASS: object_class}))
            if not found:
                found = list(self._session.get_objects({Attribute.LABEL: label, Attribute.CLASS: object_class}))
        what = object_class.name.lower().replace('_', ' ')
        if not found:
            raise KeyNotFound(f"no {what} {label!r} on token {self.token_label!r}")
        if len(found) > 1:
            # Signing with whichever comes first could sign with a key no certificate names.
            raise HSMError(f"{len(found)} {what}s labelled {label!r} on token {self.token_label!r}; expected one: "
                           "the station cannot tell which to use (remove or relabel the others with the token's tools)")
        self._handles[(label, object_class)] = found[0]
        return found[0]

    def has_key(self, label: str) -> bool:
        try:
            self._find(label, ObjectClass.PRIVATE_KEY)
            return True
        except KeyNotFound:
            return False

    def generate_key(self, label: str, spec: KeySpec):
        """Create a sign-only key pair inside the token: private half sensitive, never
        extractable, and allowed to sign and nothing else (SIGN_CAPABILITIES).

        Returns the public key as a cryptography object."""
        # SoftHSM2 (like most tokens) defaults CKA_DERIVE and CKA_SIGN_RECOVER to true on EC
        # and RSA private keys: an ECDH derive with the issuing CA key worked. Every other use
        # is switched off explicitly.
        private_template = {
            Attribute.TOKEN: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.PRIVATE: True,
            **{attr: name == "sign" for name, attr in SIGN_CAPABILITIES.items()},
        }
        public_template = {Attribute.TOKEN: True, Attribute.VERIFY: True, Attribute.VERIFY_RECOVER: False,
                           Attribute.ENCRYPT: False, Attribute.WRAP: False, Attribute.DERIVE: False}
        if self.has_key(label):
            raise HSMError(f"token {self.token_label!r} already holds a key {label!r}; refusing to overwrite it")
        with PKCS11_LOCK:
            try:
                if spec.algorithm == "ec":
                    params = self._session.create_domain_parameters(
                        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(spec.curve)}, local=True)
                    params.generate_keypair(store=True, label=label, id=label.encode(),
                                            public_template=public_template, private_template=private_template)
                else:
                    self._session.generate_keypair(KeyType.RSA, spec.bits, store=True, label=label, id=label.encode(),
                                                   public_template=public_template, private_template=private_template)
            except p11.PKCS11Error as exc:
                raise HSMError(f"token {self.token_label!r} could not generate key {label!r}: {type(exc).__name__}") from None
        return self.public_key(label)

    def public_key(self, label: str):
        """The public half of key `label`, as a cryptography public key."""
        handle = self._find(label, ObjectClass.PUBLIC_KEY)
        with PKCS11_LOCK:
            if handle.key_type == KeyType.EC:
                der = encode_ec_public_key(handle)
            elif handle.key_type == KeyType.RSA:
                der = encode_rsa_public_key(handle)
            else:
                raise HSMError(f"key {label!r} has unsupported type {handle.key_type.name}")
        # For RSA python-pkcs11 gives PKCS#1 RSAPublicKey DER, which cryptography's loader
        # also accepts.
        return serialization.load_der_public_key(der)

    def private_key_attributes(self, label: str) -> dict[str, bool]:
        """The protection flags of a private key, as the token reports them."""
        handle = self._find(label, ObjectClass.PRIVATE_KEY)
        names = {
            "token": Attribute.TOKEN, "sensitive": Attribute.SENSITIVE, "extractable": Attribute.EXTRACTABLE,
            "always_sensitive": Attribute.ALWAYS_SENSITIVE, "never_extractable": Attribute.NEVER_EXTRACTABLE,
        }
        with PKCS11_LOCK:
            return {name: bool(handle[attr]) for name, attr in names.items()}

    def private_key_capabilities(self, label: str) -> dict[str, bool]:
        """What the token lets the private key do (SIGN_CAPABILITIES), as the token reports it.
        A CA or audit key should allow "sign" only."""
        handle = self._find(label, ObjectClass.PRIVATE_KEY)
        with PKCS11_LOCK:
            return {name: _flag(handle, attr) for name, attr in SIGN_CAPABILITIES.items()}

    def read_private_value(self, label: str) -> bytes:
        """Try to read the private key's secret value. On a correctly set-up CA key the token
        refuses; exists so tests and `ca show` can prove that."""
        handle = self._find(label, ObjectClass.PRIVATE_KEY)
        with PKCS11_LOCK:  # key_type is read from the token too
            attr = Attribute.VALUE if handle.key_type == KeyType.EC else Attribute.PRIVATE_EXPONENT
            try:
                return handle[attr]
            except (p11.AttributeSensitive, p11.AttributeTypeInvalid) as exc:
                raise HSMError(f"token refused to reveal key {label!r} ({type(exc).__name__})") from None

    def sign_raw(self, label: str, mechanism: Mechanism, data: bytes) -> bytes:
        handle = self._find(label, ObjectClass.PRIVATE_KEY)
        with PKCS11_LOCK:
            try:
                return handle.sign(data, mechanism=mechanism)
            except p11.PKCS11Error as exc:
                raise SigningFailed(f"token could not sign with key {label!r}: {type(exc).__name__}") from None

    def close(self) -> None:
        with PKCS11_LOCK:
            session, self._session = getattr(self, "_session", None), None
            self._handles.clear()
            if session is not None:
                _logout(self._login_key)

    def __enter__(self) -> "Token":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["Token", "KeySpec", "PKCS11_LOCK", "SIGN_CAPABILITIES"]
