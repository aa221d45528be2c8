"""Delivers engine events to subscribers, in order, on the publishing thread.

Subscribers must be quick and thread-safe: the headless printer writes a line under a lock,
the UI posts a message to its own loop (post_message is thread-safe). A subscriber that
raises is reported once and dropped, so a broken display can never stop a line.
"""
from __future__ import annotations

import sys
import threading
from typing import Callable

from station.engine.events import Event

Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    def publish(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception as exc:  # isolate the line from a broken consumer
                print(f"station: event subscriber {subscriber!r} failed ({type(exc).__name__}: {exc}); "
                      "it is detached", file=sys.stderr)
                self.unsubscribe(subscriber)
