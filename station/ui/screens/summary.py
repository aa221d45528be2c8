"""Batch close: the counts, failures grouped by step and reason, and the audit head to write
down. It has its own scan field: the next work order can be scanned right here."""
from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from station.operator.i18n import _
from station.operator.model import BatchView
from station.ui.messages import Scanned
from station.ui.widgets.scan_field import ScanField


def failures_table(batch: BatchView) -> Table:
    table = Table(box=None, padding=(0, 1), expand=True)
    table.add_column(_("Step"), no_wrap=True)
    table.add_column(_("Reason"), ratio=1)
    table.add_column(_("Devices"), justify="right", no_wrap=True)
    for step, reason, count in batch.failures_by_cause():
        table.add_row(_(step), reason, str(count))
    return table


class BatchSummary(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", _("Close"))]
    AUTO_FOCUS = "#summary-scan"

    def __init__(self, batch: BatchView, now: float) -> None:
        super().__init__()
        self.batch, self.now = batch, now

    def compose(self) -> ComposeResult:
        b = self.batch
        state = _("left open (resume it by scanning it again)") if b.left_open else _("closed")
        with Vertical(id="dialog"):
            yield Label(_("Batch {batch}: {state}").format(batch=b.batch_id, state=state), classes="title")
            yield Label(_("✔ {passed} passed   ✘ {failed} failed   yield {yield_}   {rate:.0f} devices/h").format(
                passed=b.passed, failed=b.failed, yield_="-" if b.yield_pct is None else f"{b.yield_pct:.1f} %",
                rate=b.devices_per_hour(self.now)))
            if b.failures:
                yield Label(_("Failures by step and reason:"))
                yield Static(failures_table(b))
            yield Static(_("Audit head (write it down): {head}").format(head=b.audit_head or "-"), classes="head")
            if b.report:
                yield Static(_("Batch report: {path}").format(path=b.report))
            yield ScanField(id="summary-scan")

    def on_scanned(self, message: Scanned) -> None:
        # Hand the scan to the app once this screen is gone.
        message.stop()
        self.dismiss()
        self.app.post_message(Scanned(message.text))
