"""Where the HSM user PIN comes from: the configured environment variable, else a 0600 file,
else a prompt on the terminal. Never the command line, never a log, never an exception."""
from __future__ import annotations

import getpass
import os
import stat
import sys

from station.config import HsmConfig
from station.errors import ConfigError, EnvironmentProblem


def read_pin_file(path) -> str:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"PIN file {path} does not exist") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"PIN file {path} is readable by others (mode {stat.S_IMODE(st.st_mode):04o}); "
                          f"run: chmod 600 {path}")
    with open(path, encoding="utf-8") as fh:
        pin = fh.read().strip()
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
    caller asks: a terminal prompt, or the operator UI's masked field)."""
    pin = os.environ.get(hsm.pin_env)
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
        pin = getpass.getpass(f"PIN for token {hsm.token_label!r}: ")
        if pin:
            return pin
    raise EnvironmentProblem(f"no HSM PIN: set {hsm.pin_env}, configure [hsm] pin_file, or run on a terminal")
