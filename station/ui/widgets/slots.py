"""The fixture slots: one tile per slot (slot number large, device, label, step with a
progress bar, elapsed time, result), or one line per slot when the tiles do not fit (80x24).

State is never shown by colour alone: every state has its symbol and its word.
"""
from __future__ import annotations

from math import ceil

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container
from textual.widget import Widget
from textual.widgets import Digits

from station.operator.i18n import _
from station.operator.model import SlotView

TILE_WIDTH = 28  # a tile needs this many columns ...
TILE_HEIGHT = 7  # ... and rows, borders included
BAR_WIDTH = 10


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
    text.append(f"{symbol} {word}\n", style="bold")
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


class SlotBody(Widget):
    """The words of a tile. A render-only widget: new words repaint the tile without a layout
    pass over the whole screen (a Static's update would reflow every widget)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.text = Text()

    def render(self) -> Text:
        return self.text


class SlotTile(Widget):
    """One slot. Its CSS class follows the state (colour), its text says the state (words)."""

    def __init__(self, slot: SlotView) -> None:
        super().__init__(id=f"slot-{slot.name}", classes="-empty")
        self.slot = slot
        self.now = 0.0
        self.compact = False
        self._shown: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Digits(self.slot.name.lstrip("S") or self.slot.name, classes="number")
        yield SlotBody(classes="body")

    def show(self, slot: SlotView, now: float, compact: bool) -> None:
        self.slot, self.now, self.compact = slot, now, compact
        text = line_text(slot, now) if compact else tile_text(slot, now)
        if (text, compact) == self._shown:
            return  # unchanged: no layout, no repaint (a busy screen must not slow the line)
        relayout = self._shown is None or self._shown[1] != compact
        self._shown = (text, compact)
        cls = status(slot)[0]
        if not self.has_class(cls):
            for name in ("-pass", "-fail", "-wait", "-busy", "-empty", "-override"):
                self.set_class(name == cls, name)
            relayout = relayout or compact  # a compact FAIL line may take a second row
        body = self.query_one(SlotBody)
        body.text = text
        body.refresh(layout=relayout)


class SlotGrid(Container):
    """All the slots; switches to one line per slot when the tiles do not fit."""

    def __init__(self, slots: list[SlotView], **kwargs) -> None:
        super().__init__(**kwargs)
        self._initial = slots
        self.compact = False

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
        self.compact = compact
        self.set_class(compact, "compact")
        self.styles.grid_size_columns = 1 if compact else min(columns, count)

    def show(self, slots: dict[str, SlotView], now: float) -> None:
        tiles = {tile.slot.name: tile for tile in self.query(SlotTile)}
        for name, slot in slots.items():
            tile = tiles.get(name)
            if tile is not None:
                tile.show(slot, now, self.compact)
