"""The table of top-level commands. Adding a command = one line in COMMANDS.

Command modules are imported only when their command runs (`station --version` and
`station --help` import none of them: importing all of them, with cryptography, sqlite-utils
and the HSM layer behind them, made start-up several times slower than Python itself). So the
one-line help `station --help` shows sits here, beside the target; a test checks it against
the command's own docstring.
"""
from __future__ import annotations

# name -> ("module:attribute" of the click command, its one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("station.cli.init:init_command",
             "Create a working development station: private SoftHSM2 token, CA keys, station.toml."),
    "ca": ("station.cli.ca:ca_group",
           "The issuing CA: show, export the chain, production CSR and import."),
    "issue": ("station.cli.issue:issue_command",
              "Issue a device certificate for CSR (PEM or DER), or print the subject the profile dictates."),
    "bench": ("station.cli.bench:bench_group", "Benchmarks."),
    "audit": ("station.cli.audit:audit_group", "The chain-of-custody audit database."),
    "run": ("station.cli.run:run_command",
            "Open the operator terminal on the configured line; with --headless, provision the devices "
            "on the given ports as one batch: one line per device, then a summary."),
    "demo": ("station.cli.demo:demo_command",
             "Run the whole product on embedded defaults: SoftHSM2 token, simulated devices, local SQLite."),
    "sim": ("station.cli.sim:sim_command",
            "Run simulated devices on pseudo-terminals; one port path per line on stdout."),
    "conformance": ("station.cli.conformance:conformance",
                    "Check the device on PORT (a path or a pyserial URL such as socket://host:4000) "
                    "against the provisioning protocol."),
    "devices": ("station.cli.devices:devices_command",
                "List the USB serial devices present now and what the station does with each."),
    "slots": ("station.cli.slots:slots_group", "The fixture slots and the physical USB ports they are."),
    "udev": ("station.cli.udev:udev_group",
             "udev rules for the allowlisted devices (ModemManager off, slot symlinks, group)."),
    "aws": ("station.cli.aws:aws_group",
            "AWS IoT Just-In-Time Provisioning: template and CA registration documents."),
}

# Commands registered already imported (click objects), beside the table.
ALL: list = []
