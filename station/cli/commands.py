"""The list of top-level commands. Adding a command group = one import and one entry here."""
from __future__ import annotations

ALL: list = []
