"""The HSM PIN, asked in a masked field when neither the variable nor the PIN file gives it.
The PIN goes to the token login and nowhere else; a wrong PIN is shown, never retried."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from station.operator.i18n import _


class PinScreen(ModalScreen[str]):
    AUTO_FOCUS = "#pin"

    def __init__(self, token: str, error: str | None = None) -> None:
        super().__init__()
        self.token, self.error = token, error

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(_("HSM PIN for token {token}").format(token=self.token), classes="title")
            if self.error:
                yield Label(self.error, classes="error")
            yield Input(password=True, id="pin", placeholder=_("PIN, then Enter"))
            yield Label(_("The line starts once the token accepts the PIN."), classes="dim")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value:
            self.dismiss(event.value)
