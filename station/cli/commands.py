"""The list of top-level commands. Adding a command group = one import and one entry here."""
from __future__ import annotations

from station.cli.audit import audit_group
from station.cli.aws import aws_group
from station.cli.bench import bench_group
from station.cli.ca import ca_group
from station.cli.conformance import conformance
from station.cli.demo import demo_command
from station.cli.devices import devices_command
from station.cli.init import init_command
from station.cli.issue import issue_command
from station.cli.run import run_command
from station.cli.sim import sim_command
from station.cli.slots import slots_group
from station.cli.udev import udev_group

ALL: list = []
ALL.append(init_command)
ALL.append(ca_group)
ALL.append(issue_command)
ALL.append(bench_group)
ALL.append(audit_group)
ALL.append(aws_group)
ALL.append(run_command)
ALL.append(demo_command)
ALL.append(sim_command)
ALL.append(conformance)
ALL.append(devices_command)
ALL.append(slots_group)
ALL.append(udev_group)
