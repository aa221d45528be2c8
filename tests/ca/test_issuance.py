"""Issuing device certificates through the real token: chain verification with openssl and
cryptography, an independent RFC 5280 linter, the profile, and concurrency."""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.csr_factory import make_csr


def _issue(station, device, **kw):
    subject = station.issuer.subject_for(device)
    return station.issuer.issue(make_csr(subject, **kw), device)


def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def test_issued_chain_verifies_with_openssl_x509_strict(station, device, tmp_path):
    issued = _issue(station, device)
    root, issuing = station.ca.chain[-1], station.ca.chain[0]
    (tmp_path / "root.pem").write_bytes(_pem(root))
    (tmp_path / "issuing.pem").write_bytes(_pem(issuing))
    (tmp_path / "device.pem").write_bytes(issued.pem)
    out = subprocess.run(["openssl", "verify", "-x509_strict", "-purpose", "sslclient",
                          "-CAfile", tmp_path / "root.pem", "-untrusted", tmp_path / "issuing.pem",
                          tmp_path / "device.pem"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(": OK")


def test_issued_chain_verifies_with_cryptography_client_verifier(station, device):
    issued = _issue(station, device)
    store = verification.Store([station.ca.chain[-1]])
    # The device certificate carries no subjectAltName (AWS JITP reads the subject), so the
    # client verifier's default "SAN required" rule is relaxed; everything else is default.
    ee_policy = verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None)
    verifier = (verification.PolicyBuilder().store(store)
                .extension_policies(ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
                .build_client_verifier())
    result = verifier.verify(issued.certificate, station.ca.chain[:-1])
    assert result.chain[0] == issued.certificate
    assert result.chain[-1] == station.ca.chain[-1]


@pytest.mark.parametrize("which", ["device", "issuing", "root"])
def test_certificates_are_clean_under_an_rfc5280_linter(station, device, tmp_path, which):
    cert = {"device": lambda: _issue(station, device).certificate,
            "issuing": lambda: station.ca.chain[0], "root": lambda: station.ca.chain[-1]}[which]()
    path = tmp_path / f"{which}.pem"
    path.write_bytes(_pem(cert))
    # pkilint (independent of cryptography and OpenSSL); INFO findings merely describe
    # (e.g. "SKI made with method 1"), anything from NOTICE up is a defect.
    linter = Path(sys.executable).parent / "lint_pkix_cert"
    out = subprocess.run([str(linter), "lint", "-s", "NOTICE", str(path)], capture_output=True, text=True)
    findings = [line for line in out.stdout.splitlines() if line.strip()]
    assert out.returncode == 0 and not findings, out.stdout + out.stderr


def test_device_certificate_follows_the_profile(station, device):
    issued = _issue(station, device)
    cert = issued.certificate
    assert cert.version == x509.Version.v3
    assert 0 < cert.serial_number < 2**159 and cert.serial_number.bit_length() > 64
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"SIM-1-{device.device_id}"
    assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == device.label
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_encipherment
    assert not ku.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = station.ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert cert.not_valid_before_utc < cert.not_valid_after_utc
    assert cert.issuer == station.ca.certificate.subject


def test_csr_extensions_are_never_copied(station, device):
    extra = [(x509.KeyUsage(True, True, False, False, False, False, False, False, False), True)]
    issued = _issue(station, device, extensions=extra)
    ku = issued.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.content_commitment is False  # asked for by the CSR, not granted


def test_issuance_is_recorded_before_release(station, device):
    issued = _issue(station, device)
    rows = station.audit.certificates_for_device(device.device_id)
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "issued"
    assert row["fingerprint_sha256"] == issued.fingerprint_sha256
    assert row["spki_sha256"] == issued.request.spki_sha256
    assert x509.load_pem_x509_certificate(row["cert_pem"].encode()) == issued.certificate


def test_concurrent_issuance_from_many_threads(station, device):
    from station.profile import DeviceRef

    results, errors = [], []

    def worker(t: int) -> None:
        try:
            for i in range(15):
                dev = DeviceRef(device_id=f"C{t:03d}{i:012d}", label=f"CL{t}-{i}", model="SIM-1")
                results.append(_issue(station, dev))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert len(results) == 120
    assert len({r.serial for r in results}) == 120
    for r in results:
        r.certificate.verify_directly_issued_by(station.ca.certificate)


def test_device_certificate_never_outlives_the_issuing_ca(station, device):
    import dataclasses

    from station.issuance import Issuer

    long_lived = dataclasses.replace(station.cfg.profile, validity_days=100_000)
    issuer = Issuer(ca=station.ca, profile=long_lived, policy=station.issuer.policy, record=station.audit)
    issued = issuer.issue(make_csr(issuer.subject_for(device)), device)
    assert issued.certificate.not_valid_after_utc == station.ca.certificate.not_valid_after_utc


def test_a_failure_after_the_reservation_voids_it(station, device):
    import dataclasses

    from station.issuance import Issuer

    # Past the config bound (which load_config enforces) the date arithmetic overflows after the
    # reservation: a real failure between reserve and record, not a simulated one.
    broken = dataclasses.replace(station.cfg.profile, validity_days=3_000_000)
    issuer = Issuer(ca=station.ca, profile=broken, policy=station.issuer.policy, record=station.audit)
    csr = make_csr(issuer.subject_for(device))
    with pytest.raises(OverflowError):
        issuer.issue(csr, device)
    rows = station.audit.certificates_for_device(device.device_id)
    assert [row["status"] for row in rows] == ["void"], "a reservation must not stay reserved after a failure"
    assert "OverflowError" in rows[0]["status_reason"]
    assert rows[0]["cert_pem"] is None
    # The key stays used: the device must make a fresh one.
    assert station.audit.public_key_known(rows[0]["spki_sha256"])


def test_an_audit_write_failure_after_the_record_is_not_hidden_by_a_refused_void(station, device, monkeypatch):
    # The certificate row is committed `issued`; the checkpoint transaction after it fails. The
    # AuditWriteFailed must reach the pipeline (it halts issuance), not a PolicyRefusal from
    # trying to void a signed certificate.
    from station.audit import AuditWriteFailed

    calls = []
    real = station.audit._checkpoint_if_due

    def disk_full(event_id):  # the reservation's goes through; the record's fails
        calls.append(event_id)
        if len(calls) == 1:
            return real(event_id)
        raise AuditWriteFailed("audit database write failed: disk full (injected after the record)")

    monkeypatch.setattr(station.audit, "_checkpoint_if_due", disk_full)
    csr = make_csr(station.issuer.subject_for(device))
    with pytest.raises(AuditWriteFailed):
        station.issuer.issue(csr, device)
    monkeypatch.undo()
    rows = station.audit.certificates_for_device(device.device_id)
    assert [row["status"] for row in rows][-1] == "issued"
