"""The events row hash's fast encoding (station/audit/chain.py `_row_json`) is exactly the
documented canonical JSON (sorted keys, no whitespace, UTF-8, non-ASCII kept) for every row of
text, integers and NULLs; other value types take the general path."""
from __future__ import annotations

import hashlib

from hypothesis import given, strategies as st

from station.audit.chain import HASHED_COLUMNS, _row_json, canonical_json, event_hash

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))  # no lone surrogates
VALUE = st.one_of(st.none(), TEXT, st.integers(min_value=-2**63, max_value=2**63 - 1))


def reference(row: dict) -> str:
    return hashlib.sha256(canonical_json({c: row[c] for c in HASHED_COLUMNS})).hexdigest()


@given(st.fixed_dictionaries({c: VALUE for c in HASHED_COLUMNS}))
def test_fast_row_encoding_is_the_canonical_json(row):
    assert _row_json(row).encode("utf-8") == canonical_json(row)
    assert event_hash(row) == reference(row)


@given(st.fixed_dictionaries({c: st.one_of(VALUE, st.floats(allow_nan=False, allow_infinity=False), st.booleans())
                              for c in HASHED_COLUMNS}))
def test_other_value_types_hash_as_the_canonical_json_too(row):
    assert event_hash(row) == reference(row)


def test_a_known_row_keeps_its_hash():
    row = {"id": 1, "ts": "2026-11-23T12:00:00.000000Z", "station_id": "line1", "kind": "scan",
           "operator": None, "batch_id": "WO-1", "slot": "S1", "device_id": "0123456789ABCDEF",
           "data": '{"label":"é\\"x"}', "prev_hash": "0" * 64}
    assert event_hash(row) == reference(row)
