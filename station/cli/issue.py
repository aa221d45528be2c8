"""`station issue`: run a CSR file through exactly the policy path the line uses."""
from __future__ import annotations

from pathlib import Path

import click

from station.boot import open_station
from station.cli.params import Identifier
from station.config import load_config
from station.errors import EnvironmentProblem, PolicyRefusal, UsageError
from station.identifiers import DEVICE_ID, LABEL, MODEL
from station.profile import DeviceRef, subject_for


@click.command("issue")
@click.argument("csr", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--device-id", required=True, type=Identifier(DEVICE_ID),
              help="The device's unique id (as it reports it).")
@click.option("--label", required=True, type=Identifier(LABEL),
              help="The device's label serial (scanned or from the manifest).")
@click.option("--model", default="DEV", show_default=True, type=Identifier(MODEL), help="The device model.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the certificate (PEM).")
@click.option("--print-subject", is_flag=True, help="Only print the subject (RFC 4514) the CSR must carry.")
@click.pass_context
def issue_command(ctx: click.Context, csr: Path | None, device_id: str, label: str, model: str, out: Path | None,
                  print_subject: bool) -> None:
    """Issue a device certificate for CSR (PEM or DER), or print the subject the profile dictates."""
    cfg = load_config(ctx.obj.config_path())
    device = DeviceRef(device_id=device_id, label=label, model=model)
    if print_subject:
        click.echo(subject_for(cfg.profile, device).rfc4514_string())
        return
    if csr is None or out is None:
        raise UsageError("issue needs a CSR file and --out (or --print-subject)")
    try:
        data = csr.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read CSR {csr}: {exc.strerror}") from None
    with open_station(cfg) as station:
        try:
            issued = station.issuer.issue(data, device, operator="cli")
        except PolicyRefusal as refusal:
            # Every refusal is part of the record, not only those the line sees.
            station.audit.log_event("issuance-refused", operator="cli", device_id=device_id,
                                    data={"code": refusal.code, "reason": str(refusal), "csr_file": str(csr)})
            raise
        try:
            out.write_bytes(issued.pem)
        except OSError as exc:
            # The certificate is recorded as issued; mark it so QA sees it never left.
            station.audit.set_certificate_status(issued.serial, "undelivered", reason=f"cannot write {out}")
            raise EnvironmentProblem(f"cannot write {out}: {exc.strerror}") from None
        # Handed over: otherwise the next station start would take this finished command for
        # a crash and mark the certificate undelivered.
        station.audit.set_certificate_status(issued.serial, "delivered", reason=f"written to {out} by station issue")
    click.echo(f"issued serial {issued.serial:x} sha256 {issued.fingerprint_sha256} -> {out}")
