"""The station's exception hierarchy.

Every failure that can reach an operator or a script is one of these, with a message an
operator can read and the exit code the CLI returns for it (docs/cli.md). Lower layers
(serial, PKCS#11, SQLite) translate their own exceptions into these at the boundary, so
the CLI and the UI never show a traceback.
"""
from __future__ import annotations


class ExitCode:
    OK = 0
    REFUSED = 1  # policy or device said no; the reason is on stderr
    USAGE = 2  # bad command line or configuration
    ENVIRONMENT = 3  # HSM, token, disk, missing system package
    INTERNAL = 4  # a bug in the station: reported in one line, details with STATION_DEBUG=1
    INTERRUPTED = 130  # stopped by SIGINT/SIGTERM (a run finishes its devices in flight first)


class StationError(Exception):
    """Base of all operator-facing errors. str(err) is the one-line reason."""

    exit_code = ExitCode.REFUSED


class ConfigError(StationError):
    """The configuration (file, key, value) is wrong; the message names all three."""

    exit_code = ExitCode.USAGE


class UsageError(StationError):
    exit_code = ExitCode.USAGE


class EnvironmentProblem(StationError):
    """Something outside the station's control is missing or broken (disk, token, package)."""

    exit_code = ExitCode.ENVIRONMENT


class PolicyRefusal(StationError):
    """The issuance policy refused a request. `code` is a stable machine-readable tag."""

    exit_code = ExitCode.REFUSED

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
