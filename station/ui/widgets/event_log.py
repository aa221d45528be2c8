"""The scrolling event log: what the model logged, newest at the bottom."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from station.operator.model import LineModel

STYLES = {"pass": "green", "fail": "bold red", "warn": "yellow", "info": ""}
MARKS = {"pass": "✔", "fail": "✘", "warn": "!", "info": " "}


class EventLog(RichLog):
    can_focus = False

    def __init__(self, **kwargs) -> None:
        super().__init__(wrap=True, markup=False, max_lines=1000, **kwargs)
        self._shown = 0  # sequence number of the newest entry written

    def show(self, model: LineModel) -> None:
        for entry in model.log:
            if entry.seq > self._shown:
                self.write(Text(f"{MARKS[entry.level]} {entry.text}", style=STYLES[entry.level]))
                self._shown = entry.seq
