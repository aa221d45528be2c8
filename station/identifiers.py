"""The identifiers an operator or a manifest supplies: labels, device ids, models, batch ids,
operator ids and slot names. One validator per kind, applied where the value is read (the
command line, a manifest), so a bad value is refused naming its source before a batch opens,
not first when a device reaches key generation.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# The profile owns the alphabet of everything that can enter a certificate subject (labels,
# device ids, models): validating them with anything else would let a manifest accept a label
# the profile later refuses on the line.
from station.profile import _SAFE_VALUE as SUBJECT_VALUE
from station.text import shown

SUBJECT_RULE = "1-64 characters of A-Z a-z 0-9 : -"


@dataclass(frozen=True)
class IdentifierKind:
    name: str
    pattern: re.Pattern[str]
    rule: str  # the pattern in words, for the message

    def problem(self, value: str) -> str | None:
        """None if `value` is a valid identifier of this kind, else the reason (value escaped).
        fullmatch, because re.match with `$` also accepts a trailing newline."""
        if self.pattern.fullmatch(value):
            return None
        if not value:
            return f"{self.name} is empty"
        return f"{self.name} {shown(value)} is not {self.rule}"


LABEL = IdentifierKind("label", SUBJECT_VALUE, SUBJECT_RULE)
DEVICE_ID = IdentifierKind("device id", SUBJECT_VALUE, SUBJECT_RULE)
MODEL = IdentifierKind("model", SUBJECT_VALUE, SUBJECT_RULE)
# Work-order and badge numbers are recorded in the audit, not in certificates: dots are
# allowed, but they start with a letter or digit so they never read as an option or a path.
BATCH_ID = IdentifierKind("batch id", re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}"),
                          "1-64 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit")
OPERATOR_ID = IdentifierKind("operator id", re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}"),
                             "1-64 characters of A-Z a-z 0-9 . _ @ : - starting with a letter or digit")
SLOT = IdentifierKind("slot name", re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}"),
                      "1-32 characters of A-Z a-z 0-9 _ - starting with a letter or digit")
