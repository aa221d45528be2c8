"""The event log: what the model logged, newest at the bottom, older lines scrolling off the
top. Render-only: a new line repaints this widget without a layout pass over the screen (a
RichLog's write re-lays out the whole screen, which costs the line time on a busy fixture).
The full history is the audit log's."""
from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from station.operator.model import LineModel

STYLES = {"pass": "green", "fail": "bold red", "warn": "yellow", "info": ""}
MARKS = {"pass": "✔", "fail": "✘", "warn": "!", "info": " "}


class EventLog(Widget):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._entries: list = []
        self._shown = 0  # sequence number of the newest entry shown

    def show(self, model: LineModel) -> None:
        newest = model.log[-1].seq if model.log else 0
        if newest != self._shown:
            self._shown = newest
            self._entries = list(model.log)[-100:]
            self.refresh()

    def render(self) -> Text:
        lines = self._entries[-max(1, self.size.height):]
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, entry in enumerate(lines):
            text.append(f"{MARKS[entry.level]} {entry.text}", style=STYLES[entry.level])
            if i < len(lines) - 1:
                text.append("\n")
        return text
