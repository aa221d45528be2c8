"""Showing text that came from outside (the command line, a manifest, a device) on a terminal.

A batch id, a label or a device-reported id can carry control characters: an ANSI escape
sequence would recolour, move or hide what the operator reads, and a newline would forge a
second output line. Everything user- or device-supplied that is printed passes through
`printable` first.
"""
from __future__ import annotations


def printable(text: str) -> str:
    """`text` with every non-printable character (C0/C1 controls, DEL, newline, tab,
    bidirectional overrides, ...) written as its Python backslash escape, so `\\x1b[31m`
    shows as those characters instead of turning the terminal red. Printable text,
    non-ASCII letters included, is unchanged."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def shown(value: str, limit: int = 40) -> str:
    """A user-supplied value quoted for a message: escaped, and cut at `limit` characters so a
    128 KiB field does not become a 128 KiB error line."""
    cut = value if len(value) <= limit else value[:limit] + "..."
    return f"'{printable(cut)}'"
