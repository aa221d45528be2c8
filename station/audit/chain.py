"""The canonical encoding and hashing of the event log (docs/audit.md, "Canonical encoding").

Kept free of SQLite so an offline verifier (QA, a script in another language) can follow the
same rules from the document alone.
"""
from __future__ import annotations

import hashlib
import json
import re
from json.encoder import encode_basestring
from datetime import datetime, timezone
from enum import Enum
from pathlib import PurePath

GENESIS_HASH = "0" * 64

# Every column of `events` except `hash`, in no particular order: the encoding sorts keys.
HASHED_COLUMNS = (
    "id", "ts", "station_id", "kind", "operator", "batch_id", "slot", "device_id", "data",
    "prev_hash",
)

# The hashed columns in canonical (sorted) order: the order a verifier selects them in to fill
# PLAIN_ROW.
CANONICAL_ORDER = tuple(sorted(HASHED_COLUMNS))

# A text value json.dumps writes unchanged between quotes has none of these (the escaped set,
# json.encoder.ESCAPE: `"`, `\`, control characters; non-ASCII is kept).
NEEDS_ESCAPE = re.compile(r'[\x00-\x1f\\"]')

# canonical_json of an events row as one %-format over its values in CANONICAL_ORDER, for the
# common row: `id` an int, `data` passed already escaped (encode_basestring), every other
# value a str in which NEEDS_ESCAPE finds nothing. Any other row must take event_hash: the
# template would write a NULL as "None" and bytes as "b'..'". Tests check it against
# canonical_json.
PLAIN_ROW = "".join(
    ("{" if i == 0 else ",") + json.dumps(column) + ":"
    + ("%d" if column == "id" else "%s" if column == "data" else '"%s"')
    for i, column in enumerate(CANONICAL_ORDER)) + "}"


def _plain(value):
    """The JSON form of the few non-JSON types engine events carry; anything else is refused
    rather than logged as an unreadable repr."""
    if isinstance(value, datetime):
        return utc_timestamp(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def canonical_json(value) -> bytes:
    """UTF-8 JSON with sorted keys and no whitespace. NaN/Infinity are refused (not JSON).
    datetimes become UTC timestamps, enums their value, paths text, bytes hex, sets sorted
    lists."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=_plain).encode("utf-8")


def event_hash(row: dict) -> str:
    """SHA-256 (lowercase hex) over the canonical JSON of the row's hashed columns, exactly as
    stored: `data` is hashed as its stored text, not re-parsed, so any byte change shows."""
    text = _row_json(row)
    if text is None:  # a value of another type (only in a damaged or forged row)
        return hashlib.sha256(canonical_json({c: row[c] for c in HASHED_COLUMNS})).hexdigest()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# The hashed columns in canonical (sorted) order, each with the text before its value.
_ROW_KEYS = tuple((("{" if i == 0 else ",") + json.dumps(column) + ":", column)
                  for i, column in enumerate(CANONICAL_ORDER))


def _row_json(row: dict) -> str | None:
    """canonical_json of an events row whose values are text, integers or NULL, built from the
    same pieces json.dumps uses (its C string encoder) without its general machinery: the
    hash is computed for every event written and every event verified. None for any other
    value type; tests check it against canonical_json."""
    parts = []
    for prefix, column in _ROW_KEYS:
        value = row[column]
        if value is None:
            parts.append(prefix + "null")
        elif type(value) is str:
            parts.append(prefix + encode_basestring(value))
        elif type(value) is int:
            parts.append(prefix + int.__repr__(value))
        else:
            return None
    parts.append("}")
    return "".join(parts)


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 UTC with microseconds and a Z: 2026-11-23T12:21:36.123456Z. A naive datetime
    is taken as UTC (cryptography's legacy not_valid_* attributes are naive UTC)."""
    if moment is None:
        moment = datetime.now(timezone.utc)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def serial_hex(serial: int) -> str:
    """Certificate serials are stored as lowercase hex without leading zeros: a positive DER
    INTEGER of at most 20 octets (RFC 5280) does not fit SQLite's 64-bit INTEGER."""
    if not isinstance(serial, int) or isinstance(serial, bool) or not 0 < serial < 2**159:
        raise ValueError(f"certificate serial must be a positive integer below 2**159, got {serial!r}")
    return format(serial, "x")
