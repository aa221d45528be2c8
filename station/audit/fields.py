"""Value checks shared by the audit database's record modules: identifiers as TEXT, SHA-256
digests in canonical hex."""
from __future__ import annotations


def as_text(value) -> str | None:
    """Identifiers (slot, device, batch, operator) are stored as TEXT. SQLite would turn an int
    slot into text on the way in, and the hash, computed before, would then not match."""
    return None if value is None else str(value)


def hex_digest(value: str, what: str) -> str:
    text = (value or "").strip().lower().replace(":", "")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{what} must be a SHA-256 in hex (64 digits), got {value!r}")
    return text
