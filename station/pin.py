"""Where the HSM user PIN comes from: the configured environment variable, else a 0600 file,
else a prompt on the terminal. Never the command line, never a log, never an exception.

Surrounding whitespace is stripped from every source alike: a stray newline in `STATION_PIN`
would otherwise be a wrong-PIN attempt, and real HSMs lock the user PIN after a few of those."""
from __future__ import annotations

import getpass
import os
import stat
import sys

from station.config import HsmConfig
from station.errors import ConfigError, EnvironmentProblem
from station.regular_file import open_regular_file

_PIN_FILE_LIMIT = 4096  # far above any PIN; refuses a wrongly configured log or key file


def read_pin_file(path) -> str:
    """The PIN in `path`: a regular file (never a FIFO, which would block forever), mode 0600,
    UTF-8. ConfigError otherwise; no message ever quotes the file's content."""
    fd, st = open_regular_file(path, "PIN file")
    with os.fdopen(fd, "rb") as fh:
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"PIN file {path} is readable by others (mode {stat.S_IMODE(st.st_mode):04o}); "
                              f"run: chmod 600 {path}")
        if st.st_size > _PIN_FILE_LIMIT:
            raise ConfigError(f"PIN file {path} is {st.st_size} bytes; a PIN file holds one PIN")
        raw = fh.read(_PIN_FILE_LIMIT + 1)
    try:
        pin = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        # The codec's message quotes the offending byte, i.e. a piece of the PIN: never show it.
        raise ConfigError(f"PIN file {path} is not UTF-8 text") from None
    if not pin:
        raise ConfigError(f"PIN file {path} is empty")
    return pin


def write_pin_file(path, pin: str) -> None:
    """Create the file 0600 from the start, so the PIN is never readable by others, even briefly."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(pin + "\n")


def configured_pin(hsm: HsmConfig) -> str | None:
    """The PIN from the variable, else the PIN file; None when neither is configured (the
    caller asks: a terminal prompt, or the operator UI's masked field). Whitespace-stripped
    like the file: a stray newline would be a wrong-PIN attempt counting toward a lockout."""
    pin = os.environ.get(hsm.pin_env, "").strip()
    if pin:
        return pin
    if hsm.pin_file is not None:
        return read_pin_file(hsm.pin_file)
    return None


def obtain_pin(hsm: HsmConfig) -> str:
    pin = configured_pin(hsm)
    if pin:
        return pin
    if sys.stdin.isatty():
        pin = getpass.getpass(f"PIN for token {hsm.token_label!r}: ").strip()
        if pin:
            return pin
    raise EnvironmentProblem(f"no HSM PIN: set {hsm.pin_env}, configure [hsm] pin_file, or run on a terminal")
