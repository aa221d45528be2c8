"""The conformance results as a text table for people and one JSON object for scripts."""
from __future__ import annotations

import json

from station.conformance.runner import CaseResult
from station.text import printable

_HEADERS = ("case", "result", "duration", "reason")


def table(results: list[CaseResult]) -> str:
    """A fixed-width table, one row per case, then a one-line summary."""
    # A reason can quote what the board sent: escaped, so a board cannot paint the terminal.
    rows = [(r.case, r.outcome.upper(), f"{r.seconds:.2f} s", printable(r.reason)) for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(_HEADERS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(_HEADERS, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.append(summary_line(results))
    return "\n".join(lines)


def summary_line(results: list[CaseResult]) -> str:
    counts = {o: sum(r.outcome == o for r in results) for o in ("pass", "fail", "skip")}
    verdict = "CONFORMANT" if all(r.passed for r in results) else "NOT CONFORMANT"
    return (f"{verdict}: {counts['pass']} passed, {counts['fail']} failed, "
            f"{counts['skip']} skipped")


def as_json(port: str, results: list[CaseResult]) -> str:
    """One line of JSON: {"port", "conformant", "passed", "failed", "skipped", "cases": [...]}."""
    return json.dumps({
        "port": port,
        "conformant": all(r.passed for r in results),
        "passed": sum(r.outcome == "pass" for r in results),
        "failed": sum(r.outcome == "fail" for r in results),
        "skipped": sum(r.outcome == "skip" for r in results),
        "cases": [{"case": r.case, "result": r.outcome, "reason": r.reason,
                   "seconds": round(r.seconds, 3)} for r in results],
    }, separators=(",", ":"))
