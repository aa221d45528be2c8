"""The generated udev rules: their text, and what real udev does with them.

`udevadm test` is not a dry run: it creates symlinks and database entries in the host's /dev
and /run. It is run here only inside a private mount namespace (`unshare -m`) whose /dev and
/run are fresh tmpfs mounts and whose /etc/udev/rules.d is a bind mount of a temporary
directory holding nothing but the generated file, against umockdev's emulated devices."""
from __future__ import annotations

import grp
import shlex
import subprocess

import pytest

from station.config import DiscoveryConfig
from station.discovery.rules import render_rules
from tests.discovery.conftest import fixture_file, require

SLOT1 = "pci-0000:00:14.0-usb-0:1:1.0"
SLOT2 = "pci-0000:00:14.0-usb-0:2:1.0"
CONFIG = DiscoveryConfig(allow=("1915:521f", "303a:1001", "10c4:ea60"), serial_patterns=("E1*", "0001"),
                         slots={"slot1": SLOT1, "slot2": SLOT2}, group="dialout")
DEVICES = {  # fixture -> its tty's sysfs path
    "usb-nordic-slot1": "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/tty/ttyACM0",
    "usb-espressif-slot2": "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/tty/ttyACM1",
    "usb-ftdi-console": "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0/ttyUSB0/tty/ttyUSB0",
    "usb-cp210x-unmapped": "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-5/1-5:1.0/ttyUSB2/tty/ttyUSB2",
}


def test_rules_text_follows_the_configuration():
    text = render_rules(CONFIG, source="line.toml")
    assert "from line.toml" in text
    assert 'ENV{ID_VENDOR_ID}=="303a", ENV{ID_MODEL_ID}=="1001", ENV{CERT_STATION}="1"' in text
    assert 'ENV{ID_SERIAL_SHORT}!="E1*|0001"' in text
    assert f'ENV{{ID_PATH}}=="{SLOT2}", SYMLINK+="cert-station/slot2"' in text
    assert 'ENV{ID_VENDOR_ID}=="1915", ENV{CERT_STATION}="1"' in render_rules(DiscoveryConfig(allow=("1915:*",)))


def _private_namespace_works() -> str | None:
    if require("unshare") and subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        return "`unshare -m` is not permitted here (needs root or user namespaces)"
    return None


@pytest.fixture
def udev_sandbox(tmp_path):
    """Run shell commands with the generated rules in a private namespace; returns a runner."""
    reason = _private_namespace_works()
    if reason:
        pytest.skip(reason)  # never fall back to the host's /dev
    require("udevadm")
    rules = tmp_path / "rules.d"
    rules.mkdir()
    (rules / "70-cert-station.rules").write_text(render_rules(CONFIG))
    setup = " && ".join([
        "mount --make-rprivate /",
        "mount -t tmpfs tmpfs /dev", "mount -t tmpfs tmpfs /run",
        "mknod -m 666 /dev/null c 1 3", "mknod -m 666 /dev/urandom c 1 9",
        # umockdev's tty nodes are ptys: a private devpts instance for them.
        "mkdir /dev/pts", "mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts", "ln -s pts/ptmx /dev/ptmx",
        f"mount --bind {shlex.quote(str(rules))} /etc/udev/rules.d",
    ])

    def run(script: str) -> str:
        result = subprocess.run(["unshare", "-m", "sh", "-c", f"{setup} && {script}"], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout
    return run


def _properties(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line and line[:1].isupper()
                and " " not in line.split("=", 1)[0])


def test_udevadm_applies_the_rules_to_emulated_devices(udev_sandbox, tmp_path):
    umockdev = [require("umockdev-run"), "-d", str(fixture_file("usb-controller"))]
    for name in DEVICES:
        umockdev += ["-d", str(fixture_file(name))]
    steps = [f"{shlex.join(umockdev)} -- udevadm test {path} > {tmp_path / name}.out 2>&1"
             for name, path in DEVICES.items()]
    listing = udev_sandbox(" && ".join(steps) + " && find /dev/cert-station -type l -printf '%P -> %l\\n' | sort")
    assert listing.splitlines() == [
        "by-serial/0001 -> ../../ttyUSB2", "by-serial/E1A2B3C4D5E6 -> ../../ttyACM0",
        "slot1 -> ../ttyACM0"]

    out = {name: (tmp_path / f"{name}.out").read_text() for name in DEVICES}
    nordic = _properties(out["usb-nordic-slot1"])
    assert nordic["ID_MM_DEVICE_IGNORE"] == "1"
    assert "cert-station" in nordic["TAGS"].split(":")
    assert "/dev/cert-station/slot1" in nordic["DEVLINKS"].split()
    gid = grp.getgrnam("dialout").gr_gid
    assert f"70-cert-station.rules:" in out["usb-nordic-slot1"]
    assert any(line.endswith(f"GROUP {gid}") and "70-cert-station.rules" in line
               for line in out["usb-nordic-slot1"].splitlines())
    assert any(line.endswith("MODE 0660") and "70-cert-station.rules" in line
               for line in out["usb-nordic-slot1"].splitlines())
    # Allowlisted ids but a serial that matches no pattern; and an id not allowlisted at all.
    for name in ("usb-espressif-slot2", "usb-ftdi-console"):
        props = _properties(out[name])
        assert "ID_MM_DEVICE_IGNORE" not in props and "cert-station" not in props["TAGS"], name
    # Allowlisted, but its port is no slot: kept from ModemManager, no slot link.
    cp210x = _properties(out["usb-cp210x-unmapped"])
    assert cp210x["ID_MM_DEVICE_IGNORE"] == "1" and "slot" not in cp210x["DEVLINKS"]


def test_the_host_dev_is_untouched(udev_sandbox):
    udev_sandbox("true")
    assert not subprocess.run(["test", "-e", "/dev/cert-station"]).returncode == 0


def test_udevadm_verify_accepts_the_rules(tmp_path):
    udevadm = require("udevadm")
    if subprocess.run([udevadm, "verify", "--help"], capture_output=True).returncode != 0:
        pytest.skip("this systemd has no `udevadm verify` (it arrived in systemd 254)")
    path = tmp_path / "70-cert-station.rules"
    path.write_text(render_rules(CONFIG))
    result = subprocess.run([udevadm, "verify", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
