"""What a device may say about itself in its HELLO answer (docs/protocol.md, HELLO): the
alphabet and length of every field, checked in this one place for the line (`cip.py`) and
the conformance kit alike, so a board the kit passes is a board the line accepts.

Every pattern is applied with `fullmatch`: `re.match` with `$` would let a trailing newline
through. The model and the id enter the certificate subject, so their alphabets lie inside
the certificate profile's (`A-Z a-z 0-9 : -`, station/profile.py): a model the line accepts
is one the profile can render, and an id is upper case only, so one chip can never appear
under two ids that differ in case.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from station.drivers.base import DeviceIdentity
from station.link.codec import MAX_FRAME, MIN_MTU, SUPPORTED_VERSIONS, DeviceState, Frame
from station.link.errors import DeviceProtocolError


@dataclass(frozen=True)
class FieldRule:
    pattern: re.Pattern[str]
    described: str  # completes "is not ..." in a refusal
    in_range: Callable[[str], bool] = lambda value: True  # after the pattern matched

    def problem(self, key: str, value: str) -> str | None:
        if self.pattern.fullmatch(value) and self.in_range(value):
            return None
        return f"HELLO field {key}={value!r} is not {self.described}"


_VERSION_TEXT = re.compile(r"[1-9][0-9]{0,4}")
_DEVICE_TEXT = re.compile(r"[A-Za-z0-9._+:-]{1,32}")
_DEVICE_TEXT_DESCRIBED = "1-32 characters of A-Z a-z 0-9 . _ + : -"

RULES: dict[str, FieldRule] = {
    "id": FieldRule(re.compile(r"[0-9A-F]{16}"), "16 upper-case hex digits (0-9 A-F)"),
    "model": FieldRule(re.compile(r"[A-Za-z0-9:-]{1,64}"),
                       "1-64 characters of A-Z a-z 0-9 : - (the certificate profile's alphabet)"),
    "hw": FieldRule(_DEVICE_TEXT, _DEVICE_TEXT_DESCRIBED),
    "fw": FieldRule(_DEVICE_TEXT, _DEVICE_TEXT_DESCRIBED),
    "state": FieldRule(re.compile("|".join(s.value for s in DeviceState)),
                       "one of " + ", ".join(s.value for s in DeviceState)),
    "mtu": FieldRule(re.compile(r"[1-9][0-9]{2}"), f"a decimal {MIN_MTU}..{MAX_FRAME}",
                     lambda value: MIN_MTU <= int(value) <= MAX_FRAME),
    "keys": FieldRule(re.compile(r"[A-Z0-9-]{1,16}(,[A-Z0-9-]{1,16})*"),
                      "a comma-separated list of key types (A-Z 0-9 -)"),
    "keygen_s": FieldRule(re.compile(r"[0-9]{1,3}(\.[0-9]{1,3})?"),
                          "seconds above 0: 1-3 digits, optionally '.' and 1-3 digits",
                          lambda value: float(value) > 0),
}
REQUIRED = ("id", "model", "hw", "fw", "state", "mtu")
# Checked for a session (the conformance kit keeps testing a board whose identity is wrong,
# so that one bad field does not hide every other result).
SESSION_FIELDS = ("state", "mtu", "keys", "keygen_s")


def hello_problem(answer: Frame, *, identity: bool = True) -> str | None:
    """Why this HELLO answer is unusable, or None. `identity=False` skips the alphabets of
    id, model, hw and fw (they must still be present)."""
    version = answer.args[0] if answer.args else ""
    if not _VERSION_TEXT.fullmatch(version) or int(version) not in SUPPORTED_VERSIONS:
        return (f"unsupported protocol version {version or '(none)'} "
                f"(station speaks {', '.join(map(str, SUPPORTED_VERSIONS))})")
    items = answer.field_items()
    repeated = sorted(key for key, count in Counter(key for key, _ in items).items() if count > 1)
    if repeated:
        return f"HELLO answer repeats {', '.join(repeated)} (each key at most once)"
    fields = dict(items)
    missing = [key for key in REQUIRED if key not in fields]
    if missing:
        return f"HELLO answer lacks {', '.join(missing)}"
    checked = RULES if identity else SESSION_FIELDS
    for key in checked:
        if key in fields and (problem := RULES[key].problem(key, fields[key])):
            return problem
    return None


def parse_hello(answer: Frame, port: str, *, identity: bool = True) -> DeviceIdentity:
    """The identity in a HELLO answer. Raises DeviceProtocolError naming the first field
    outside docs/protocol.md (a version this station does not speak, a missing or repeated
    key, a value outside its alphabet or range). `identity=False`: see hello_problem."""
    problem = hello_problem(answer, identity=identity)
    if problem:
        raise DeviceProtocolError("HELLO", problem, port=port)
    fields = answer.fields()
    extra = {k: v for k, v in fields.items() if k not in ("id", "model", "hw", "fw", "state")}
    return DeviceIdentity(device_id=fields["id"], model=fields["model"], hw_rev=fields["hw"],
                          fw_version=fields["fw"], state=fields["state"],  # type: ignore[arg-type]
                          protocol_version=answer.args[0], extra=extra)
