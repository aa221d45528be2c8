"""Which device the station takes, and in which slot: a pure function over a udev property
dictionary and the [discovery] configuration. No I/O, so it is tested with property sets taken
from real devices, and the udev source, `station devices` and the rules generator agree."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from station.config import DiscoveryConfig


@dataclass(frozen=True)
class SerialDevice:
    """One serial port a source reports. `slot` is set for a device the station may provision;
    otherwise `ignored` says why it is left alone."""

    port: str
    """What the transport opens: a device node (/dev/ttyACM0) or a pyserial URL."""
    id_path: str | None = None
    """The physical USB port (udev ID_PATH): stable whatever device is plugged in."""
    vendor_id: str | None = None
    product_id: str | None = None
    serial: str | None = None
    """The USB serial number (ID_SERIAL_SHORT), if the device has one."""
    model: str | None = None
    """The USB product name, for people (ID_MODEL)."""
    key: str | None = None
    """What identifies this port while it exists (the sysfs path for udev); defaults to port."""
    slot: str | None = None
    ignored: str | None = None
    tagged: bool = False
    """The station's udev rules matched it (tag "cert-station"): ModemManager keeps off."""

    @property
    def usb_id(self) -> str | None:
        return f"{self.vendor_id}:{self.product_id}" if self.vendor_id and self.product_id else None

    @property
    def ident(self) -> str:
        return self.key or self.port


RULES_TAG = "cert-station"  # the tag station/discovery/rules.py adds to allowlisted devices


def _prop(props: Mapping[str, str], *names: str) -> str | None:
    # udev >= 251 also exports ID_USB_* copies; either spelling names the same USB descriptor.
    for name in names:
        value = props.get(name)
        if value:
            return value
    return None


def usb_identity(props: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    """(vendor id, product id, serial number) from udev properties, ids lower-case."""
    vendor = _prop(props, "ID_VENDOR_ID", "ID_USB_VENDOR_ID")
    product = _prop(props, "ID_MODEL_ID", "ID_USB_MODEL_ID")
    serial = _prop(props, "ID_SERIAL_SHORT", "ID_USB_SERIAL_SHORT")
    return (vendor.lower() if vendor else None, product.lower() if product else None, serial)


def allowlisted(config: DiscoveryConfig, vendor: str | None, product: str | None,
                serial: str | None) -> str | None:
    """None if the ids (and serial) are allowed, else the reason they are not."""
    if not vendor or not product:
        return "no USB vendor/product id"
    if f"{vendor}:{product}" not in config.allow and f"{vendor}:*" not in config.allow:
        return f"{vendor}:{product} is not in [discovery] allow"
    if config.serial_patterns:
        if not serial:
            return "no USB serial number ([discovery] serial_patterns requires one)"
        if not any(fnmatchcase(serial, pattern) for pattern in config.serial_patterns):
            return f"serial number {serial} matches none of [discovery] serial_patterns"
    return None


def classify(props: Mapping[str, str], config: DiscoveryConfig) -> SerialDevice:
    """Describe the tty udev reports with `props`: its slot if the station takes it, otherwise
    why it is ignored. Order of the checks: USB at all, allowlist, serial pattern, slot."""
    vendor, product, serial = usb_identity(props)
    id_path = props.get("ID_PATH") or None
    device = dict(port=props.get("DEVNAME", "?"), id_path=id_path, vendor_id=vendor, product_id=product,
                  serial=serial, model=_prop(props, "ID_MODEL", "ID_USB_MODEL"), key=props.get("DEVPATH"),
                  tagged=RULES_TAG in props.get("TAGS", "").split(":"))
    is_usb = props.get("ID_BUS") == "usb" or ("ID_BUS" not in props and "ID_USB_DRIVER" in props)
    if not is_usb:
        return SerialDevice(**device, ignored="not a USB device")
    reason = allowlisted(config, vendor, product, serial)
    if reason is None:
        if not id_path:
            reason = "no physical port path (ID_PATH) known"
        else:
            slot = config.slot_for(id_path)
            if slot is not None:
                return SerialDevice(**device, slot=slot)
            reason = f"physical port {id_path} is not a slot in [discovery] slots"
    return SerialDevice(**device, ignored=reason)
