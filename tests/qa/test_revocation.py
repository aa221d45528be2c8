"""Revocation on a real line run: the CRL is signed by the issuing key in the HSM, verifies with
`openssl crl -verify` against the issuing CA, and lists exactly the undelivered, interrupted
(unknown) and superseded certificates; the AWS list names the same serials."""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import sqlite3
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from station.audit import AuditWriteFailed
from station.audit.export_revocations import issue_crl
from station.boot import open_station

from tests.cli_runner import run_station


def test_crl_lists_exactly_the_unconfirmed_and_superseded_certificates(qa_line, tmp_path):
    db = sqlite3.connect(qa_line.db)
    expected = {serial: status for serial, status in db.execute(
        "select serial, status from certificates where status in ('undelivered', 'unknown', 'superseded') "
        "and cert_pem is not null")}
    assert set(expected.values()) == {"undelivered", "unknown", "superseded"}
    before = run_station("--config", qa_line.config_path, "audit", "export", "--revocations", "--format", "json",
                         "--out", tmp_path / "before.json")
    assert before.returncode == 0, before.stderr

    crl_path = tmp_path / "ca.crl"
    result = run_station("--config", qa_line.config_path, "ca", "crl", "--out", crl_path)
    assert result.returncode == 0, result.stderr
    issuing = tmp_path / "issuing.pem"
    issuing.write_bytes(qa_line.cfg.ca.chain.read_bytes().split(b"-----END CERTIFICATE-----\n")[0]
                        + b"-----END CERTIFICATE-----\n")
    check = subprocess.run(["openssl", "crl", "-in", crl_path, "-CAfile", issuing, "-verify", "-noout"],
                           capture_output=True, text=True)
    assert check.returncode == 0 and "verify OK" in check.stdout + check.stderr, check.stderr
    crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    listed = {format(r.serial_number, "x"): r.extensions.get_extension_for_class(x509.CRLReason).value.reason
              for r in crl}
    assert set(listed) == set(expected)
    for serial, status in expected.items():
        wanted = x509.ReasonFlags.superseded if status == "superseded" else x509.ReasonFlags.cessation_of_operation
        assert listed[serial] is wanted
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    # Now revoked in the audit, each change an event, and the CRL number kept there.
    statuses = dict(db.execute("select serial, status from certificates where serial in (%s)"
                               % ",".join("?" * len(expected)), list(expected)))
    assert set(statuses.values()) == {"revoked"}
    logged = json.loads(db.execute("select data from events where kind = 'crl-issued'").fetchone()[0])
    assert logged["crl_number"] == 1 and sorted(logged["revoked_now"]) == sorted(expected)

    # The AWS list: the same serials, before and after, with the certificate ids AWS IoT uses.
    after = tmp_path / "after.csv"
    assert run_station("--config", qa_line.config_path, "audit", "export", "--revocations", "--format", "csv",
                       "--out", after).returncode == 0
    rows = list(csv.DictReader(io.StringIO(after.read_text())))
    assert {r["serial"] for r in rows} == set(expected) == {r["serial"] for r in json.loads(
        (tmp_path / "before.json").read_text())}
    for row in rows:
        pem = db.execute("select cert_pem from certificates where serial = ?", (row["serial"],)).fetchone()[0]
        der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
        assert row["aws_certificate_id"] == hashlib.sha256(der).hexdigest()
        assert row["status"] == "revoked"

    # A second CRL carries the next number and the same entries.
    assert run_station("--config", qa_line.config_path, "ca", "crl", "--out", crl_path).returncode == 0
    again = x509.load_pem_x509_crl(crl_path.read_bytes())
    assert again.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    assert {r.serial_number for r in again} == {r.serial_number for r in crl}


def test_a_crl_the_audit_cannot_record_is_never_published(station_config, tmp_path):
    cfg = dataclasses.replace(station_config, audit=dataclasses.replace(station_config.audit,
                                                                        database=tmp_path / "audit.db"))
    out = tmp_path / "ca.crl"
    with open_station(cfg) as station:
        station.audit.close()  # the database becomes unwritable after the CRL is signed
        with pytest.raises(AuditWriteFailed):
            issue_crl(station, out, next_update_days=7)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # no half-written file left
