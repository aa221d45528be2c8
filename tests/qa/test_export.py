"""QA export round trip on a real line run: the CSV and JSON Lines say what the database says,
a bundle verifies offline with only a root certificate, and any change to it is named."""
from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import zipfile

import pytest
from cryptography import x509

from station.audit.bundle_verify import verify_bundle
from station.audit.chain import event_hash
from station.audit.errors import AuditTampered
from station.audit.export import CSV_COLUMNS, STEPS
from tests.cli_runner import assert_clean_failure, run_station


def _rows(db, sql, params=()):
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    return [dict(r) for r in conn.execute(sql, params)]


def test_csv_has_one_row_per_device_matching_the_database(qa_line, tmp_path):
    out = tmp_path / "wo.csv"
    result = run_station("--config", qa_line.config_path, "audit", "export", "--batch", "WO-QA-1", "--format", "csv",
                         "--out", out)
    assert result.returncode == 0, result.stderr
    table = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert tuple(table[0]) == CSV_COLUMNS
    assert sorted(r["device_id"] for r in table) == sorted(qa_line.ids)
    for row in table:
        device = _rows(qa_line.db, "select * from devices where device_id = ?", (row["device_id"],))[0]
        assert row["label"] == device["label"] and row["model"] == device["model"]
        assert (row["batch_id"], row["station_id"]) == ("WO-QA-1", qa_line.cfg.station_id)
        if device["batch_id"] == "WO-QA-1":  # not re-provisioned later
            assert row["result"] == device["state"]
            if row["result"] == "failed":
                assert f"{row['failure_step']}: {row['failure_reason']}" == device["reason"]
        steps = _rows(qa_line.db, "select data from events where kind = 'step-finished' and device_id = ? and "
                                  "batch_id = 'WO-QA-1'", (row["device_id"],))
        for step in (json.loads(s["data"]) for s in steps):
            assert row[f"{step['step']}_s"] == f"{step['duration_s']:.3f}"
        assert set(row) >= {f"{s}_s" for s in STEPS}
        certs = _rows(qa_line.db, "select * from certificates where device_id = ? and batch_id = 'WO-QA-1'",
                      (row["device_id"],))
        if certs:
            (cert,) = certs
            assert (row["certificate_serial"], row["certificate_sha256"], row["key_spki_sha256"],
                    row["certificate_status"]) == (cert["serial"], cert["fingerprint_sha256"] or "",
                                                   cert["spki_sha256"], cert["status"])
        else:
            assert row["certificate_serial"] == "" and row["failure_step"] == "issue"
    statuses = {r["certificate_status"] for r in table}
    assert {"verified", "superseded", "unknown", "undelivered"} <= statuses
    assert all(r["port"].startswith("/dev/pts/") for r in table)


def test_jsonl_carries_every_selected_event_with_its_chain_fields(qa_line, tmp_path):
    out = tmp_path / "dev.jsonl"
    device = qa_line.ids[1]  # two batches: failed COMMIT, then re-provisioned
    result = run_station("--config", qa_line.config_path, "audit", "export", "--device", device, "--format", "jsonl",
                         "--out", out)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines == _rows(qa_line.db, "select * from events where device_id = ? order by id", (device,))
    assert all(event_hash(line) == line["hash"] for line in lines)
    assert {line["batch_id"] for line in lines} == {"WO-QA-1", "WO-QA-2"}


def test_date_range_selects_by_timestamp(qa_line, tmp_path):
    out = tmp_path / "day.jsonl"
    first, last = _rows(qa_line.db, "select min(ts) a, max(ts) b from events")[0].values()
    result = run_station("--config", qa_line.config_path, "audit", "export", "--since", first[:10], "--until",
                         last[:10], "--format", "jsonl", "--out", out)
    assert result.returncode == 0, result.stderr
    assert len(out.read_text().splitlines()) == _rows(qa_line.db, "select count(*) n from events")[0]["n"]


@pytest.fixture(scope="module")
def bundle(qa_line):
    out = qa_line.tmp / "WO-QA-1.zip"
    result = run_station("--config", qa_line.config_path, "audit", "export", "--batch", "WO-QA-1", "--format",
                         "bundle", "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def _anchor(qa_line):
    return x509.load_pem_x509_certificate(qa_line.root.read_bytes())


def test_a_bundle_verifies_offline_with_only_the_root(qa_line, bundle, tmp_path):
    # No configuration, no token, no database: a QA machine.
    copy = tmp_path / "qa" / bundle.name
    copy.parent.mkdir()
    copy.write_bytes(bundle.read_bytes())
    result = run_station("audit", "verify", copy, "--trust-anchor", qa_line.root, cwd=tmp_path / "qa")
    assert result.returncode == 0, result.stderr
    assert "bundle intact" in result.stdout
    with zipfile.ZipFile(bundle) as zf:
        certs = [n for n in zf.namelist() if n.startswith("certificates/")]
    issued = _rows(qa_line.db, "select serial from certificates where batch_id = 'WO-QA-1' and cert_pem is not null")
    assert sorted(certs) == sorted(f"certificates/{r['serial']}.pem" for r in issued)
    report = verify_bundle(bundle, _anchor(qa_line))
    assert report.certificates == len(issued) and report.checkpoints >= 1
    assert report.selected == _rows(qa_line.db, "select count(*) n from events where batch_id = 'WO-QA-1'")[0]["n"]


def _rewrite(src, dst, change):
    """Copy the zip, letting change(name, data) return the new bytes (None drops the member)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = change(name, zin.read(name))
            if data is not None:
                zout.writestr(name, data)


def _members(bundle):
    with zipfile.ZipFile(bundle) as zf:
        return zf.namelist()


@pytest.mark.parametrize("position", [0.1, 0.5, 0.9])
def test_flipping_any_byte_of_any_member_names_that_member(qa_line, bundle, tmp_path, position):
    for member in _members(bundle):
        def flip(name, data, member=member):
            if name != member:
                return data
            at = int(len(data) * position)
            return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]
        forged = tmp_path / "forged.zip"
        _rewrite(bundle, forged, flip)
        with pytest.raises(AuditTampered) as caught:
            verify_bundle(forged, _anchor(qa_line))
        named = "MANIFEST.json" if member == "MANIFEST.sig" else member
        assert f"member {named}" in str(caught.value), (member, str(caught.value))


def test_a_byte_flipped_in_the_zip_file_itself_names_the_member(qa_line, bundle, tmp_path):
    data = bytearray(bundle.read_bytes())
    with zipfile.ZipFile(bundle) as zf:
        info = zf.getinfo("events.jsonl")
    data[info.header_offset + 30 + len(info.filename) + info.compress_size // 2] ^= 0x10
    forged = tmp_path / "flipped.zip"
    forged.write_bytes(bytes(data))
    with pytest.raises(AuditTampered, match="member events.jsonl"):
        verify_bundle(forged, _anchor(qa_line))


def test_removing_an_event_is_named(qa_line, bundle, tmp_path):
    def drop_one(name, data):
        if name != "events.jsonl":
            return data
        lines = data.splitlines(keepends=True)
        return b"".join(lines[:5] + lines[6:])
    forged = tmp_path / "dropped.zip"
    _rewrite(bundle, forged, drop_one)
    with pytest.raises(AuditTampered, match="member events.jsonl"):
        verify_bundle(forged, _anchor(qa_line))


def test_swapping_or_removing_a_certificate_is_named(qa_line, bundle, tmp_path):
    certs = sorted(n for n in _members(bundle) if n.startswith("certificates/"))
    with zipfile.ZipFile(bundle) as zf:
        other = zf.read(certs[1])
    forged = tmp_path / "swapped.zip"
    _rewrite(bundle, forged, lambda name, data: other if name == certs[0] else data)
    with pytest.raises(AuditTampered, match=f"member {certs[0]}"):
        verify_bundle(forged, _anchor(qa_line))
    _rewrite(bundle, forged, lambda name, data: None if name == certs[0] else data)
    with pytest.raises(AuditTampered, match=f"member {certs[0]}"):
        verify_bundle(forged, _anchor(qa_line))
    result = run_station("audit", "verify", forged, "--trust-anchor", qa_line.root)
    assert_clean_failure(result, 1, f"member {certs[0]}", "missing")


def test_another_root_is_not_trusted(qa_line, bundle, tmp_path):
    other = tmp_path / "other-root.pem"
    other.write_bytes(subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
         "/dev/null", "-subj", "/CN=Someone else", "-days", "1"], capture_output=True, check=True).stdout)
    result = run_station("audit", "verify", bundle, "--trust-anchor", other)
    assert_clean_failure(result, 1, "member audit-certificate.pem", "NOT TRUSTED")


def test_bundle_needs_the_trust_anchor_and_nothing_else(qa_line, bundle):
    assert_clean_failure(run_station("audit", "verify", bundle), 2, "--trust-anchor")
    assert_clean_failure(run_station("audit", "verify", bundle, "--trust-anchor", qa_line.root, "--skip-signatures"),
                         2, "--trust-anchor")


def test_selection_problems_are_usage_errors(qa_line, tmp_path):
    out = tmp_path / "x.csv"
    for args, fragment in ((["--format", "csv"], "exactly one of"),
                           (["--batch", "WO-QA-1", "--device", "X1", "--format", "csv"], "exactly one of"),
                           (["--since", "yesterday", "--format", "csv"], "--since 'yesterday'")):
        assert_clean_failure(run_station("--config", qa_line.config_path, "audit", "export", *args, "--out", out),
                             2, fragment)
    assert_clean_failure(run_station("--config", qa_line.config_path, "audit", "export", "--batch", "NOPE",
                                     "--format", "bundle", "--out", out), 1, "no audit event matches")
    assert not out.exists()


def test_an_added_or_removed_member_is_named(qa_line, bundle, tmp_path):
    forged = tmp_path / "more.zip"
    _rewrite(bundle, forged, lambda name, data: data)
    with zipfile.ZipFile(forged, "a") as zf:
        zf.writestr("certificates/0badc0de.pem", b"-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(AuditTampered, match="member certificates/0badc0de.pem: is not in the signed manifest"):
        verify_bundle(forged, _anchor(qa_line))
    for member in ("station.json", "checkpoints.jsonl", "events.jsonl", "MANIFEST.sig"):
        _rewrite(bundle, forged, lambda name, data, member=member: None if name == member else data)
        with pytest.raises(AuditTampered, match=f"member {member}: missing"):
            verify_bundle(forged, _anchor(qa_line))
