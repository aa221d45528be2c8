"""Link failures as operator-readable `StationError`s.

The transport and the drivers translate every serial, OS and protocol failure into one of
these at the boundary, so the engine, the CLI and the UI never see a raw `SerialException`.
Each carries `.step`, the command that was running (`HELLO`, `KEYGEN`, `PUT`, ..., or `OPEN`
for opening the port), and `.port`, so a FAIL tile or the audit log can say what happened
where without parsing the message.
"""
from __future__ import annotations

from station.errors import ExitCode, StationError


def _where(port: str | None) -> str:
    return f"device on {port}" if port else "device"


class DeviceLinkError(StationError):
    """Base of every device link failure. str(err) is the one-line reason."""

    exit_code = ExitCode.REFUSED

    def __init__(self, reason: str, *, step: str, port: str | None = None):
        super().__init__(reason)
        self.step = step
        self.port = port


class PortUnavailable(DeviceLinkError):
    """The port could not be opened (missing, busy, bad URL): an environment problem."""

    exit_code = ExitCode.ENVIRONMENT

    def __init__(self, port: str, detail: str):
        super().__init__(f"cannot open {port}: {detail}", step="OPEN", port=port)
        self.detail = detail


class DeviceTimeout(DeviceLinkError):
    """The device did not answer (or did not accept our bytes) within `seconds`."""

    def __init__(self, step: str, seconds: float, *, port: str | None = None,
                 attempts: int = 1):
        tail = f" ({attempts} attempts)" if attempts > 1 else ""
        super().__init__(f"{_where(port)} did not answer {step} within {seconds:.3g} s{tail}",
                         step=step, port=port)
        self.seconds = seconds
        self.attempts = attempts


class DeviceDisconnected(DeviceLinkError):
    """The port went away (USB unplugged, pty closed, socket dropped) while `step` ran."""

    def __init__(self, step: str, *, port: str | None = None, detail: str = ""):
        # The OS's words (EIO, "returned no data") stay in .detail: they add nothing for an
        # operator but help whoever debugs the fixture.
        super().__init__(f"{_where(port)} vanished during {step}", step=step, port=port)
        self.detail = detail


class DeviceProtocolError(DeviceLinkError):
    """The device answered with something that is not a valid answer to `step`:
    garbage, a bad checksum, an over-long frame, a wrong sequence number, a payload whose
    hash does not match. `attempts` says how often the station tried before giving up."""

    def __init__(self, step: str, problem: str, *, port: str | None = None, attempts: int = 1):
        tail = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"{problem} from {_where(port)} during {step}{tail}",
                         step=step, port=port)
        self.problem = problem
        self.attempts = attempts


class FrameTooLong(DeviceProtocolError):
    """The device sent a line longer than the frame limit; the transport dropped it and
    resynchronises at the next line end."""

    def __init__(self, step: str, limit: int, *, port: str | None = None):
        super().__init__(step, f"frame longer than {limit} bytes", port=port)
        self.limit = limit


class DeviceRefused(DeviceLinkError):
    """The device answered `step` with an error. `code` is the device's error code as sent
    (`ORDER`, `STORAGE`, ... docs/protocol.md section 5), `detail` its text; both are kept
    verbatim for the audit log."""

    def __init__(self, step: str, code: str, detail: str = "", *, port: str | None = None):
        text = f" {detail}" if detail else ""
        super().__init__(f"{_where(port)} refused {step}: ERR {code}{text}", step=step, port=port)
        self.code = code
        self.detail = detail


class DeviceIntegrityError(DeviceLinkError):
    """The device answered well-formed but wrong: committed hashes that differ from what was
    written, a proof that does not verify."""

    def __init__(self, step: str, problem: str, *, port: str | None = None):
        super().__init__(f"{_where(port)} failed {step} integrity check: {problem}",
                         step=step, port=port)
        self.problem = problem
