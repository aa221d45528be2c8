"""Messages the UI's widgets and workers send up to the app, named for what happened."""
from __future__ import annotations

from textual.message import Message



class EventArrived(Message):
    """Engine or session events are waiting in the app's queue, published from whichever
    thread (post_message is thread-safe): the app folds them into the model on its loop."""


class Scanned(Message):
    """A scan arrived from a scan field or the serial scanner."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
