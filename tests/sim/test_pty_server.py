"""The simulator on real pseudo-terminals, opened with pyserial as the station opens a USB
serial port; and `station sim` as a subprocess."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import serial

from station.link.codec import ErrorCode, FrameError, FrameErrorReason, decode_frame, encode_frame
from station.sim import SimulatedLine


def _ask(port: serial.Serial, frame: bytes) -> bytes:
    port.write(frame)
    return port.readline()


def test_hello_over_a_real_pty(tmp_path):
    with SimulatedLine(2, tmp_path, keygen_ms=0, seed="s1") as line:
        assert len(line.ports) == 2 and all(os.path.exists(p) for p in line.ports)
        with serial.Serial(line.ports[1], 115200, timeout=2) as port:
            answer = decode_frame(_ask(port, b"\n" + encode_frame(1, "HELLO", ["1"])))
        assert answer.is_ok
        assert answer.fields()["id"] == line.devices[1].device_id
        assert line.devices[0].device_id != line.devices[1].device_id


def test_ids_are_stable_for_a_store_and_differ_between_stores(tmp_path):
    with SimulatedLine(3, tmp_path / "a", keygen_ms=0) as first:
        ids = [d.device_id for d in first.devices]
    with SimulatedLine(3, tmp_path / "a", keygen_ms=0) as again:
        assert [d.device_id for d in again.devices] == ids
    with SimulatedLine(3, tmp_path / "b", keygen_ms=0) as other:
        assert not set(ids) & {d.device_id for d in other.devices}
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
    assert sorted(p.name for p in (tmp_path / "a").iterdir() if p.is_dir()) == sorted(ids)


def test_sixteen_devices_answer_at_once(tmp_path):
    with SimulatedLine(16, tmp_path, keygen_ms=0, seed="many") as line:
        ports = [serial.Serial(p, timeout=3) for p in line.ports]
        try:
            for port in ports:
                port.write(encode_frame(7, "HELLO", ["1"]))
            ids = [decode_frame(port.readline()).fields()["id"] for port in ports]
        finally:
            for port in ports:
                port.close()
        assert ids == [d.device_id for d in line.devices]


def test_stall_is_silence_on_the_line(tmp_path):
    with SimulatedLine(1, tmp_path, keygen_ms=0, faults={0: ["stall@HELLO"]}) as line:
        with serial.Serial(line.ports[0], timeout=0.3) as port:
            assert _ask(port, encode_frame(1, "HELLO", ["1"])) == b""


def test_disconnect_makes_the_port_vanish(tmp_path):
    with SimulatedLine(1, tmp_path, keygen_ms=0, faults={0: ["disconnect@HELLO"]}) as line:
        with serial.Serial(line.ports[0], timeout=2) as port:
            port.write(encode_frame(1, "HELLO", ["1"]))
            with pytest.raises(serial.SerialException):
                port.read(1)


def test_corrupt_answer_on_the_line_then_a_clean_resend(tmp_path):
    with SimulatedLine(1, tmp_path, keygen_ms=0, faults={0: ["corrupt@HELLO"]}) as line:
        with serial.Serial(line.ports[0], timeout=2) as port:
            frame = encode_frame(4, "HELLO", ["1"])
            with pytest.raises(FrameError) as exc:
                decode_frame(_ask(port, frame))
            assert exc.value.reason is FrameErrorReason.BAD_CHECKSUM
            assert decode_frame(_ask(port, frame)).is_ok


def test_restart_keeps_flash_and_comes_back_on_a_new_port(tmp_path):
    with SimulatedLine(1, tmp_path, keygen_ms=0, faults={0: ["disconnect@HELLO"]}) as line:
        old = line.ports[0]
        with serial.Serial(old, timeout=2) as port:
            port.write(encode_frame(1, "HELLO", ["1"]))
            with pytest.raises(serial.SerialException):
                port.read(1)
        new = line.restart(0)
        with serial.Serial(new, timeout=2) as port:
            assert decode_frame(_ask(port, encode_frame(1, "HELLO", ["1"]))).is_ok


def test_bad_construction_is_refused(tmp_path):
    with pytest.raises(ValueError, match="numbered 0..1"):
        SimulatedLine(2, tmp_path, faults={2: ["stall@HELLO"]})


def _station(*args):
    return subprocess.Popen([sys.executable, "-m", "station", "sim", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_station_sim_prints_ports_and_stops_cleanly_on_sigterm(tmp_path):
    proc = _station("--devices", "3", "--store", str(tmp_path), "--keygen-ms", "0",
                    "--fault", "2:stall@COMMIT")
    try:
        paths = [proc.stdout.readline().strip() for _ in range(3)]
        assert all(p.startswith("/dev/pts/") for p in paths)
        with serial.Serial(paths[0], timeout=2) as port:
            assert decode_frame(_ask(port, encode_frame(1, "HELLO", ["1"]))).is_ok
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_station_sim_mtu_is_announced_and_enforced(tmp_path):
    proc = _station("--store", str(tmp_path), "--mtu", "128")
    try:
        path = proc.stdout.readline().strip()
        with serial.Serial(path, timeout=2) as port:
            assert decode_frame(_ask(port, encode_frame(1, "HELLO", ["1"]))).fields()["mtu"] == "128"
            too_long = encode_frame(2, "ABORT", ["x" * (129 - 14)])
            assert len(too_long) == 129
            assert decode_frame(_ask(port, too_long)).error_code is ErrorCode.TOOLONG
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)


@pytest.mark.parametrize("args, fragment", [
    (["--fault", "5:stall@COMMIT"], "numbered 0..1"),
    (["--fault", "stall@COMMIT"], "INDEX:SPEC"),
    (["--fault", "0:explode"], "unknown fault"),
    (["--mtu", "64"], "128<=x<=512"),
])
def test_station_sim_explains_bad_faults(tmp_path, args, fragment):
    proc = _station("--devices", "2", "--store", str(tmp_path), *args)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "Traceback" not in err and fragment in err and out == ""


def test_devices_whose_descriptors_are_above_fd_setsize_still_answer(tmp_path):
    # A line of a few hundred devices has descriptors above 1024, where select() fails.
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        pytest.skip(f"needs at least 1200 open files (limit {soft})")
    from station.drivers.cip import CipDriver

    filler = []
    while not filler or filler[-1] < 1100:
        filler.append(os.open(os.devnull, os.O_RDONLY))
    try:
        line = SimulatedLine(1, tmp_path, keygen_ms=0).start()
    finally:
        # The station side (pyserial uses select() too) gets low descriptors again.
        for fd in filler:
            os.close(fd)
    try:
        driver = CipDriver.open(line.ports[0])
        try:
            assert driver.identify().device_id == line.devices[0].identity.device_id
        finally:
            driver.close()
    finally:
        line.stop()
