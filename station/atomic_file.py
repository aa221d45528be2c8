"""Writing a file so that readers see the old content or the new, never half of it.

Exports, reports, the CRL, the udev rules and the station's own configuration (the learned
slot map) are written this way: to a temporary file in the same directory (so the rename is
on one file system), flushed to disk, then renamed over the target. A failure leaves the
target as it was and no temporary file behind.
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path

from station.errors import EnvironmentProblem


@contextmanager
def atomic_output(path: Path, mode: str = "w", *, permissions: int | None = None):
    """`with atomic_output(PATH) as out: out.write(...)`: PATH is replaced when the block ends
    without an exception. `mode` "w" (text, UTF-8) or "wb"; `permissions` (e.g. the mode of
    the file being replaced) is set before the rename, else a new file's usual mode (0666
    less the umask).

    Raises: EnvironmentProblem (exit 3) naming PATH when it cannot be written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # O_EXCL: never another writer's file; 0o666 lets the umask decide, as open() does.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        text = {"newline": "", "encoding": "utf-8"} if "b" not in mode else {}
        with os.fdopen(fd, mode, **text) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        if permissions is not None:
            os.chmod(tmp, permissions)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise EnvironmentProblem(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
