"""The batch panel: work order, model, operator, done / failed / remaining of expected, yield,
devices per hour, elapsed time and the audit head."""
from __future__ import annotations

from rich.table import Table
from textual.widget import Widget

from station.operator.i18n import _
from station.operator.model import LineModel


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _short_head(head: str) -> str:
    event_id, sep, digest = head.partition(":")
    return f"{event_id}:{digest[:12]}" if sep else "-"


def panel_rows(model: LineModel, now: float) -> list[tuple[str, str]]:
    rows = [(_("Operator"), model.operator or _("(scan badge)"))]
    batch = model.batch
    if batch is None:
        rows.append((_("Work order"), _("(scan work order)")))
    else:
        expected = "?" if batch.expected is None else str(batch.expected)
        rows += [
            (_("Work order"), batch.batch_id),
            (_("Model"), batch.model),
            (_("Done"), f"[green]✔ {batch.passed}[/]  [red]✘ {batch.failed}[/]  / {expected}"),
            (_("Remaining"), "?" if batch.remaining is None else str(batch.remaining)),
            (_("Yield"), "-" if batch.yield_pct is None else f"{batch.yield_pct:.1f} %"),
            (_("Per hour"), f"{batch.devices_per_hour(now):.0f}"),
            (_("Elapsed"), _clock(batch.elapsed(now))),
        ]
        if batch.closed:
            rows.append((_("Batch"), _("left open") if batch.left_open else _("closed")))
    rows.append((_("Audit head"), _short_head(model.audit_head)))
    return rows


class BatchPanel(Widget):
    """Render-only (see SlotBody): new figures repaint the panel without a layout pass."""

    _shown: list = []
    _table: Table | None = None

    def render(self) -> Table | str:
        return self._table if self._table is not None else ""

    def show(self, model: LineModel, now: float) -> None:
        rows = panel_rows(model, now)
        if rows == self._shown:
            return  # unchanged: no repaint
        self._shown = rows
        table = Table.grid(padding=(0, 1))
        table.add_column(style="dim", no_wrap=True, min_width=10)
        table.add_column(no_wrap=True, overflow="ellipsis")
        for row in rows:
            table.add_row(*row)
        self._table = table
        self.refresh()
