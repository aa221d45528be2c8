"""The production path anchors the audit key too: `station ca import` has the imported issuing
CA certify the audit key, writes it beside the chain, points the configuration at it, and the
audit then verifies under the offline root as trust anchor (real token, real subprocesses)."""
from __future__ import annotations

import tomllib

import tomlkit
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hsm.ca import AUDIT_SIGNING_EKU
from tests.ca.offline_root import OfflineRoot
from tests.cli_runner import run_station
from tests.csr_factory import make_csr


def test_ca_import_certifies_the_audit_key_and_the_audit_verifies_under_the_offline_root(tmp_path):
    assert run_station("init", "--workdir", tmp_path).returncode == 0
    config = tmp_path / "station.toml"
    doc = tomlkit.parse(config.read_text())
    doc["hsm"]["issuing_key_label"] = "issuing-prod"
    doc["hsm"]["audit_key_label"] = "audit-prod"  # not on the token yet: import makes it
    doc["ca"]["setup"] = "production"
    del doc["audit"]["certificate"]
    doc["audit"]["checkpoint_every"] = 1
    config.write_text(tomlkit.dumps(doc))

    assert run_station("ca", "csr", tmp_path / "issuing.csr", cwd=tmp_path).returncode == 0
    csr = x509.load_pem_x509_csr((tmp_path / "issuing.csr").read_bytes())
    offline = OfflineRoot()
    issuing, root = offline.certify(csr.subject, csr.public_key(), usage=None), offline.certificate
    (tmp_path / "bundle.pem").write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (issuing, root)))
    (tmp_path / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))

    result = run_station("ca", "import", tmp_path / "bundle.pem", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "generated the audit key 'audit-prod'" in result.stdout
    assert tomllib.loads(config.read_text())["audit"]["certificate"] == "ca/audit.pem"
    audit_cert, *rest = x509.load_pem_x509_certificates((tmp_path / "ca/audit.pem").read_bytes())
    assert rest == [issuing, root]
    audit_cert.verify_directly_issued_by(issuing)
    assert list(audit_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [AUDIT_SIGNING_EKU]

    shown = run_station("ca", "show", cwd=tmp_path)
    assert shown.returncode == 0, shown.stdout + shown.stderr  # the new audit key is sign-only

    # Issue once so the audit holds checkpoints signed by the new audit key.
    from station.config import load_config
    from station.profile import DeviceRef, subject_for

    subject = subject_for(load_config(config).profile, DeviceRef("AA01", "P1", "M"))
    (tmp_path / "d.csr").write_bytes(make_csr(subject))
    issued = run_station("issue", tmp_path / "d.csr", "--device-id", "AA01", "--label", "P1", "--model", "M",
                         "--out", tmp_path / "d.pem", cwd=tmp_path)
    assert issued.returncode == 0, issued.stderr

    verified = run_station("audit", "verify", "--trust-anchor", tmp_path / "root.pem", cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert "signatures verified against audit certificate" in verified.stdout
    assert " 0 checkpoints" not in verified.stdout
    assert "anchored in 'CN=Offline Root'" in verified.stdout
    assert "the token's audit key 'audit-prod' is the certified key" in verified.stdout
