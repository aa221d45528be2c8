"""The reference device simulator (docs/simulator.md): the protocol state machine of a
device (device.py) over a flash folder (store.py), fault injection (faults.py), and the
server that puts devices on real pseudo-terminals (pty_server.py)."""
from station.sim.device import Device, Identity
from station.sim.faults import FaultSpec
from station.sim.pty_server import SimulatedLine

__all__ = ["Device", "FaultSpec", "Identity", "SimulatedLine"]
