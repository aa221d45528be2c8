"""`q` while devices are in flight or a batch runs: y stops the line gently, n goes back."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

from station.operator.i18n import _


class ConfirmQuit(ModalScreen[bool]):
    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n", "answer(False)", "no"),
                Binding("escape", "answer(False)", "no", show=False)]

    def __init__(self, in_flight: int) -> None:
        super().__init__()
        self.in_flight = in_flight

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            title = (_("{n} device(s) in flight.").format(n=self.in_flight) if self.in_flight
                     else _("The line is running."))
            yield Label(title, classes="title")
            yield Label(_("Stop the line? They finish, nothing new starts, the batch stays open."))
            yield Label(_("y = stop and quit    n = carry on"), classes="keys")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
