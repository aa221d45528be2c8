"""The example session of docs/protocol.md section 7, produced by the reference device.

`python -m tests.sim.transcript DIR` prints it (DIR: a scratch flash folder); the doc's block
is this output, and test_protocol_transcript.py checks that the doc and a fresh run agree line
for line (up to keys, hashes, base64 and checksums, which differ on every run)."""
from __future__ import annotations

import base64
import sys
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from station.link.codec import chunk_payload, decode_frame, encode_frame, sha256_hex
from station.sim.device import Device, Identity
from station.sim.store import DeviceStore
from tests.sim.conftest import CA

DEVICE_ID = "3F9A0C51D2E47B68"


def run_session(folder: Path) -> list[str]:
    device = Device(Identity(DEVICE_ID), DeviceStore(folder))
    ca = CA()
    out: list[str] = []
    seq = 0

    def exchange(frame: bytes, lost: bool = False) -> bytes:
        out.append("S> " + frame.decode().rstrip("\n"))
        [answer] = device.feed(frame)
        out.append("D< (lost)" if lost else "D< " + answer.data.decode().rstrip("\n"))
        return answer.data

    def req(verb, *args) -> tuple:
        nonlocal seq
        seq += 1
        return decode_frame(exchange(encode_frame(seq, verb, args))).args

    def upload(kind: str, data: bytes) -> None:
        req("BEGIN", kind, str(len(data)), sha256_hex(data))
        for i, chunk in enumerate(chunk_payload(data)):
            req("PUT", kind, str(i), chunk)
        req("END", kind)

    def download(announce: tuple) -> bytes:
        return b"".join(base64.b64decode(req("GET", announce[0], str(i))[2])
                        for i in range(int(announce[3])))

    req("HELLO", "1")
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Devices GmbH"),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, DEVICE_ID),
        x509.NameAttribute(NameOID.COMMON_NAME, f"sim1-{DEVICE_ID.lower()}")]).public_bytes()
    upload("subject", subject)
    csr = x509.load_der_x509_csr(download(req("KEYGEN", "EC-P256")))
    upload("cert", ca.issue(csr))
    upload("chain", ca.chain_pem)
    req("COMMIT")
    out.append("   (the answer to the next COMMIT is lost on the line; "
               "the station resends the identical frame)")
    seq += 1
    commit = encode_frame(seq, "COMMIT")
    exchange(commit, lost=True)
    exchange(commit)
    download(req("PROVE", bytes(range(32)).hex()))
    req("LOCK", DEVICE_ID[:-1] + "0")
    req("LOCK", DEVICE_ID)
    req("KEYGEN", "EC-P256")
    out.append("   (line noise flips one byte of the next request)")
    seq += 1
    good = encode_frame(seq, "HELLO", ["1"])
    noisy = bytearray(good)
    noisy[len(str(seq)) + 1] = ord("X")
    exchange(bytes(noisy))
    exchange(good)
    return out


if __name__ == "__main__":
    print("\n".join(run_session(Path(sys.argv[1]))))
