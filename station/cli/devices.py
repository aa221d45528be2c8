"""`station devices [--json]`: every USB serial device present now, with its port, physical
port, ids, serial number, and its slot or why it is ignored (docs/discovery.md)."""
from __future__ import annotations

import json

import click

from station.config import load_config
from station.discovery.udev import UdevSource


def device_row(device) -> dict:
    return {"port": device.port, "physical_port": device.id_path, "vendor_id": device.vendor_id,
            "product_id": device.product_id, "serial": device.serial, "model": device.model,
            "slot": device.slot, "ignored": device.ignored, "udev_rules": device.tagged}


@click.command("devices")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: {\"devices\": [...]}.")
@click.pass_context
def devices_command(ctx: click.Context, as_json: bool) -> None:
    """List the USB serial devices present now and what the station does with each."""
    cfg = load_config(ctx.obj.config_path())
    devices = UdevSource(cfg.discovery).present()
    if as_json:
        click.echo(json.dumps({"devices": [device_row(d) for d in devices]}, sort_keys=True))
        return
    if not devices:
        click.echo("no USB serial devices")
        return
    for d in devices:
        verdict = f"slot: {d.slot}" if d.slot else f"ignored: {d.ignored}"
        if d.slot and not d.tagged:
            verdict += " (udev rules not installed: ModemManager may probe it; see `station udev install`)"
        click.echo(f"{d.port:<14} {d.id_path or '-':<32} {d.usb_id or '-':<10} {d.serial or '-':<20} {verdict}")
