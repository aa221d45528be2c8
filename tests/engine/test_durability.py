"""What a slot waits for (docs/audit.md "What is durable when"): per device, three COMMITs
(the reservation, the issued certificate, `device-passed`), four when the line locks; the
rest of its records are deferred yet all in the chain. Real ptys, the real token and SQLite."""
from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from station.audit import verify
from station.boot import open_station
from station.engine.batch import Batch, Manifest
from station.engine.engine import Engine
from station.sim import SimulatedLine
from tests.engine.conftest import MODEL, write_manifest


def _waits(cfg, tmp_path, devices: int, name: str):
    """(records waited for, records deferred) in one batch of `devices` devices."""
    with SimulatedLine(devices, tmp_path / name, keygen_ms=5) as line, open_station(cfg) as station:
        engine = Engine(station, Batch(f"WO-{name}", MODEL, "op",
                                       manifest=Manifest.load(write_manifest(tmp_path / f"{name}.csv", line))),
                        cfg.line, driver_opts={"timeout_scale": cfg.line.timeout_scale})
        db = station.audit
        engine.start()
        before = (db.records_committed - db.records_deferred, db.records_deferred)
        engine.run_slot_queue("S1", line.ports)
        engine.wait()
        after = (db.records_committed - db.records_deferred, db.records_deferred)
        outcomes = list(engine.outcomes)
        engine.finish()
    assert [o.passed for o in outcomes] == [True] * devices, outcomes
    return after[0] - before[0], after[1] - before[1]


@pytest.mark.parametrize("lock, waited", [(False, 3), (True, 4)])
def test_a_device_waits_for_three_commits_four_with_lock(engine_config, tmp_path, lock, waited):
    cfg = dataclasses.replace(engine_config, line=dataclasses.replace(engine_config.line, lock=lock))
    one = _waits(cfg, tmp_path, 1, "one")
    three = _waits(cfg, tmp_path, 3, "three")
    # The difference is what two more devices cost, free of what a batch costs once.
    per_device_waited = (three[0] - one[0]) / 2
    per_device_deferred = (three[1] - one[1]) / 2
    assert per_device_waited == waited
    assert per_device_deferred >= 10  # its progress: identified, steps, bind, delivered...
    with sqlite3.connect(cfg.audit.database) as conn:
        kinds = [k for (k,) in conn.execute("SELECT kind FROM events ORDER BY id")]
    # Every deferred record is in the chain, in order, and the chain verifies.
    assert kinds.count("device-passed") == 4 and kinds.count("objects-committed") == 4
    assert kinds.count("step-finished") == 4 * (8 if lock else 7)
    assert verify(cfg.audit.database).ok
