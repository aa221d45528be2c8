"""Fault injection for simulated devices (syntax and meaning: docs/simulator.md).

A fault is written `KIND[@VERB][=COUNT]`:
- wire faults name the command they hit: `disconnect@KEYGEN`, `stall@COMMIT`, `corrupt@PUT`,
  `garbage@HELLO`, `overlong@HELLO`, `stray@BEGIN`, `powerloss@COMMIT`; they fire once unless `=N` or
  `=always` says otherwise;
- device faults change what the device makes: `bad-csr-signature`, `wrong-subject`,
  `weak-key`, `duplicate-key`, `commit-fail`, `wrong-hash`, `bad-proof`, `lowercase-id`,
  `no-switch`;
  they apply every time unless `=N` says otherwise.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum

from station.link.codec import REQUEST_VERBS, Verb


class FaultKind(StrEnum):
    # Wire faults: what the station sees on the line when the device receives VERB.
    DISCONNECT = "disconnect"  # the port vanishes (pty master closed), VERB not executed
    STALL = "stall"  # the firmware hangs: silence from VERB on, nothing executed
    CORRUPT = "corrupt"  # the answer leaves with a flipped byte: its CRC fails
    GARBAGE = "garbage"  # a line of noise goes out instead of the answer
    OVERLONG = "overlong"  # a line longer than MAX_FRAME goes out instead of the answer
    STRAY = "stray"  # a valid frame with another seq goes out before the answer
    POWERLOSS = "powerloss"  # power fails in the middle of COMMIT's flash writes
    # Device faults: the device answers normally, but what it makes is wrong.
    BAD_CSR_SIGNATURE = "bad-csr-signature"
    WRONG_SUBJECT = "wrong-subject"
    WEAK_KEY = "weak-key"  # RSA-1024 whatever was asked
    DUPLICATE_KEY = "duplicate-key"  # a broken RNG: every such device has the same key
    COMMIT_FAIL = "commit-fail"  # COMMIT answers ERR STORAGE, nothing stored
    WRONG_HASH = "wrong-hash"  # flash flips a bit of the stored cert; COMMIT reports that
    BAD_PROOF = "bad-proof"  # PROVE signs something other than the nonce
    LOWERCASE_ID = "lowercase-id"  # HELLO prints the chip id in lower-case hex
    # Compact extension: LINE is acknowledged, but the UART never comes up at the new rate;
    # the device hears nothing until it reverts to the old rate (docs/protocol.md 9.3).
    NO_SWITCH = "no-switch"


WIRE_FAULTS = frozenset({FaultKind.DISCONNECT, FaultKind.STALL, FaultKind.CORRUPT,
                         FaultKind.GARBAGE, FaultKind.OVERLONG, FaultKind.STRAY,
                         FaultKind.POWERLOSS})


@dataclass(frozen=True)
class FaultSpec:
    kind: FaultKind
    verb: Verb | None = None
    count: int | None = None  # None: every time

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """Parse `KIND[@VERB][=COUNT]`; ValueError names what is wrong and what is allowed."""
        body, _, count_text = text.strip().partition("=")
        kind_text, at, verb_text = body.partition("@")
        try:
            kind = FaultKind(kind_text.lower())
        except ValueError:
            raise ValueError(f"unknown fault {kind_text!r} in {text!r}; known: "
                             + ", ".join(k.value for k in FaultKind)) from None
        verb = None
        if kind in WIRE_FAULTS:
            if not at:
                raise ValueError(f"fault {kind.value!r} needs a command: {kind.value}@VERB")
            try:
                verb = Verb(verb_text.upper())
            except ValueError:
                verb = None
            if verb not in REQUEST_VERBS:
                raise ValueError(f"{verb_text!r} in {text!r} is not a command; commands: "
                                 + ", ".join(sorted(v.value for v in REQUEST_VERBS)))
            if kind is FaultKind.POWERLOSS and verb is not Verb.COMMIT:
                raise ValueError("powerloss applies to COMMIT only: powerloss@COMMIT")
        elif at:
            raise ValueError(f"fault {kind.value!r} takes no command (drop '@{verb_text}')")
        count = 1 if kind in WIRE_FAULTS else None
        if count_text:
            if count_text.lower() == "always":
                count = None
            elif count_text.isdigit() and int(count_text) > 0:
                count = int(count_text)
            else:
                raise ValueError(f"count {count_text!r} in {text!r} must be a positive "
                                 "number or 'always'")
        return cls(kind, verb, count)

    def __str__(self) -> str:
        text = self.kind.value + (f"@{self.verb.value}" if self.verb else "")
        default = 1 if self.kind in WIRE_FAULTS else None
        if self.count != default:
            text += "=always" if self.count is None else f"={self.count}"
        return text


def parse_indexed_fault(text: str) -> tuple[int, FaultSpec]:
    """The command-line form `INDEX:SPEC` (device index from 0), e.g. `2:stall@COMMIT`."""
    index_text, colon, spec = text.partition(":")
    if not colon or not index_text.strip().isdigit():
        raise ValueError(f"fault {text!r} must be INDEX:SPEC, e.g. 2:stall@COMMIT")
    return int(index_text), FaultSpec.parse(spec)


class FaultPlan:
    """The faults of one device, with how often each may still fire. Thread-safe, since a
    test may inspect it while the device's server thread consumes it."""

    def __init__(self, specs=()):
        self._lock = threading.Lock()
        self._left: list[tuple[FaultSpec, int | None]] = [(s, s.count) for s in specs]

    @property
    def specs(self) -> list[FaultSpec]:
        return [spec for spec, _ in self._left]

    def fire(self, kind: FaultKind, verb: Verb | str | None = None) -> bool:
        """True if a fault of this kind (for this verb) applies now; uses up one count."""
        verb = Verb(verb) if verb is not None else None
        with self._lock:
            for i, (spec, left) in enumerate(self._left):
                if spec.kind is kind and (spec.verb is None or spec.verb is verb) and left != 0:
                    if left is not None:
                        self._left[i] = (spec, left - 1)
                    return True
        return False
