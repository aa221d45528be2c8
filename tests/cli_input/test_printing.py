"""Text from operators, manifests and devices reaches the terminal escaped: an ANSI sequence
or a newline in a device id or batch id cannot recolour the screen or forge an output line."""
from __future__ import annotations

import io

from station.engine.events import DeviceFailed, DevicePassed
from station.headless import HeadlessPrinter, RunSummary
from station.text import printable, shown


def test_printable_escapes_controls_and_keeps_printable_text():
    assert printable("LBL-0001 Grüße") == "LBL-0001 Grüße"
    assert printable("\x1b[2J\r\n\t\x7f\u202e") == r"\x1b[2J\r\n\t\x7f\u202e"
    assert shown("A" * 50, limit=4) == "'AAAA...'"


def test_the_headless_printer_escapes_what_devices_report():
    out = io.StringIO()
    printer = HeadlessPrinter(out)
    printer(DeviceFailed(slot="S1", device_id="\x1b[2JAA01", step="identify",
                         reason="bad identity\nPASS slot=S1 device=FORGED"))
    printer(DevicePassed(slot="S2", device_id="BB02", label="L\x1b[31m2", serial_hex="01",
                         fingerprint_sha256="00", duration_s=0.5))
    lines = out.getvalue().splitlines()
    assert lines == [
        r"FAIL slot=S1 device=\x1b[2JAA01 step=identify reason=bad identity\nPASS slot=S1 device=FORGED",
        r"PASS slot=S2 device=BB02 label=L\x1b[31m2 serial=01 time=0.50s",
    ]


def test_the_run_summary_escapes_the_batch_id_and_halt_reason():
    summary = RunSummary(batch_id="WO\x1b[8m", passed=1, failed=0, database="/tmp/a.db", elapsed_s=1.0,
                         halted="disk\x07full")
    line = summary.line()
    assert line.startswith(r"batch WO\x1b[8m: 1 passed") and line.endswith(r"HALTED: disk\x07full")
