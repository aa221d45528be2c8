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
    # Device discovery tests (tests/discovery/): umockdev emulates USB serial devices for the
    # real libudev; its typelib and the system's PyGObject drive hotplug from Python; udev
    # brings udevadm and 60-serial.rules for the rules test (run in a private namespace only).
    "umockdev": ["/usr/bin/umockdev-run"],
    "gir1.2-umockdev-1.0": ["/usr/lib/x86_64-linux-gnu/girepository-1.0/UMockdev-1.0.typelib",
                            "/usr/lib/aarch64-linux-gnu/girepository-1.0/UMockdev-1.0.typelib"],
    "python3-gi": ["/usr/lib/python3/dist-packages/gi/__init__.py"],
    "udev": ["/usr/bin/udevadm", "/bin/udevadm"],
    # The batch report test opens the HTML in the distribution's browser through Playwright
    # (`playwright install` cannot download here, and need not).
    "chromium": ["/usr/bin/chromium"],
}
# The system's PyGObject, made importable in .venv (see link_system_gi).
SYSTEM_GI = Path("/usr/lib/python3/dist-packages/gi")


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
    link_system_gi(py)
    return py


def link_system_gi(py: Path) -> None:
    """Let .venv import the system's `gi` (PyGObject), and nothing else of the system's
    packages: the umockdev hotplug tests drive the mock testbed through it.

    `--system-site-packages` would not do: the venv's base is often not the system python
    (pyenv here), and it would also expose every other Debian Python package. Instead a
    directory holding one symlink to the system `gi` is put on the venv's path with a .pth
    file. Its compiled module only loads into the same Python minor version, so the link is
    made only when the system `gi` has a module built for the venv's version."""
    holder = VENV / "system-gi"
    if (holder / "gi").is_symlink() and any(VENV.glob("lib/python3*/site-packages/system-gi.pth")):
        return  # linked on an earlier run
    tag = subprocess.run([str(py), "-c", "import sys; print(f'cpython-{sys.version_info[0]}{sys.version_info[1]}')"],
                         check=True, capture_output=True, text=True).stdout.strip()
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    pth = Path(site) / "system-gi.pth"
    if not any(SYSTEM_GI.glob(f"_gi.{tag}-*.so")):
        if not pth.exists():
            say(f"note: the system PyGObject has no build for {tag}; the umockdev hotplug tests will "
                f"fail until `gi` is importable in .venv (e.g. pip install 'PyGObject<3.51' with "
                f"libgirepository1.0-dev and libcairo2-dev installed)")
        return
    holder.mkdir(exist_ok=True)
    link = holder / "gi"
    if not link.is_symlink():
        link.symlink_to(SYSTEM_GI)
    if not pth.exists():
        pth.write_text(f"{holder}\n")


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
