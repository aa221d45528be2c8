"""Runs conformance cases against one port and collects a result per case.

A case is a function that takes a `Bench` (the port, the timeout scale, the run's test CA)
and either returns (pass) or raises; `CaseSkipped` when the device's state does not allow
the check. `CaseFailed` carries the reason in the case's own words;
any `station.link.errors` exception is a failure whose reason is the link's own operator
message (a port that vanished and cannot be reopened included); anything else is reported
as a kit-side fault rather than crashing the run. Only a port that cannot be opened before
the first case (`PortUnavailable`) or a board no case can judge (`BoardUntestable`: it is
locked) ends the run early: there is nothing to test, and saying so once beats failing every
case with the same cause.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Literal

from station.conformance.testca import TestCA
from station.errors import EnvironmentProblem, StationError
from station.link.codec import MAX_FRAME
from station.link.transport import DEFAULT_BAUDRATE, SerialTransport

Outcome = Literal["pass", "fail", "skip"]


class CaseFailed(Exception):
    """The device behaved in a way the case does not accept; str() is the reason."""


class CaseSkipped(Exception):
    """The case cannot be judged on this device in its current state; str() says why."""


class BoardUntestable(EnvironmentProblem):
    """No case can be judged on this board (it is locked): the run stops and says so once,
    instead of failing every case with the same cause."""


@dataclass
class Bench:
    """What a case gets: where the device is and how patient to be with it."""

    port: str
    timeout_scale: float = 1.0
    baud: int = DEFAULT_BAUDRATE
    frame_limit: int = MAX_FRAME
    ca: TestCA = field(default_factory=TestCA.generate)
    flow: dict = field(default_factory=dict)  # results one case hands to the next

    def open(self) -> SerialTransport:
        """A fresh transport on the port; each case opens its own, so a case that leaves
        bytes on the wire cannot spoil the next one."""
        return SerialTransport(self.port, baudrate=self.baud, frame_limit=self.frame_limit)

    def seconds(self, nominal: float) -> float:
        """A protocol timeout scaled for slow boards (--timeout-scale)."""
        return nominal * self.timeout_scale


@dataclass(frozen=True)
class Case:
    """One documented check (docs/conformance.md has the same list, in the same order)."""

    name: str
    summary: str
    check: Callable[[Bench], None]
    irreversible: bool = False  # runs only when the operator asked for it


@dataclass(frozen=True)
class CaseResult:
    case: str
    outcome: Outcome
    reason: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.outcome != "fail"


def run_cases(bench: Bench, cases: list[Case], *, include_irreversible: bool = False,
              on_result: Callable[[CaseResult], None] | None = None) -> list[CaseResult]:
    """Run `cases` in order and return one result each. Raises PortUnavailable when the port
    cannot be opened at all (checked once before the first case), BoardUntestable when a
    case finds a board no case can judge (the run stops there)."""
    bench.open().close()
    results = []
    for case in cases:
        result = _run_one(bench, case, include_irreversible)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _run_one(bench: Bench, case: Case, include_irreversible: bool) -> CaseResult:
    if case.irreversible and not include_irreversible:
        return CaseResult(case.name, "skip", "irreversible; run with --include-lock", 0.0)
    started = time.monotonic()
    try:
        case.check(bench)
    except BoardUntestable:
        raise
    except CaseSkipped as exc:
        outcome, reason = "skip", str(exc)
    except CaseFailed as exc:
        outcome, reason = "fail", str(exc)
    except StationError as exc:
        outcome, reason = "fail", str(exc)
    except Exception as exc:  # a kit bug must not hide the other cases' results
        outcome, reason = "fail", f"conformance kit error: {type(exc).__name__}: {exc}"
    else:
        outcome, reason = "pass", ""
    return CaseResult(case.name, outcome, reason, time.monotonic() - started)
