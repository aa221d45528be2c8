"""The matching function alone: property sets of real devices (CDC-ACM boards, FTDI, CP210x,
CH340; Nordic's and Espressif's ids) against an allowlist, serial patterns and a slot map."""
from __future__ import annotations

import pytest

from station.config import DiscoveryConfig
from station.discovery.matching import classify
from tests.discovery.conftest import tty_properties

SLOT1 = "pci-0000:00:14.0-usb-0:1:1.0"
SLOT2 = "pci-0000:00:14.0-usb-0:2:1.0"
CONFIG = DiscoveryConfig(allow=("1915:521f", "303a:1001", "10c4:ea60"), slots={"slot1": SLOT1, "slot2": SLOT2})


def test_allowlisted_devices_in_mapped_ports_get_their_slots():
    nordic = classify(tty_properties("usb-nordic-slot1"), CONFIG)
    esp = classify(tty_properties("usb-espressif-slot2"), CONFIG)
    assert (nordic.slot, nordic.ignored, nordic.port, nordic.usb_id, nordic.serial) == \
        ("slot1", None, "/dev/ttyACM0", "1915:521f", "E1A2B3C4D5E6")
    assert (esp.slot, esp.id_path, esp.serial) == ("slot2", SLOT2, "F4:12:FA:4E:2A:10")


@pytest.mark.parametrize("fixture, reason", [
    ("usb-ftdi-console", "0403:6001 is not in [discovery] allow"),
    ("usb-ch340-unmapped", "1a86:7523 is not in [discovery] allow"),
    ("usb-cp210x-unmapped", "physical port pci-0000:00:14.0-usb-0:5:1.0 is not a slot in [discovery] slots"),
])
def test_everything_else_is_ignored_with_the_reason(fixture, reason):
    device = classify(tty_properties(fixture), CONFIG)
    assert device.slot is None and device.ignored == reason


def test_the_slot_follows_the_physical_port_not_the_device_node():
    props = dict(tty_properties("usb-nordic-slot1"), DEVNAME="/dev/ttyACM7")
    assert classify(props, CONFIG).slot == "slot1"
    props = dict(tty_properties("usb-nordic-slot1"), ID_PATH=SLOT2)
    assert classify(props, CONFIG).slot == "slot2"


def test_vendor_wildcard_and_case():
    config = DiscoveryConfig(allow=("303a:*",), slots={"s": SLOT2})
    props = dict(tty_properties("usb-espressif-slot2"), ID_VENDOR_ID="303A", ID_MODEL_ID="4001")
    assert classify(props, config).slot == "s"


def test_serial_patterns_and_devices_without_a_serial():
    config = DiscoveryConfig(allow=("1915:521f", "1a86:7523"), serial_patterns=("E1*",),
                             slots={"slot1": SLOT1, "slot4": "pci-0000:00:14.0-usb-0:4:1.0"})
    assert classify(tty_properties("usb-nordic-slot1"), config).slot == "slot1"
    other = dict(tty_properties("usb-nordic-slot1"), ID_SERIAL_SHORT="ZZ99", ID_USB_SERIAL_SHORT="ZZ99")
    assert classify(other, config).ignored == "serial number ZZ99 matches none of [discovery] serial_patterns"
    assert classify(tty_properties("usb-ch340-unmapped"), config).ignored == \
        "no USB serial number ([discovery] serial_patterns requires one)"


def test_ids_from_the_id_usb_spelling_alone():
    # udev >= 251 exports ID_USB_* copies; some rules stacks clear the older names.
    props = {k: v for k, v in tty_properties("usb-nordic-slot1").items()
             if k not in ("ID_VENDOR_ID", "ID_MODEL_ID", "ID_SERIAL_SHORT")}
    device = classify(props, CONFIG)
    assert (device.usb_id, device.serial, device.slot) == ("1915:521f", "E1A2B3C4D5E6", "slot1")


def test_non_usb_and_portless_devices():
    assert classify({"DEVNAME": "/dev/ttyS0", "SUBSYSTEM": "tty"}, CONFIG).ignored == "not a USB device"
    props = {k: v for k, v in tty_properties("usb-nordic-slot1").items() if k != "ID_PATH"}
    assert classify(props, CONFIG).ignored == "no physical port path (ID_PATH) known"


def test_nothing_is_taken_without_an_allowlist():
    device = classify(tty_properties("usb-nordic-slot1"), DiscoveryConfig(slots={"slot1": SLOT1}))
    assert device.slot is None and "not in [discovery] allow" in device.ignored


def test_the_rules_tag_is_read_from_the_properties():
    props = dict(tty_properties("usb-nordic-slot1"), TAGS=":systemd:cert-station:")
    assert classify(props, CONFIG).tagged and not classify(tty_properties("usb-nordic-slot1"), CONFIG).tagged
