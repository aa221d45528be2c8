"""Every simulator fault ends its device in FAIL at the right step, within its timeout, while
the device in the other slot passes; the audit database tells the same story."""
from __future__ import annotations

import io
import sqlite3

import pytest

from station.audit import verify
from station.headless import run_batch
from station.sim import SimulatedLine
from tests.engine.conftest import MODEL, slots_for, write_manifest

# fault -> (step it fails at, a fragment of the reason, the signed certificate's status or
# False when none was signed). A COMMIT whose answer never came (stall, power loss) may have
# been carried out: its certificate is `unknown` until the device's next contact settles it.
FAULTS = {
    "disconnect@HELLO": ("identify", "vanished", False),
    "garbage@HELLO=always": ("identify", "HELLO", False),
    "overlong@HELLO=always": ("identify", "HELLO", False),
    "disconnect@BEGIN": ("keygen", "vanished", False),
    "disconnect@KEYGEN": ("keygen", "vanished", False),
    "stall@KEYGEN": ("keygen", "did not answer KEYGEN", False),
    "corrupt@PUT=always": ("keygen", "PUT", False),
    "bad-csr-signature": ("issue", "CSR signature does not verify", False),
    "wrong-subject": ("issue", "is not the subject the station asked for", False),
    "weak-key": ("issue", "rsa-1024", False),
    "stall@COMMIT": ("commit", "did not answer COMMIT", "unknown"),
    "commit-fail": ("commit", "STORAGE", "undelivered"),
    "wrong-hash": ("commit", "SHA-256", "undelivered"),
    "powerloss@COMMIT": ("commit", "vanished", "unknown"),
    "disconnect@PROVE": ("prove", "vanished", "undelivered"),
    "bad-proof": ("prove", "proof of possession failed", "undelivered"),
}


def _run(engine_config, tmp_path, faults: dict[int, list[str]], count: int = 2):
    out = io.StringIO()
    with SimulatedLine(count, tmp_path / "devices", keygen_ms=20, model=MODEL, faults=faults) as line:
        manifest = write_manifest(tmp_path / "manifest.csv", line)
        summary = run_batch(engine_config, batch_id="WO-F", model=MODEL, operator="op", manifest=manifest,
                            slots=slots_for(line.ports, count), out=out)
        ids = [d.identity.device_id for d in line.devices]
    return summary, ids, out.getvalue()


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_fails_its_device_at_the_right_step_only(engine_config, tmp_path, fault):
    step, fragment, signed = FAULTS[fault]
    summary, (bad, good), printed = _run(engine_config, tmp_path, {0: [fault]})
    assert (summary.passed, summary.failed) == (1, 1), printed
    fail_line = next(line for line in printed.splitlines() if line.startswith("FAIL"))
    assert "slot=S1" in fail_line and f"step={step}" in fail_line and fragment in fail_line, fail_line
    assert any(line.startswith("PASS slot=S2") and good in line for line in printed.splitlines())

    db = sqlite3.connect(engine_config.audit.database)
    assert db.execute("select state from devices where device_id = ?", (good,)).fetchone()[0] == "passed"
    row = db.execute("select state, reason from devices where device_id = ?", (bad,)).fetchone()
    if step != "identify":
        assert row[0] == "failed" and row[1].startswith(f"{step}: ") and fragment in row[1], row
    certs = db.execute("select status from certificates where device_id = ?", (bad,)).fetchall()
    if signed:
        assert certs == [(signed,)], "a signed certificate that did not prove out must not count"
    else:
        assert certs == [], "no certificate may be signed for a device refused before issuance"
    failed_events = db.execute("select data from events where kind = 'device-failed'").fetchall()
    assert len(failed_events) == 1 and f'"step":"{step}"' in failed_events[0][0]
    assert verify(engine_config.audit.database).ok


def test_two_devices_with_the_same_key_only_one_is_certified(engine_config, tmp_path):
    summary, ids, printed = _run(engine_config, tmp_path, {0: ["duplicate-key"], 1: ["duplicate-key"]})
    assert (summary.passed, summary.failed) == (1, 1), printed
    fail_line = next(line for line in printed.splitlines() if line.startswith("FAIL"))
    assert "step=issue" in fail_line and "already certified" in fail_line
    db = sqlite3.connect(engine_config.audit.database)
    assert db.execute("select count(*) from certificates").fetchone()[0] == 1
    refused = db.execute("select count(*) from events where kind = 'certificate-refused' "
                         "or (kind = 'device-failed' and data like '%key-reused%')").fetchone()[0]
    assert refused >= 1
