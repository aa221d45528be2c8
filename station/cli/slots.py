"""`station slots show|learn`: the fixture slot map ([discovery] slots: slot -> physical USB
port), shown with what is plugged in now, or learned by plugging one device into each slot."""
from __future__ import annotations

import click

from station.config import load_config
from station.discovery.slots import learn_slots, write_slot_map
from station.discovery.udev import UdevSource
from station.errors import UsageError


@click.group("slots")
def slots_group() -> None:
    """The fixture slots and the physical USB ports they are."""


@slots_group.command("show")
@click.pass_context
def slots_show(ctx: click.Context) -> None:
    """Each slot, its physical port, and the device in it now."""
    cfg = load_config(ctx.obj.config_path())
    if not cfg.discovery.slots:
        click.echo("no slots: run `station slots learn`")
        return
    present = {d.id_path: d for d in UdevSource(cfg.discovery).present() if d.id_path}
    for slot, id_path in cfg.discovery.slots.items():
        device = present.get(id_path)
        now = f"{device.port} {device.usb_id} serial {device.serial or '-'}" if device else "empty"
        click.echo(f"{slot:<10} {id_path:<32} {now}")


@slots_group.command("learn")
@click.option("--count", type=click.IntRange(1, 64), required=True, help="How many slots the fixture has.")
@click.option("--prefix", default="slot", show_default=True, help="Slot names: PREFIX1, PREFIX2, ...")
@click.option("--timeout", "timeout_s", type=click.FloatRange(1, 3600), default=120.0, show_default=True,
              help="Seconds to wait for each device.")
@click.pass_context
def slots_learn(ctx: click.Context, count: int, prefix: str, timeout_s: float) -> None:
    """Plug a device into slot 1, 2, ... when asked; the slot map is written into station.toml
    (its comments kept)."""
    path = ctx.obj.config_path()
    cfg = load_config(path)
    if not cfg.discovery.allow:
        raise UsageError(f"{path}: [discovery] allow is empty: list the USB ids of your devices first")
    source = UdevSource(cfg.discovery, say=lambda m: click.echo(m, err=True))
    names = [f"{prefix}{i}" for i in range(1, count + 1)]
    slots = learn_slots(source.present, cfg.discovery, names, tell=click.echo, timeout_s=timeout_s)
    write_slot_map(path, slots)
    load_config(path)  # what was written must load
    click.echo(f"slot map written to {path} ([discovery] slots, {len(slots)} slots)")
