"""The help screen: what to scan, what each key does."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from station.operator.i18n import _


def help_text(hint: str) -> Text:
    text = Text()
    text.append(_("Help") + "\n\n", style="bold underline")
    text.append(hint + "\n\n")
    text.append(_("Scans") + "\n", style="bold")
    for line in (_("Operator badge: logs you in."), _("Work order: opens (or resumes) its batch."),
                 _("Device label: binds to the slot waiting for one (prefix S3: when several wait)."),
                 _("Supervisor badge: approves re-provisioning a device that already has a certificate."),
                 _("Anything else is refused with a bell and changes nothing.")):
        text.append(f" • {line}\n")
    text.append("\n" + _("Keys") + "\n", style="bold")
    for key, line in (("q", _("quit (asks first while devices are in flight; they finish, the batch stays open)")),
                      ("? F1", _("this help")), ("Ctrl+P", _("commands (close the batch, stop the line, ...)")),
                      ("Esc", _("close this screen"))):
        text.append(f" {key:<7}", style="bold")
        text.append(f"{line}\n")
    return text


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", _("Close"))]

    def __init__(self, hint: str) -> None:
        super().__init__()
        self.hint = hint

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Static(help_text(self.hint))
