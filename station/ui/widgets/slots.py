"""The fixture slots: one tile per slot (slot number large, device, label, step with a
progress bar, elapsed time, result), or one line per slot when the tiles do not fit (80x24).

State is never shown by colour alone: every state has its symbol and its word.
"""
from __future__ import annotations

from math import ceil

from rich import box
from rich.console import RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container
from textual.renderables.digits import Digits as DigitsRenderable
from textual.widget import Widget

from station.operator.i18n import _
from station.operator.model import SlotView

TILE_WIDTH = 28  # a tile needs this many columns ...
TILE_HEIGHT = 7  # ... and rows, borders included
BAR_WIDTH = 10


# Border and word colour per state (the symbol and the word say it too).
COLOURS = {"-pass": "green", "-fail": "red", "-wait": "yellow", "-override": "yellow", "-busy": "cyan",
           "-empty": "grey50"}


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def status(slot: SlotView) -> tuple[str, str, str]:
    """(css class, symbol, word) of the slot's state."""
    if slot.needs_override:
        return "-override", "⚠", _("SUPERVISOR")
    if slot.result == "PASS":
        return "-pass", "✔", _("PASS")
    if slot.result == "FAIL":
        return "-fail", "✘", _("FAIL")
    if slot.state == "waiting-label":
        return "-wait", "▶", _("SCAN LABEL")
    if slot.state == "busy":
        return "-busy", "●", _("WORKING")
    return "-empty", "·", _("empty")


def _seconds(slot: SlotView, now: float) -> str:
    # Whole seconds while the device runs (a tile then changes once a second, not at every
    # frame); tenths once it ended.
    if slot.duration_s is not None:
        return f"{slot.duration_s:.1f} s"
    elapsed = slot.elapsed(now)
    return "" if elapsed is None else f"{elapsed:.0f} s"


def _step(slot: SlotView) -> str:
    if not slot.step:
        return ""
    return _("{step} {k}/{n}").format(step=_(slot.step), k=min(slot.step_index + 1, slot.step_count),
                                      n=slot.step_count)


def _explain(slot: SlotView) -> str:
    if slot.needs_override:
        return _("already provisioned: scan a supervisor badge to re-provision")
    if slot.result == "FAIL":
        return (_("at {step}: {reason}").format(step=_(slot.step), reason=slot.reason or "") if slot.step
                else slot.reason or "")
    return ""


def tile_text(slot: SlotView, now: float) -> Text:
    _cls, symbol, word = status(slot)
    text = Text()
    text.append(f"{symbol} {word}\n", style=f"bold {COLOURS[_cls]}")
    text.append(f"{slot.device_id or ''}\n")
    if slot.label:
        text.append(f"{slot.label}\n")
    explain = _explain(slot)
    if explain:
        text.append(explain)
    elif slot.state != "empty":
        text.append(f"{_step(slot):<12} {bar(slot.progress)}\n{_seconds(slot, now)}")
    return text


def line_text(slot: SlotView, now: float) -> Text:
    """One line: what matters most first (the state or step), the device last."""
    _cls, symbol, word = status(slot)
    text = Text(overflow="fold")
    text.append(f"{slot.name:>3} {symbol} ", style="bold")
    device = (slot.device_id or "")[:12]
    if slot.state == "empty":
        text.append(word)
    elif slot.result == "FAIL" or slot.needs_override:
        # The reason matters more than the device id here (the log has both): it may take a
        # second line.
        text.append(f"{word} ", style="bold")
        text.append(_explain(slot))
    elif slot.result == "PASS":
        text.append(f"{word} ", style="bold")
        text.append(f"{slot.label or ''}  {device}  {_seconds(slot, now)}")
    elif slot.state == "waiting-label":
        text.append(f"{word} ", style="bold")
        text.append(device)
    else:
        text.append(f"{device} ")
        text.append(f"{_step(slot):<11}", style="bold")
        text.append(f" {bar(slot.progress, 7)} {_seconds(slot, now):>6}")
    return text


class SlotTile(Widget):
    """One slot, drawn whole by `render` (border, large number, words): a state change only
    repaints this tile. CSS classes or a Static's update would restyle or re-lay out the
    screen, which costs the line time on a busy fixture."""

    def __init__(self, slot: SlotView) -> None:
        super().__init__(id=f"slot-{slot.name}")
        self.slot = slot
        self.compact = False
        self._text = Text()
        self._shown: tuple | None = None

    def show(self, slot: SlotView, now: float, compact: bool) -> None:
        self.slot, self.compact = slot, compact
        text = line_text(slot, now) if compact else tile_text(slot, now)
        # A compact FAIL takes a second line for its reason; a tile is always as high.
        height = (2 if slot.result == "FAIL" or slot.needs_override else 1) if compact else TILE_HEIGHT
        if self._shown is not None and self._shown[:2] == (text, compact):
            return  # unchanged: nothing to repaint
        relayout = self._shown is None or self._shown[2] != height
        self._shown = (text, compact, height)
        self._text = text
        if relayout:
            self.styles.height = height
        self.refresh(layout=relayout)

    def render(self) -> RenderableType:
        colour = COLOURS[status(self.slot)[0]]
        if self.compact:
            return Text.assemble(self._text, style=colour if self.slot.state != "busy" else "")
        number = self.slot.name.lstrip("S") or self.slot.name
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(no_wrap=True)
        grid.add_column(ratio=1)
        grid.add_row(DigitsRenderable(number, style=f"bold {colour}"), self._text)
        return Panel(grid, box=box.ROUNDED, border_style=colour, padding=0)


class SlotGrid(Container):
    """All the slots; switches to one line per slot when the tiles do not fit."""

    def __init__(self, slots: list[SlotView], **kwargs) -> None:
        super().__init__(**kwargs)
        self._initial = slots
        self.compact = False
        self._last: tuple | None = None

    def compose(self) -> ComposeResult:
        for slot in self._initial:
            yield SlotTile(slot)

    def on_resize(self) -> None:
        self.fit()

    def fit(self) -> None:
        count = max(1, len(self.children))
        width, height = self.size.width, self.size.height
        columns = max(1, width // TILE_WIDTH)
        compact = ceil(count / columns) * TILE_HEIGHT > height
        changed = compact != self.compact
        self.compact = compact
        self.set_class(compact, "compact")
        self.styles.grid_size_columns = 1 if compact else min(columns, count)
        if changed and self._last is not None:
            self.show(*self._last)  # the tiles take the new layout now, not at the next tick

    def show(self, slots: dict[str, SlotView], now: float) -> None:
        self._last = (slots, now)
        tiles = {tile.slot.name: tile for tile in self.query(SlotTile)}
        for name, slot in slots.items():
            tile = tiles.get(name)
            if tile is not None:
                tile.show(slot, now, self.compact)
