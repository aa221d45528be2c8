"""`station bench export` on a small batch: the synthetic audit it builds is a valid audit
(it verifies like a station's), and every export and the bundle's offline check run."""
from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric import ec

from station.audit import verify
from station.audit.export_bench import build_batch
from tests.cli_runner import run_station


def test_the_synthetic_batch_is_a_valid_audit(tmp_path):
    db = tmp_path / "audit.db"
    _ca, audit_key, _cert = build_batch(db, 120)
    report = verify(db, audit_key.public_key())
    assert report.ok, report.reason
    assert report.checkpoints_checked >= 2 and report.certificates_checked == 120
    assert isinstance(audit_key, ec.EllipticCurvePrivateKey)


def test_bench_export_prints_every_figure():
    result = run_station("bench", "export", "--devices", "60", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.splitlines()[-1])
    for fmt in ("csv", "jsonl", "bundle", "verify"):
        assert figures[f"{fmt}_s"] > 0 and figures[f"{fmt}_peak_rss_mib"] > 0
    assert figures["devices"] == 60 and figures["events"] > 60 * 15
