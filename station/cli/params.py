"""Click parameter types for the identifiers commands take (batch, operator, label, ...): a
bad value is a usage error (exit 2) naming the option, before anything is opened."""
from __future__ import annotations

import click

from station.identifiers import IdentifierKind


class Identifier(click.ParamType):
    """A value of one `station.identifiers` kind; click reports the reason, escaped."""

    def __init__(self, kind: IdentifierKind):
        self.kind = kind
        self.name = kind.name

    def convert(self, value, param, ctx):
        problem = self.kind.problem(value)
        if problem:
            self.fail(problem, param, ctx)
        return value
