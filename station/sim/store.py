"""The simulated device's flash: one folder per device, named by its device id.

    key.pem          committed device private key (PKCS#8 PEM, unencrypted)
    key.pending.pem  key made by the last KEYGEN, until a COMMIT adopts it
    cert.pem         device certificate (PEM of the DER the station wrote)
    chain.pem        issuing CA chain (PEM bundle, as written)
    anchors.pem      server trust anchors (PEM bundle, only if written)
    state.json       the commit record: state and the SHA-256 of every committed file

COMMIT is a small journal, so that after a crash at any point the device holds the complete
old set or the complete new set (docs/protocol.md, COMMIT): new files are written as
`*.next` and fsynced; replacing state.json is the commit point; then the `*.next` files are
renamed into place. At load a file counts only if its hash is the one state.json records
(a `*.next` with the recorded hash is rolled forward); anything else is a torn write and
the certificate counts as absent.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from pathlib import Path

from station.link.codec import DeviceState

OBJECT_FILES = {"cert": "cert.pem", "chain": "chain.pem", "anchors": "anchors.pem"}
KEY_FILE = "key.pem"
PENDING_KEY_FILE = "key.pending.pem"
RECORD_FILE = "state.json"


class PowerLoss(Exception):
    """Raised by a commit told to lose power half-way (the powerloss fault)."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file + fsync + os.replace + directory fsync: old or new content, never half."""
    tmp = path.with_name(path.name + ".tmp")
    _write_file(tmp, data)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class DeviceStore:
    """Persistent state of one simulated device. Not thread-safe: one device owns it."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state = DeviceState.BLANK
        self.key_pem: bytes | None = None
        self.pending_key_pem: bytes | None = None
        self.objects: dict[str, bytes] = {}  # kind -> object bytes (cert as DER)
        self._record: dict[str, str] = {}
        self.load()

    # -- reading --------------------------------------------------------------------------
    def load(self) -> None:
        """(Re)read the folder, as a device does at boot."""
        self.state, self.key_pem, self.objects, self._record = DeviceState.BLANK, None, {}, {}
        pending = self.folder / PENDING_KEY_FILE
        self.pending_key_pem = pending.read_bytes() if pending.exists() else None
        record_path = self.folder / RECORD_FILE
        if not record_path.exists():
            return
        try:
            record = json.loads(record_path.read_text())
            files, state = dict(record["files"]), DeviceState(record["state"])
        except (ValueError, KeyError, TypeError):
            return  # an unreadable record commits nothing
        contents = {}
        for name, sha in files.items():
            data = self._recorded_content(name, sha)
            if data is None:
                return  # torn write: the whole set counts as absent
            contents[name] = data
        if KEY_FILE not in contents or "cert.pem" not in contents:
            return
        self.state, self._record, self.key_pem = state, files, contents[KEY_FILE]
        for kind, name in OBJECT_FILES.items():
            if name in contents:
                self.objects[kind] = contents[name]
        # Decoded by hand, not by x509: a flash-corrupted certificate must still read back.
        self.objects["cert"] = _pem_der(contents["cert.pem"])

    def _recorded_content(self, name: str, sha: str) -> bytes | None:
        path, nxt = self.folder / name, self.folder / (name + ".next")
        if path.exists() and _sha(path.read_bytes()) == sha:
            return path.read_bytes()
        if nxt.exists() and _sha(nxt.read_bytes()) == sha:
            os.replace(nxt, path)  # roll the interrupted commit forward
            _fsync_dir(self.folder)
            return path.read_bytes()
        return None

    def object_hashes(self) -> dict[str, str]:
        """SHA-256 of each committed object as stored (cert: of its DER)."""
        return {kind: _sha(data) for kind, data in self.objects.items()}

    # -- writing --------------------------------------------------------------------------
    def save_pending_key(self, pem: bytes) -> None:
        write_atomic(self.folder / PENDING_KEY_FILE, pem)
        self.pending_key_pem = pem

    def commit(self, objects: dict[str, bytes], key_pem: bytes, *, flip_cert_bit: bool = False,
               power_fails: bool = False) -> dict[str, str]:
        """Store cert (DER), chain, optional anchors and the key as one set; returns the hashes
        read back from flash. `flip_cert_bit` and `power_fails` are the wrong-hash and
        powerloss faults."""
        cert_der = bytearray(objects["cert"])
        if flip_cert_bit:
            cert_der[len(cert_der) // 2] ^= 0x10
        files = {KEY_FILE: key_pem, "cert.pem": _pem("CERTIFICATE", bytes(cert_der))}
        for kind in ("chain", "anchors"):
            if kind in objects:
                files[OBJECT_FILES[kind]] = objects[kind]
        for name, data in files.items():
            if power_fails and name == "cert.pem":
                _write_file(self.folder / (name + ".next"), data[: len(data) // 2])
                raise PowerLoss("power lost while writing cert.pem")
            _write_file(self.folder / (name + ".next"), data)
        _fsync_dir(self.folder)
        state = DeviceState.LOCKED if self.state is DeviceState.LOCKED else DeviceState.PROVISIONED
        record = {name: _sha((self.folder / (name + ".next")).read_bytes()) for name in files}
        self._write_record(state, record)  # the commit point
        for name in files:
            os.replace(self.folder / (name + ".next"), self.folder / name)
        for name in OBJECT_FILES.values():
            if name not in files and (self.folder / name).exists():
                os.unlink(self.folder / name)
        if (self.folder / PENDING_KEY_FILE).exists():
            os.unlink(self.folder / PENDING_KEY_FILE)
        _fsync_dir(self.folder)
        self.load()
        return self.object_hashes()

    def lock(self) -> None:
        self._write_record(DeviceState.LOCKED, self._record)
        self.state = DeviceState.LOCKED

    def _write_record(self, state: DeviceState, files: dict[str, str]) -> None:
        write_atomic(self.folder / RECORD_FILE,
                     json.dumps({"state": state.value, "files": files}, indent=2).encode())


def _pem(label: str, der: bytes) -> bytes:
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)).encode()


def _pem_der(pem: bytes) -> bytes:
    lines = [ln for ln in pem.decode("ascii", "replace").splitlines() if not ln.startswith("-----")]
    try:
        return base64.b64decode("".join(lines), validate=True)
    except binascii.Error:
        return b""
