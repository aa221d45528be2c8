"""Run under `umockdev-wrapper` by test_slots.py: `learn_slots` on real libudev while an
operator (this script) plugs a board into each slot when asked and pulls it out again.

    umockdev-wrapper python tests/discovery/learn_child.py CONFIG

CONFIG (a copy of the example station.toml) gets the learned slot map written into it."""
from __future__ import annotations

import sys
import threading
from pathlib import Path

from station.config import load_config
from station.discovery.slots import learn_slots, write_slot_map
from station.discovery.udev import UdevSource
from testbed import MockedUsbDevice, new_testbed  # beside this file


def main(config_path: str) -> None:
    path = Path(config_path)
    discovery = load_config(path).discovery
    testbed = new_testbed()
    # Already plugged in when learning starts (a console cable, a board left over): not taken.
    MockedUsbDevice(testbed, "usb-cp210x-unmapped.umockdev").plug()
    # The operator's hands: the Espressif board goes into the first slot asked for, the Nordic
    # one into the second (on USB ports 2 and 1: slot numbers need not follow port numbers).
    in_hand = [MockedUsbDevice(testbed, "usb-espressif-slot2.umockdev"),
               MockedUsbDevice(testbed, "usb-nordic-slot1.umockdev")]
    plugged: list[MockedUsbDevice] = []
    done: list[threading.Thread] = []

    def operator(message: str) -> None:
        print(message, flush=True)
        if message.startswith("plug a device into"):
            board = in_hand.pop(0)
            plugged.append(board)
            done.append(threading.Timer(0.2, board.plug))
        elif message.endswith("unplug it"):
            # The station may see the board before plug() returned: finish plugging first.
            done[-1].join()
            done.append(threading.Timer(0.2, plugged.pop().unplug))
        done[-1].start()

    source = UdevSource(discovery)
    slots = learn_slots(source.present, discovery, ["slot1", "slot2"], tell=operator, timeout_s=20)
    write_slot_map(path, slots)


if __name__ == "__main__":
    main(*sys.argv[1:])
