"""Turn a StationConfig into the live objects every command needs: the logged-in token, the
issuing CA, the audit database and the issuer. The one place that wires them together."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from hsm import softhsm
from hsm.ca import CertificateAuthority, fingerprint
from hsm.errors import CAError
from hsm.signer import HsmEcPrivateKey
from hsm.token import Token
from station import __version__
from station.config import SOFTHSM_MODULE, HsmConfig, StationConfig
from station.errors import ConfigError
from station.issuance import Issuer
from station.pin import obtain_pin
from station.policy import IssuancePolicy


def module_path(hsm: HsmConfig) -> Path:
    return softhsm.find_module() if hsm.module == SOFTHSM_MODULE else Path(hsm.module)


def open_token(cfg: StationConfig, pin: str | None = None) -> Token:
    hsm = cfg.hsm
    return Token(module_path(hsm), hsm.token_label, pin if pin is not None else obtain_pin(hsm),
                 softhsm_conf=hsm.softhsm_conf if hsm.module == SOFTHSM_MODULE else None)


def load_chain(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"CA chain {path} does not exist (run `station init`, or `station ca import`)") from None
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigError(f"CA chain {path} is not a PEM certificate bundle ({exc})") from None
    return chain


def open_ca(cfg: StationConfig, token: Token) -> CertificateAuthority:
    chain = load_chain(cfg.ca.chain)
    try:
        return CertificateAuthority(token=token, issuing_label=cfg.hsm.issuing_key_label, chain=chain)
    except CAError as exc:
        raise CAError(f"{cfg.ca.chain}: {exc}") from None


@dataclass
class OpenStation:
    cfg: StationConfig
    token: Token
    ca: CertificateAuthority
    audit: object  # station.audit.AuditDB
    issuer: Issuer
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.audit.close()
            self.token.close()

    def __enter__(self) -> "OpenStation":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_station(cfg: StationConfig, *, pin: str | None = None) -> OpenStation:
    """Log in, load the CA, open the audit database and log what is running (config hash,
    CA fingerprints, software version) so QA can tell what ran."""
    from station.audit import AuditDB

    token = open_token(cfg, pin)
    try:
        ca = open_ca(cfg, token)
        audit = AuditDB.open(cfg.audit.database, station_id=cfg.station_id,
                             checkpoint_every=cfg.audit.checkpoint_every,
                             busy_timeout=cfg.audit.busy_timeout_ms / 1000)
    except BaseException:
        token.close()
        raise
    try:
        if token.has_key(cfg.hsm.audit_key_label):
            signer = HsmEcPrivateKey(token, cfg.hsm.audit_key_label)
            _check_audit_certificate(cfg, signer.public_key())
            audit.set_checkpoint_signer(signer)
        audit.log_station_start(cfg.sha256, [fingerprint(c) for c in ca.chain], __version__)
    except BaseException:
        audit.close()
        token.close()
        raise
    issuer = Issuer(ca=ca, profile=cfg.profile, policy=IssuancePolicy(cfg.policy), record=audit)
    return OpenStation(cfg=cfg, token=token, ca=ca, audit=audit, issuer=issuer)


def _check_audit_certificate(cfg: StationConfig, token_key) -> None:
    """Refuse to start when `[audit] certificate` certifies another key than the token's audit
    key: every checkpoint written from then on would fail `audit verify --trust-anchor`, and
    that would only be found long after the batch left the line."""
    if cfg.audit.certificate is None or not cfg.audit.certificate.exists():
        return
    from cryptography.hazmat.primitives import serialization

    from station.audit.anchor import load_certificates
    certified = load_certificates(cfg.audit.certificate, "audit certificate")[0].public_key()
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if certified.public_bytes(*spki) != token_key.public_bytes(*spki):
        raise ConfigError(f"{cfg.path}: [audit] certificate {cfg.audit.certificate} certifies another key "
                          f"than the token's audit key {cfg.hsm.audit_key_label!r}; checkpoints would not "
                          "verify under the trust anchor (run `station ca import` again, or fix the path)")
