"""The compact extension's baud switch through the whole engine: a device that switches is
provisioned at the fast rate, one that never comes up there is provisioned at the line's
rate, and the audit says which happened to each (docs/protocol.md 9.4)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import sqlite3

from station.headless import run_batch
from station.sim import SimulatedLine
from tests.engine.conftest import MODEL, slots_for, write_manifest


def test_the_audit_records_each_device_s_line_rate_switched_or_fallen_back(engine_config,
                                                                           tmp_path):
    config = dataclasses.replace(engine_config,
                                 line=dataclasses.replace(engine_config.line, fast_baud=921600))
    with SimulatedLine(2, tmp_path / "devices", keygen_ms=20, model=MODEL, compact=True,
                       faults={1: ["no-switch"]}) as line:
        manifest = write_manifest(tmp_path / "manifest.csv", line)
        summary = run_batch(config, batch_id="WO-L", model=MODEL, operator="op",
                            manifest=manifest, slots=slots_for(line.ports, 2), out=io.StringIO())
        fast, fallen = (d.identity.device_id for d in line.devices)
        rates = [server.baud for server in line._servers]
    assert (summary.passed, summary.failed) == (2, 0)
    assert rates == [921600, 115200]
    db = sqlite3.connect(config.audit.database)
    recorded = {device: json.loads(data)["line"] for device, data in db.execute(
        "select device_id, data from events where kind = 'line-rate'")}
    # Each in its slot (slots_for put device i in S{i+1}), as every event of a device is.
    assert dict(db.execute("select device_id, slot from events where kind = 'line-rate'")) == \
        {fast: "S1", fallen: "S2"}
    assert recorded[fast] == "921600"
    assert recorded[fallen].startswith("115200 (switch to 921600 failed: no valid answer at 921600")


def test_a_version_1_line_records_no_line_rate(engine_config, tmp_path):
    config = dataclasses.replace(engine_config,
                                 line=dataclasses.replace(engine_config.line, fast_baud=921600))
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20, model=MODEL) as line:
        manifest = write_manifest(tmp_path / "manifest.csv", line)
        summary = run_batch(config, batch_id="WO-V", model=MODEL, operator="op",
                            manifest=manifest, slots=slots_for(line.ports, 1), out=io.StringIO())
    assert summary.passed == 1
    db = sqlite3.connect(config.audit.database)
    assert db.execute("select count(*) from events where kind = 'line-rate'").fetchone() == (0,)


def test_the_audit_records_the_chain_as_a_compact_device_holds_it(engine_config, tmp_path):
    with SimulatedLine(1, tmp_path / "devices", keygen_ms=20, model=MODEL, compact=True) as line:
        manifest = write_manifest(tmp_path / "manifest.csv", line)
        summary = run_batch(engine_config, batch_id="WO-H", model=MODEL, operator="op",
                            manifest=manifest, slots=slots_for(line.ports, 1), out=io.StringIO())
        device = line.devices[0]
        held = device.store.object_hashes()
    assert summary.passed == 1
    db = sqlite3.connect(engine_config.audit.database)
    [data] = [json.loads(d) for (d,) in db.execute("select data from events where kind = 'objects-committed'")]
    # The device holds the DER chain (issuing CA only); the audit names that, and the PEM
    # bundle the station gave beside it.
    assert data["chain"] == held["chain"] and data["cert"] == held["cert"]
    assert data["chain_given"] == hashlib.sha256(engine_config.ca.chain.read_bytes()).hexdigest()
    assert data["chain_given"] != data["chain"]
