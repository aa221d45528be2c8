"""The core (everything outside station/ui/) never imports Textual: checked on the source and
on the interpreter's module table after importing every core module."""
from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE_PACKAGES = ["station", "hsm"]


def _core_files():
    for pkg in CORE_PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            if "ui" in path.relative_to(ROOT / pkg).parts[:1]:
                continue
            yield path


def test_no_textual_import_in_core_sources():
    offenders = []
    for path in _core_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "textual" or n.startswith("textual.") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"Textual imported in the core: {offenders}"


def test_importing_the_core_does_not_load_textual():
    code = (
        "import importlib, pkgutil, sys\n"
        "for pkg in ('station', 'hsm'):\n"
        "    mod = importlib.import_module(pkg)\n"
        "    for info in pkgutil.walk_packages(mod.__path__, pkg + '.'):\n"
        "        if '.ui' in info.name: continue\n"
        "        importlib.import_module(info.name)\n"
        "assert 'textual' not in sys.modules, 'textual was imported'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_the_operator_terminal_core_is_among_the_checked_modules():
    # station/operator/ holds the UI's state model, scan router and session: plain Python,
    # checked like the rest of the core; only station/ui/ may import Textual.
    checked = {path.relative_to(ROOT).as_posix() for path in _core_files()}
    for name in ("model", "scan", "session", "fixture", "i18n"):
        assert f"station/operator/{name}.py" in checked
    assert not any(path.startswith("station/ui/") for path in checked)
    code = ("import sys, station.operator.model, station.operator.scan, station.operator.session, "
            "station.operator.fixture, station.operator.i18n\n"
            "assert 'textual' not in sys.modules\nprint('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
