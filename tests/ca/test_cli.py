"""The CA commands as scripts on the line use them: real subprocesses, real exit codes."""
from __future__ import annotations

import datetime as dt
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.cli_runner import assert_clean_failure, run_station
from tests.csr_factory import make_csr, new_key


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wd = tmp_path_factory.mktemp("cli-station")
    result = run_station("init", "--workdir", wd)
    assert result.returncode == 0, result.stderr
    return wd


def test_init_creates_a_complete_station(workdir):
    for rel in ("station.toml", "hsm/softhsm2.conf", "hsm/user.pin", "hsm/so.pin", "ca/chain.pem",
                "ca/audit-public.pem"):
        assert (workdir / rel).exists(), rel
    for pin_file in ("hsm/user.pin", "hsm/so.pin"):
        assert stat.S_IMODE((workdir / pin_file).stat().st_mode) == 0o600
    pin = (workdir / "hsm/user.pin").read_text().strip()
    assert pin not in (workdir / "station.toml").read_text()
    assert str(workdir) not in (workdir / "station.toml").read_text(), "paths must be relative to the work dir"


def test_init_twice_refuses_and_keeps_the_ca(workdir):
    before = (workdir / "ca/chain.pem").read_bytes()
    result = run_station("init", "--workdir", workdir)
    assert_clean_failure(result, 2, "already holds a station", "--force")
    assert (workdir / "ca/chain.pem").read_bytes() == before


def test_init_force_moves_the_old_station_aside(tmp_path):
    assert run_station("init", "--workdir", tmp_path).returncode == 0
    old_chain = (tmp_path / "ca/chain.pem").read_bytes()
    result = run_station("init", "--workdir", tmp_path, "--force")
    assert result.returncode == 0, result.stderr
    assert "WARNING" in result.stderr
    backups = list(tmp_path.glob("replaced-*"))
    assert len(backups) == 1
    assert (backups[0] / "ca/chain.pem").read_bytes() == old_chain
    assert (backups[0] / "hsm/tokens").is_dir()
    assert (tmp_path / "ca/chain.pem").read_bytes() != old_chain
    # The old station still opens from where it was moved, with its own token and PIN.
    shown = run_station("ca", "show", cwd=backups[0])
    assert shown.returncode == 0, shown.stderr
    assert chain_fingerprint(old_chain) in shown.stdout


def chain_fingerprint(chain_pem: bytes) -> str:
    return x509.load_pem_x509_certificates(chain_pem)[0].fingerprint(hashes.SHA256()).hex()


def test_ca_show_names_where_each_key_lives(workdir):
    result = run_station("ca", "show", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "issuing CA" in result.stdout and "root CA" in result.stdout
    assert "HSM token 'station-ca', key 'issuing-ca' (sensitive, not extractable, never extractable)" in result.stdout
    assert "sha256:" in result.stdout and "ec-p256" in result.stdout


def test_export_chain_writes_issuing_then_root(workdir, tmp_path):
    out = tmp_path / "chain.pem"
    result = run_station("--config", workdir / "station.toml", "ca", "export-chain", out)
    assert result.returncode == 0, result.stderr
    chain = x509.load_pem_x509_certificates(out.read_bytes())
    assert len(chain) == 2
    chain[0].verify_directly_issued_by(chain[1])
    chain[1].verify_directly_issued_by(chain[1])


def test_print_subject_then_issue(workdir, tmp_path):
    result = run_station("issue", "--print-subject", "--device-id", "00112233AABBCCDD", "--label", "SN0001",
                         "--model", "GW-2", cwd=workdir)
    assert result.returncode == 0, result.stderr
    subject_text = result.stdout.strip()
    assert "CN=GW-2-00112233AABBCCDD" in subject_text and "2.5.4.5=SN0001" in subject_text
    from station.config import load_config
    from station.profile import DeviceRef, subject_for

    subject = subject_for(load_config(workdir / "station.toml").profile,
                          DeviceRef("00112233AABBCCDD", "SN0001", "GW-2"))
    assert subject.rfc4514_string() == subject_text
    csr = tmp_path / "dev.csr"
    csr.write_bytes(make_csr(subject))
    cert_path = tmp_path / "dev.pem"
    result = run_station("issue", csr, "--device-id", "00112233AABBCCDD", "--label", "SN0001", "--model", "GW-2",
                         "--out", cert_path, cwd=workdir)
    assert result.returncode == 0, result.stderr
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.subject == subject
    import sqlite3

    status = sqlite3.connect(workdir / "audit.db").execute(
        "select status from certificates where device_id = '00112233AABBCCDD'").fetchone()[0]
    assert status == "delivered", "a certificate handed over in a file is delivered, not left in flight"
    # Same key again: refused, exit 1, one line, no new file.
    again = tmp_path / "again.pem"
    result = run_station("issue", csr, "--device-id", "00112233AABBCCDD", "--label", "SN0001", "--model", "GW-2",
                         "--out", again, cwd=workdir)
    assert_clean_failure(result, 1, "already certified")
    assert not again.exists()


def test_refused_csr_exits_1_with_one_line(workdir, tmp_path):
    csr = tmp_path / "weak.csr"
    from station.config import load_config
    from station.profile import DeviceRef, subject_for

    subject = subject_for(load_config(workdir / "station.toml").profile, DeviceRef("AB", "L9", "M"))
    csr.write_bytes(make_csr(subject, key=new_key("rsa-1024")))
    result = run_station("issue", csr, "--device-id", "AB", "--label", "L9", "--model", "M",
                         "--out", tmp_path / "x.pem", cwd=workdir)
    assert_clean_failure(result, 1, "rsa-1024")
    assert not (tmp_path / "x.pem").exists()
    import sqlite3

    db = sqlite3.connect(workdir / "audit.db")
    logged = db.execute("select operator, device_id, data from events where kind = 'issuance-refused'").fetchall()
    assert any(row[1] == "AB" and "key-not-allowed" in row[2] for row in logged), logged


def test_wrong_pin_exits_3_and_never_shows_the_pin(workdir, tmp_path):
    result = run_station("ca", "show", cwd=workdir, env={"STATION_PIN": "wrong-pin-123"})
    assert_clean_failure(result, 3, "wrong PIN")
    assert "wrong-pin-123" not in result.stderr + result.stdout


def test_pin_file_readable_by_others_is_refused(tmp_path):
    assert run_station("init", "--workdir", tmp_path).returncode == 0
    os.chmod(tmp_path / "hsm/user.pin", 0o644)
    result = run_station("ca", "show", cwd=tmp_path)
    assert_clean_failure(result, 2, "readable by others", "chmod 600")


def test_missing_token_directory_exits_3(tmp_path):
    assert run_station("init", "--workdir", tmp_path).returncode == 0
    (tmp_path / "hsm/tokens").rename(tmp_path / "hsm/tokens.gone")
    result = run_station("ca", "show", cwd=tmp_path)
    assert_clean_failure(result, 3, "token directory", "does not exist")


def test_missing_config_exits_2(tmp_path):
    result = run_station("ca", "show", cwd=tmp_path)
    assert_clean_failure(result, 2, "station.toml", "not found")


@pytest.mark.parametrize("edit,fragments", [
    (lambda t: t.replace('[station]\nid = "station-1"', '[station]\nid = 5'), ("[station] id", "expected")),
    (lambda t: t + "\n[bogus]\nx = 1\n", ("unknown table", "bogus")),
    (lambda t: t.replace('validity_days = 7300', 'validity_days = -1'), ("[profile] validity_days", "positive")),
    (lambda t: t.replace('common_name = "{model}-{device_id}"', 'common_name = "{model}-{mac}"'),
     ("[profile] common_name", "{mac}")),
    (lambda t: t.replace('organizational_unit = "Production line"', 'organizational_unit = ""'),
     ("[profile] organizational_unit", "empty")),
    (lambda t: t.replace('pin_file = "hsm/user.pin"', 'pin = "1234"'), ("[hsm] pin", "never written")),
    (lambda t: t.replace('allowed_keys = ["ec-p256", "ec-p384"]', 'allowed_keys = ["dsa"]'),
     ("[policy] allowed_keys", "dsa")),
    (lambda t: t + "[[[", ("not valid TOML",)),
])
def test_config_errors_name_file_and_key(workdir, tmp_path, edit, fragments):
    bad = tmp_path / "station.toml"
    bad.write_text(edit((workdir / "station.toml").read_text()))
    result = run_station("--config", bad, "ca", "show")
    assert_clean_failure(result, 2, str(bad), *fragments)


def test_production_setup_csr_offline_root_import(tmp_path):
    # A station whose issuing key is certified by an offline root (here: a software key).
    assert run_station("init", "--workdir", tmp_path).returncode == 0
    config = tmp_path / "station.toml"
    config.write_text(config.read_text().replace('issuing_key_label = "issuing-ca"',
                                                 'issuing_key_label = "issuing-prod"'))
    csr_path = tmp_path / "issuing.csr"
    result = run_station("ca", "csr", csr_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    assert csr.is_signature_valid

    root_key = ec.generate_private_key(ec.SECP384R1())
    root_name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Offline Root")])
    now = dt.datetime.now(dt.timezone.utc)

    def ca_cert(subject, public_key, path_length, ski=True):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(root_name).public_key(public_key)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
                   .not_valid_after(now + dt.timedelta(days=365))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True))
        if ski:
            builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        return builder.sign(root_key, hashes.SHA384())

    root = ca_cert(root_name, root_key.public_key(), None)
    issuing = ca_cert(csr.subject, csr.public_key(), 0)

    # An issuing CA certificate without subjectKeyIdentifier is refused.
    (tmp_path / "noski.pem").write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM)
                                                  for c in (ca_cert(csr.subject, csr.public_key(), 0, ski=False), root)))
    result = run_station("ca", "import", tmp_path / "noski.pem", cwd=tmp_path)
    assert_clean_failure(result, 3, "subjectKeyIdentifier")
    pem = lambda *certs: b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)  # noqa: E731

    # A certificate for some other key is refused and nothing is installed.
    stranger = ca_cert(csr.subject, ec.generate_private_key(ec.SECP256R1()).public_key(), 0)
    (tmp_path / "wrong.pem").write_bytes(pem(stranger, root))
    before = (tmp_path / "ca/chain.pem").read_bytes()
    result = run_station("ca", "import", tmp_path / "wrong.pem", cwd=tmp_path)
    assert_clean_failure(result, 3, "not for the token's issuing key")
    assert (tmp_path / "ca/chain.pem").read_bytes() == before

    # A chain that does not reach a root is refused.
    (tmp_path / "broken.pem").write_bytes(pem(issuing))
    result = run_station("ca", "import", tmp_path / "broken.pem", cwd=tmp_path)
    assert_clean_failure(result, 3, "not self-signed")

    (tmp_path / "signed.pem").write_bytes(pem(issuing, root))
    result = run_station("ca", "import", tmp_path / "signed.pem", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    chain = x509.load_pem_x509_certificates((tmp_path / "ca/chain.pem").read_bytes())
    assert chain == [issuing, root]
    assert (tmp_path / "ca/chain.pem.previous").read_bytes() == before
    # ... and the station now issues under it.
    result = run_station("issue", "--print-subject", "--device-id", "AA01", "--label", "P1", "--model", "M",
                         cwd=tmp_path)
    from station.config import load_config
    from station.profile import DeviceRef, subject_for

    subject = subject_for(load_config(config).profile, DeviceRef("AA01", "P1", "M"))
    (tmp_path / "d.csr").write_bytes(make_csr(subject))
    result = run_station("issue", tmp_path / "d.csr", "--device-id", "AA01", "--label", "P1", "--model", "M",
                         "--out", tmp_path / "d.pem", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    x509.load_pem_x509_certificate((tmp_path / "d.pem").read_bytes()).verify_directly_issued_by(issuing)


def test_init_where_the_directory_cannot_be_created_exits_3(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_station("init", "--workdir", blocker / "station")
    assert_clean_failure(result, 3, "cannot create the station")


@pytest.mark.parametrize("key_type,expected", [("ec-p384", "ec-p384"), ("rsa-3072", "rsa-3072")])
def test_other_ca_key_types_issue_verifiable_certificates(tmp_path, key_type, expected):
    assert run_station("init", "--workdir", tmp_path, "--key-type", key_type).returncode == 0
    shown = run_station("ca", "show", cwd=tmp_path)
    assert shown.returncode == 0 and f"key:         {expected}" in shown.stdout, shown.stdout + shown.stderr
    from station.config import load_config
    from station.profile import DeviceRef, subject_for

    subject = subject_for(load_config(tmp_path / "station.toml").profile, DeviceRef("AB12", "L-1", "M"))
    (tmp_path / "d.csr").write_bytes(make_csr(subject))
    result = run_station("issue", tmp_path / "d.csr", "--device-id", "AB12", "--label", "L-1", "--model", "M",
                         "--out", tmp_path / "d.pem", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    chain = x509.load_pem_x509_certificates((tmp_path / "ca/chain.pem").read_bytes())
    device = x509.load_pem_x509_certificate((tmp_path / "d.pem").read_bytes())
    device.verify_directly_issued_by(chain[0])
    chain[0].verify_directly_issued_by(chain[1])


def test_station_config_variable_is_used_when_no_option_is_given(workdir, tmp_path):
    result = run_station("ca", "show", cwd=tmp_path, env={"STATION_CONFIG": str(workdir / "station.toml")})
    assert result.returncode == 0, result.stderr
    assert "issuing CA" in result.stdout


def test_aws_verification_certificate_is_signed_by_the_issuing_key_and_audited(workdir, tmp_path):
    out = tmp_path / "verification.pem"
    result = run_station("ca", "aws-verification", "a1b2c3d4e5f60718", "--out", out, cwd=workdir)
    assert result.returncode == 0, result.stderr
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    issuing = x509.load_pem_x509_certificates((workdir / "ca/chain.pem").read_bytes())[0]
    cert.verify_directly_issued_by(issuing)
    assert cert.subject.rfc4514_string() == "CN=a1b2c3d4e5f60718"
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    import sqlite3

    logged = sqlite3.connect(workdir / "audit.db").execute(
        "select data from events where kind = 'aws-verification-certificate-signed'").fetchall()
    assert any("a1b2c3d4e5f60718" in row[0] for row in logged)
    bad = run_station("ca", "aws-verification", "not a code!", "--out", tmp_path / "x.pem", cwd=workdir)
    assert_clean_failure(bad, 2, "registration code")
    assert not (tmp_path / "x.pem").exists()


def test_a_failed_init_leaves_no_half_station_behind(tmp_path):
    import sys
    from pathlib import Path

    # Without softhsm2-util on PATH the token cannot be initialised, after the work directory
    # was already being filled.
    result = run_station("init", "--workdir", tmp_path, env={"PATH": str(Path(sys.executable).parent)})
    assert_clean_failure(result, 3, "softhsm2-util not found")
    assert list(tmp_path.iterdir()) == []
    assert run_station("init", "--workdir", tmp_path).returncode == 0
