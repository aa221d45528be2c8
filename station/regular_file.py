"""Reading a file an operator names (the PIN file, a manifest): regular files only.

A path that names a FIFO would block `open()` until some writer appears, i.e. forever on the
line; a directory or a device node is never what the operator meant. The file is opened with
O_NONBLOCK (which returns at once even for a FIFO) and judged by fstat on that same
descriptor, so nothing can be swapped in between the check and the read.
"""
from __future__ import annotations

import os
import stat

from station.errors import ConfigError


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def open_regular_file(path, what: str) -> tuple[int, os.stat_result]:
    """An O_RDONLY descriptor for `path` and its fstat; ConfigError (exit 2) naming `what` and
    the path if it is missing, unreadable or not a regular file. The caller closes the fd."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot open ({exc.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ConfigError(f"{what} {path} is {_kind(st.st_mode)}; expected a regular file")
    return fd, st


def read_regular_file(path, what: str) -> bytes:
    """The bytes of `path`, a regular file (ConfigError otherwise, naming `what`)."""
    fd, _ = open_regular_file(path, what)
    with os.fdopen(fd, "rb") as fh:
        try:
            return fh.read()
        except OSError as exc:
            raise ConfigError(f"{what} {path}: cannot read ({exc.strerror})") from None
