"""The canonical encoding is a published format (docs/audit.md): these pin it exactly, so an
offline verifier written from the document computes the same hashes."""
from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st
from json.encoder import encode_basestring

from station.audit.chain import (CANONICAL_ORDER, GENESIS_HASH, NEEDS_ESCAPE, PLAIN_ROW,
                                 canonical_json, event_hash, serial_hex, utc_timestamp)


def test_canonical_json_sorts_keys_has_no_whitespace_and_keeps_utf8():
    assert canonical_json({"b": 1, "a": [None, "é"], "c": {"y": 2, "x": 1}}) == \
        '{"a":[null,"é"],"b":1,"c":{"x":1,"y":2}}'.encode("utf-8")


def test_canonical_json_refuses_nan():
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_event_hash_is_sha256_of_documented_encoding():
    row = {"id": 1, "ts": "2026-01-02T03:04:05.000006Z", "station_id": "s", "kind": "k",
           "operator": None, "batch_id": None, "slot": None, "device_id": "d", "data": "{}",
           "prev_hash": GENESIS_HASH, "hash": "ignored"}
    text = ('{"batch_id":null,"data":"{}","device_id":"d","id":1,"kind":"k","operator":null,'
            f'"prev_hash":"{GENESIS_HASH}","slot":null,"station_id":"s",'
            '"ts":"2026-01-02T03:04:05.000006Z"}')
    assert event_hash(row) == hashlib.sha256(text.encode()).hexdigest()


def test_timestamps_are_utc_with_microseconds_and_z():
    paris = timezone(timedelta(hours=1))
    assert utc_timestamp(datetime(2026, 1, 1, 12, 0, 0, 5, tzinfo=paris)) == \
        "2026-01-01T11:00:00.000005Z"
    assert utc_timestamp(datetime(2026, 1, 1, 12, 0)) == "2026-01-01T12:00:00.000000Z"
    assert utc_timestamp().endswith("Z")


@pytest.fixture
def local_time_not_utc(monkeypatch):
    """A station PC whose local time zone is not UTC (every CI machine runs in UTC, which hides
    a local time written with a Z)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    assert time.timezone != 0
    yield
    monkeypatch.undo()
    time.tzset()


def test_timestamps_are_utc_whatever_the_local_time_zone(local_time_not_utc):
    assert utc_timestamp(datetime(2026, 1, 1, 12, 0)) == "2026-01-01T12:00:00.000000Z"  # naive = UTC
    assert utc_timestamp(datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)) == "2026-01-01T12:00:00.000000Z"
    now = datetime.now(timezone.utc)
    stamped = datetime.strptime(utc_timestamp(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert abs(stamped - now) < timedelta(minutes=1)


def test_a_value_that_is_not_json_is_refused_by_its_type_name():
    with pytest.raises(TypeError, match="^object is not JSON-serialisable$"):
        canonical_json({"x": object()})


@pytest.mark.parametrize("serial, text", [(1, "1"), (0xABC, "abc"), (2**159 - 1, "7" + "f" * 39)])
def test_serials_are_lowercase_hex(serial, text):
    assert serial_hex(serial) == text


@pytest.mark.parametrize("serial", [0, -1, 2**159, "12", True])
def test_serials_outside_rfc5280_are_refused(serial):
    with pytest.raises(ValueError, match="serial"):
        serial_hex(serial)


# -- verify's template for the common row (chain.PLAIN_ROW) -------------------------------

PRINTABLE_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))


@given(PRINTABLE_TEXT)
def test_needs_escape_finds_exactly_what_json_would_escape(text):
    assert (NEEDS_ESCAPE.search(text) is None) == (encode_basestring(text) == f'"{text}"')


@given(st.fixed_dictionaries({c: PRINTABLE_TEXT.filter(lambda t: NEEDS_ESCAPE.search(t) is None)
                              for c in CANONICAL_ORDER if c not in ("id", "data")}),
       st.integers(min_value=-2**63, max_value=2**63 - 1), PRINTABLE_TEXT)
def test_plain_row_template_writes_the_canonical_json(short, eid, data):
    row = {**short, "id": eid, "data": data}
    values = tuple(encode_basestring(data) if c == "data" else row[c] for c in CANONICAL_ORDER)
    assert (PLAIN_ROW % values).encode("utf-8") == canonical_json(row)


def test_canonical_order_is_the_sorted_hashed_columns():
    assert CANONICAL_ORDER == ("batch_id", "data", "device_id", "id", "kind", "operator",
                               "prev_hash", "slot", "station_id", "ts")
