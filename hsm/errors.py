"""Errors raised by the hsm package. Messages never contain the PIN."""
from __future__ import annotations


class HSMError(Exception):
    """The token could not be used; str(err) says why in operator terms. CLI exit code 3."""

    exit_code = 3


class TokenNotFound(HSMError):
    pass


class PinIncorrect(HSMError):
    pass


class KeyNotFound(HSMError):
    pass


class SigningFailed(HSMError):
    pass


class CAError(HSMError):
    """A CA certificate or chain is inconsistent (wrong key, not a CA, does not verify)."""
