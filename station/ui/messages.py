"""Messages the UI's widgets and workers send up to the app, named for what happened."""
from __future__ import annotations

from textual.message import Message

from station.engine.events import Event


class EventArrived(Message):
    """An engine or session event, posted from whichever thread published it (post_message
    is thread-safe): the app folds it into the model on its own loop."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class Scanned(Message):
    """A scan arrived from a scan field or the serial scanner."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
