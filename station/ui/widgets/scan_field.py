"""The scan field: a barcode scanner types into it like a keyboard and ends with Enter.

It keeps the focus. A key bound to an action (q, ?) acts only while the field is empty, so a
scanned code is never mistaken for a command; the code arrives as one `Scanned` message.
"""
from __future__ import annotations

from textual import events
from textual.widgets import Input

from station.operator.i18n import _
from station.ui.messages import Scanned

# Keys that act on an empty field instead of being typed (the App's bindings name them).
EMPTY_FIELD_ACTIONS = {"q": "request_quit", "question_mark": "help"}


class ScanField(Input):
    def __init__(self, **kwargs) -> None:
        super().__init__(placeholder=_("Scan here (badge, work order, label)"), **kwargs)
        self.cursor_blink = False  # a steady cursor: the field always has the focus

    def check_consume_key(self, key: str, character: str | None) -> bool:
        # Lets the footer show q and ? as the actions they are on an empty field.
        if key in EMPTY_FIELD_ACTIONS and not self.value:
            return False
        return super().check_consume_key(key, character)

    async def _on_key(self, event: events.Key) -> None:
        action = EMPTY_FIELD_ACTIONS.get(event.key)
        if action and not self.value:
            event.stop()
            event.prevent_default()
            await self.app.run_action(action)
            return
        await super()._on_key(event)

    async def action_submit(self) -> None:
        text, self.value = self.value, ""
        if text.strip():
            self.post_message(Scanned(text.strip()))

    def on_blur(self) -> None:
        # Nothing else on the main screen takes the focus: a scan must never be lost.
        if self.screen is self.app.screen:
            self.call_after_refresh(self.focus)
