"""The batch panel: work order, model, operator, done / failed / remaining of expected, yield,
devices per hour, elapsed time and the audit head."""
from __future__ import annotations

from rich.table import Table
from textual.widgets import Static

from station.operator.i18n import _
from station.operator.model import LineModel


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class BatchPanel(Static):
    def show(self, model: LineModel, now: float) -> None:
        table = Table.grid(padding=(0, 1))
        table.add_column(style="dim", no_wrap=True, min_width=10)
        table.add_column(no_wrap=True, overflow="ellipsis")
        batch = model.batch
        table.add_row(_("Operator"), model.operator or _("(scan badge)"))
        if batch is None:
            table.add_row(_("Work order"), _("(scan work order)"))
        else:
            expected = "?" if batch.expected is None else str(batch.expected)
            remaining = "?" if batch.remaining is None else str(batch.remaining)
            table.add_row(_("Work order"), batch.batch_id)
            table.add_row(_("Model"), batch.model)
            table.add_row(_("Done"), f"[green]✔ {batch.passed}[/]  [red]✘ {batch.failed}[/]  / {expected}")
            table.add_row(_("Remaining"), remaining)
            table.add_row(_("Yield"), "-" if batch.yield_pct is None else f"{batch.yield_pct:.1f} %")
            table.add_row(_("Per hour"), f"{batch.devices_per_hour(now):.0f}")
            table.add_row(_("Elapsed"), _clock(batch.elapsed(now)))
            if batch.closed:
                table.add_row(_("Batch"), _("left open") if batch.left_open else _("closed"))
        head = model.audit_head
        table.add_row(_("Audit head"), head.split(":")[0] + ":" + head.split(":")[1][:12] if ":" in head else "-")
        self.update(table)
