"""QA export fixtures: one real line run per module (the session's SoftHSM2 token and CA, a
fresh SQLite audit, simulated devices on real pseudo-terminals), with the outcomes QA must see:
passes, a CSR refusal, an undelivered certificate, re-provisioning (after a failed COMMIT, and
of a passed device under a supervisor's override) that supersedes, and a COMMIT whose outcome
is unknown. CLI runs get a station.toml pointing at that audit."""
from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
import tomlkit

from station.headless import run_batch
from station.sim import SimulatedLine
from tests.engine.conftest import MODEL, TIMEOUT_SCALE, slots_for, write_manifest

FAULTS = {1: ["commit-fail=1"], 2: ["bad-csr-signature"], 3: ["powerloss@COMMIT"], 4: ["wrong-hash"]}


@dataclasses.dataclass
class QaLine:
    cfg: object
    config_path: Path
    db: Path
    root: Path
    ids: list[str]
    tmp: Path


def station_toml_for(station_config, database: Path, where: Path) -> Path:
    """A copy of the session station's configuration using another audit database (written beside
    the original, so its relative paths still resolve)."""
    doc = tomlkit.parse(station_config.path.read_text())
    doc["audit"]["database"] = str(database)
    path = station_config.path.with_name(f"qa-{where.name}.toml")
    path.write_text(tomlkit.dumps(doc))
    return path


@pytest.fixture(scope="module")
def qa_line(station_config, tmp_path_factory) -> QaLine:
    tmp = tmp_path_factory.mktemp("qa")
    db = tmp / "audit.db"
    cfg = dataclasses.replace(station_config, audit=dataclasses.replace(station_config.audit, database=db),
                              line=dataclasses.replace(station_config.line, timeout_scale=TIMEOUT_SCALE))
    with SimulatedLine(6, tmp / "devices", keygen_ms=20, model=MODEL, faults=FAULTS) as line:
        manifest = write_manifest(tmp / "manifest.csv", line)
        first = run_batch(cfg, batch_id="WO-QA-1", model=MODEL, operator="op-1", manifest=manifest,
                          slots=slots_for(line.ports, 3), out=io.StringIO())
        # The device whose COMMIT failed comes back in another batch: its new certificate is
        # delivered and the undelivered one superseded. A device that passed is re-provisioned
        # there too, with a supervisor's override (its first certificate superseded as well).
        supervised = dataclasses.replace(cfg, line=dataclasses.replace(cfg.line, reprovision="supervisor"))
        second = run_batch(supervised, batch_id="WO-QA-2", model=MODEL, operator="op-2", manifest=manifest,
                           slots={"S1": [line.ports[1], line.ports[0]]}, supervisor_override="sup-7",
                           out=(out2 := io.StringIO()))
        ids = [d.identity.device_id for d in line.devices]
    assert (first.passed, first.failed, second.passed) == (2, 4, 2), out2.getvalue()
    root = tmp / "root.pem"
    root.write_bytes(station_config.ca.chain.read_bytes().split(b"-----END CERTIFICATE-----\n")[1]
                     + b"-----END CERTIFICATE-----\n")
    return QaLine(cfg=cfg, config_path=station_toml_for(station_config, db, tmp), db=db, root=root, ids=ids, tmp=tmp)
