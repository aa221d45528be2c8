"""The conformance kit: the reference simulator passes every case, through the real `station`
command against `station sim`; each injected fault fails the case that is meant to catch it,
with a reason a firmware engineer can act on; LOCK is only sent when asked for."""
from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from station.conformance import report
from station.conformance.cases import SUITE
from station.conformance.runner import Bench, BoardUntestable, run_cases
from station.drivers.cip import CipDriver
from station.link.errors import DeviceLinkError
from station.sim.pty_server import SimulatedLine
from tests.cli_runner import assert_clean_failure, run_station

SCALE = 0.3


def run_against_sim(tmp_path, *faults: str, include_lock: bool = False, scale: float = SCALE,
                    **sim_options):
    """Results by case name, and the device's state (HELLO, read with the station's own
    driver) after the run, or None if it no longer answers. `sim_options` go to the
    SimulatedLine (mtu=...)."""
    with SimulatedLine(1, tmp_path / "sim", keygen_ms=10, faults={0: list(faults)},
                       **sim_options) as line:
        results = run_cases(Bench(line.ports[0], timeout_scale=scale), SUITE,
                            include_irreversible=include_lock)
        try:
            driver = CipDriver.open(line.ports[0], timeout_scale=scale)
            try:
                state = driver.identify().state
            finally:
                driver.close()
        except DeviceLinkError:
            state = None
    return {r.case: r for r in results}, state


def test_station_conformance_passes_against_station_sim(tmp_path):
    sim = subprocess.Popen([sys.executable, "-m", "station", "sim", "--devices", "1",
                            "--store", str(tmp_path / "sim"), "--keygen-ms", "10"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           cwd=tmp_path)
    try:
        port = sim.stdout.readline().strip()
        assert port.startswith("/dev/"), sim.stderr.read() if sim.poll() is not None else port
        result = run_station("conformance", port, "--json", "--timeout-scale", SCALE, cwd=tmp_path)
    finally:
        sim.send_signal(signal.SIGINT)
        sim.wait(10)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["conformant"] is True and summary["failed"] == 0
    assert {c["case"] for c in summary["cases"]} == {case.name for case in SUITE}
    assert next(c for c in summary["cases"] if c["case"] == "lock")["result"] == "skip"
    # The compact extension's five cases skip on a version-1 device (it is optional).
    assert "CONFORMANT: 14 passed, 0 failed, 6 skipped" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_compact_device_passes_the_extension_cases(tmp_path):
    results, state = run_against_sim(tmp_path, compact=True)
    compact = ("compact-write", "compact-gencsr", "compact-sign", "line-revert", "line-switch")
    assert {name: results[name].outcome for name in compact} == dict.fromkeys(compact, "pass")
    assert all(r.outcome != "fail" for r in results.values())


@pytest.mark.parametrize("fault, case, reason", [
    ("no-switch", "line-switch", "switch to 4000000 not confirmed: the line stayed at 115200"),
])
def test_a_compact_device_that_does_not_honour_it_fails_the_case(tmp_path, fault, case, reason):
    results, _ = run_against_sim(tmp_path, fault, compact=True)
    assert results[case].outcome == "fail" and reason in results[case].reason


def test_port_that_cannot_be_opened_exits_3(tmp_path):
    result = run_station("conformance", tmp_path / "ttyNOPE", cwd=tmp_path)
    assert_clean_failure(result, 3, "cannot open", "ttyNOPE")


def test_lock_is_not_sent_without_include_lock(tmp_path):
    results, state = run_against_sim(tmp_path, compact=True)  # every case runs
    assert all(r.outcome == "pass" for name, r in results.items() if name != "lock")
    assert results["lock"].outcome == "skip"
    assert state == "provisioned"


def test_include_lock_locks_and_passes(tmp_path):
    results, state = run_against_sim(tmp_path, include_lock=True, compact=True)
    assert [r.case for r in results.values() if r.outcome != "pass"] == []
    assert state == "locked"


@pytest.mark.parametrize("fault, case, reason", [
    ("bad-csr-signature", "keygen-csr", "CSR signature does not verify"),
    ("wrong-subject", "keygen-csr", "CSR subject 'CN=not-what-you-asked' is not the one sent"),
    ("weak-key", "keygen-csr", "asked for EC-P256, CSR holds a RSAPublicKey (1024 bits)"),
    ("wrong-hash", "write-commit", "COMMIT reports cert="),
    ("commit-fail", "write-commit", "refused COMMIT: ERR STORAGE"),
    ("bad-proof", "prove", "PROVE signature does not verify"),
    # Every verb is first used by a negative case; a stalled device then fails the rest.
    ("stall@KEYGEN", "get-before-keygen", "did not answer KEYGEN within"),
    ("corrupt@HELLO=always", "hello", "frame checksum mismatch"),
    ("garbage@GET=always", "keygen-csr", "malformed frame"),
    ("overlong@PROVE=always", "prove", "over-long frame"),
    ("disconnect@COMMIT", "commit-before-write", "vanished during COMMIT"),
])
def test_each_fault_fails_its_case_with_a_clear_reason(tmp_path, fault, case, reason):
    # A hung device makes every later case wait out its retries: keep those waits short.
    results, _ = run_against_sim(tmp_path, fault, scale=0.1 if "stall" in fault else SCALE)
    assert results[case].outcome == "fail"
    assert reason in results[case].reason
    assert json.loads(report.as_json("p", list(results.values())))["conformant"] is False


def test_a_device_with_the_smallest_mtu_passes(tmp_path):
    # mtu 128: every frame the kit sends (chunks included) must fit the device's announced
    # receive limit, as the line's frames do.
    results, state = run_against_sim(tmp_path, include_lock=True, mtu=128)
    assert {name: r.reason for name, r in results.items() if r.outcome == "fail"} == {}
    assert state == "locked"


@pytest.mark.parametrize("fault", ["stray@BEGIN=always", "stray@ABORT=always", "stray@PUT=always"])
def test_valid_frames_with_another_seq_are_skipped_as_the_line_skips_them(tmp_path, fault):
    results, _ = run_against_sim(tmp_path, fault)
    assert {name: r.reason for name, r in results.items() if r.outcome == "fail"} == {}


def test_a_locked_board_is_reported_once_as_untestable(tmp_path):
    run_against_sim(tmp_path, include_lock=True)  # leaves the simulated board locked
    with SimulatedLine(1, tmp_path / "sim", keygen_ms=10) as line:
        with pytest.raises(BoardUntestable) as exc:
            run_cases(Bench(line.ports[0], timeout_scale=SCALE), SUITE)
        result = run_station("conformance", line.ports[0], "--json", "--timeout-scale", SCALE,
                             cwd=tmp_path)
    assert "is locked" in str(exc.value) and "cannot test it" in str(exc.value)
    assert_clean_failure(result, 3, "is locked", "cannot test it")
    assert result.stdout == ""  # no table of 14 failures: one line says why


def test_the_table_escapes_what_a_board_sent():
    from station.conformance.report import table
    from station.conformance.runner import CaseResult

    shown = table([CaseResult("hello", "fail", "device answered '\x1b[32mOK\x1b[0m\nPASS'", 0.1)])
    assert "\x1b" not in shown and "\\x1b[32mOK" in shown
    assert len(shown.splitlines()) == 4  # header, rule, one row, summary: no forged line
