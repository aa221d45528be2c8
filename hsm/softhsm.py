"""SoftHSM2, the default token: where its module lives, a private configuration per station,
and token initialisation.

A station never uses the system-wide /etc/softhsm configuration: `station init` writes its own
softhsm2.conf pointing at a token directory inside the station's work directory.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from hsm.errors import HSMError, TokenNotFound

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


def find_module() -> Path:
    for candidate in MODULE_CANDIDATES:
        if Path(candidate).exists():
            return Path(candidate)
    raise TokenNotFound("SoftHSM2 is not installed (no libsofthsm2.so); install it: apt-get install softhsm2")


def write_config(conf_path: Path, token_dir: Path) -> None:
    token_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf_path.write_text(
        "# SoftHSM2 configuration private to this station (written by `station init`).\n"
        f"directories.tokendir = {token_dir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )
    conf_path.chmod(0o600)


def check_config(conf_path: Path) -> None:
    """Raise TokenNotFound naming what is missing; SoftHSM itself says only 'GeneralError'."""
    if not conf_path.is_file():
        raise TokenNotFound(f"SoftHSM2 configuration {conf_path} does not exist (run `station init`?)")
    match = re.search(r"^\s*directories\.tokendir\s*=\s*(.+?)\s*$", conf_path.read_text(), re.MULTILINE)
    if not match:
        raise TokenNotFound(f"SoftHSM2 configuration {conf_path} has no directories.tokendir")
    token_dir = Path(match.group(1))
    if not token_dir.is_dir():
        raise TokenNotFound(f"SoftHSM2 token directory {token_dir} (from {conf_path}) does not exist")


def init_token(conf_path: Path, label: str, so_pin: str, user_pin: str) -> None:
    """Initialise a free slot as token `label` with the given SO and user PINs.

    python-pkcs11 has no C_InitToken, so this drives softhsm2-util. Its PINs are typed into
    its prompt through a pseudo-terminal (it reads the terminal, not a pipe) so that they
    never appear on a command line, where any user could read them in /proc.
    """
    tool = shutil.which("softhsm2-util")
    if tool is None:
        raise TokenNotFound("softhsm2-util not found; install it: apt-get install softhsm2")
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [tool, "--init-token", "--free", "--label", label],
            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=dict(os.environ, SOFTHSM2_CONF=str(conf_path)),
        )
        os.close(slave)
        slave = -1
        os.write(master, f"{so_pin}\n{so_pin}\n{user_pin}\n{user_pin}\n".encode())
        out, _ = proc.communicate(timeout=60)
    finally:
        if slave != -1:
            os.close(slave)
        os.close(master)
    if proc.returncode != 0:
        text = out.decode(errors="replace").replace(so_pin, "***").replace(user_pin, "***")
        last = [line for line in text.splitlines() if line.strip()][-1:] or ["no output"]
        raise HSMError(f"softhsm2-util could not initialise token {label!r}: {last[0].strip()}")
