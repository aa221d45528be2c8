#!/usr/bin/env python3
"""Set up this checkout on a fresh Debian/Ubuntu machine, then run a command in it.

    python3 bootstrap.py station demo --headless    # the main job
    python3 bootstrap.py pytest                     # the whole test suite

Standard library only: this runs before anything is installed. It
  1. installs the Debian packages the station needs (softhsm2, openssl) with apt
     when they are missing and we are root, else says exactly what to install;
  2. creates ./.venv and installs the project with its test extras, again only
     when pyproject.toml changed since the last install;
  3. replaces itself with the command, run inside the virtual environment.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".installed-pyproject.sha256"

# Debian package -> a file that proves it is installed.
DEBIAN_PACKAGES = {
    "softhsm2": ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                 "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"],
    "openssl": ["/usr/bin/openssl"],
    # The batch report test opens the HTML in the distribution's browser through Playwright
    # (`playwright install` cannot download here, and need not).
    "chromium": ["/usr/bin/chromium"],
}


def say(msg: str) -> None:
    print(f"[bootstrap] {msg}", file=sys.stderr, flush=True)


def missing_debian_packages() -> list[str]:
    return [pkg for pkg, files in DEBIAN_PACKAGES.items() if not any(Path(f).exists() for f in files)]


def ensure_debian_packages() -> None:
    missing = missing_debian_packages()
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        say("missing system packages; install them with:")
        say(f"    sudo apt-get install -y {' '.join(missing)}")
        sys.exit(3)
    say(f"installing {' '.join(missing)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def ensure_venv() -> Path:
    py = VENV / "bin" / "python"
    if not py.exists():
        say("creating .venv")
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text().strip() != digest:
        say("installing the project and its test dependencies into .venv")
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "-e", f"{ROOT}[test]"], check=True)
        STAMP.write_text(digest + "\n")
    return py


def main(argv: list[str]) -> None:
    if not argv:
        print(__doc__)
        sys.exit(2)
    try:
        ensure_debian_packages()
        ensure_venv()
    except subprocess.CalledProcessError as exc:
        say(f"set-up failed: `{' '.join(map(str, exc.cmd))}` exited {exc.returncode} (see its output above)")
        sys.exit(3)
    bin_dir = VENV / "bin"
    env = dict(os.environ, VIRTUAL_ENV=str(VENV), PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = argv[0]
    exe = bin_dir / cmd if (bin_dir / cmd).exists() else shutil.which(cmd, path=env["PATH"])
    if exe is None:
        say(f"no such command: {cmd}")
        sys.exit(2)
    os.chdir(ROOT) if cmd == "pytest" else None
    os.execve(str(exe), [cmd, *argv[1:]], env)


if __name__ == "__main__":
    main(sys.argv[1:])
