"""Setting up the default token: where SoftHSM2's module is found, the station's private
softhsm2.conf, token initialisation through softhsm2-util, and the key types a CA can have.

`init_token`'s failure paths run a stand-in softhsm2-util: a real executable script put first
on PATH (softhsm2-util itself cannot be made to echo a PIN, print nothing or fail to start).
The real tool is run by the session's station fixture and by the first test below."""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from hsm import softhsm
from hsm.errors import HSMError, TokenNotFound
from hsm.token import KeySpec


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def test_a_token_initialised_here_is_listed_by_softhsm_and_no_descriptor_leaks(tmp_path):
    conf = tmp_path / "softhsm2.conf"
    softhsm.write_config(conf, tmp_path / "tokens")
    before = open_fds()
    softhsm.init_token(conf, "setup-test", so_pin="so-pin-1234", user_pin="user-pin-5678")
    # The pseudo-terminal's two ends are closed again; in particular no descriptor of this
    # process (its stdout is 1) was closed in their place.
    assert open_fds() == before
    os.fstat(1)
    # Listed by the tool, not opened here: a second configuration in this process would
    # re-initialise the PKCS#11 library under the session's station (tests/ca/test_token_sessions.py).
    slots = subprocess.run([shutil.which("softhsm2-util"), "--show-slots"], capture_output=True, text=True,
                           env=dict(os.environ, SOFTHSM2_CONF=str(conf)), check=True).stdout
    assert re.search(r"Label:\s+setup-test\s*$", slots, re.MULTILINE)
    assert re.search(r"User PIN init\.:\s+yes", slots)


def fake_tool(directory: Path, script: str, monkeypatch) -> None:
    """A softhsm2-util that runs `script` (sh), first on PATH."""
    directory.mkdir()
    tool = directory / "softhsm2-util"
    tool.write_text(script)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")


def test_a_failing_tool_is_reported_by_its_last_line_with_both_pins_masked(tmp_path, monkeypatch):
    # The stand-in reads what init_token types (SO PIN twice, user PIN twice), shows it,
    # its arguments and environment on stdout and stderr, and fails.
    fake_tool(tmp_path / "bin", "#!/bin/sh\nread a; read b; read c; read d\n"
                                "echo \"args: $*\"\necho \"conf: $SOFTHSM2_CONF mark: $STATION_TEST_MARK\"\n"
                                "echo \"\"\necho \"typed: $a $b $c $d\" >&2\necho \"   \"\nexit 1\n", monkeypatch)
    monkeypatch.setenv("STATION_TEST_MARK", "kept")
    with pytest.raises(HSMError) as info:
        softhsm.init_token(tmp_path / "my.conf", "lbl", so_pin="so-secret-9", user_pin="user-secret-7")
    assert str(info.value) == "softhsm2-util could not initialise token 'lbl': typed: *** *** *** ***"


def test_the_tool_gets_the_label_the_station_config_and_the_callers_environment(tmp_path, monkeypatch):
    fake_tool(tmp_path / "bin", "#!/bin/sh\necho \"first line\"\n"
                                "echo \"$* | $SOFTHSM2_CONF | $STATION_TEST_MARK\" >&2\nexit 2\n", monkeypatch)
    monkeypatch.setenv("STATION_TEST_MARK", "kept")
    with pytest.raises(HSMError) as info:
        softhsm.init_token(tmp_path / "my.conf", "line-4", so_pin="1234", user_pin="5678")
    assert str(info.value) == (f"softhsm2-util could not initialise token 'line-4': "
                               f"--init-token --free --label line-4 | {tmp_path / 'my.conf'} | kept")


def test_a_tool_that_fails_silently_is_said_to_have_printed_nothing(tmp_path, monkeypatch):
    fake_tool(tmp_path / "bin", "#!/bin/sh\nexit 3\n", monkeypatch)
    with pytest.raises(HSMError) as info:
        softhsm.init_token(tmp_path / "my.conf", "lbl", so_pin="1234", user_pin="5678")
    assert str(info.value) == "softhsm2-util could not initialise token 'lbl': no output"


def test_a_tool_that_cannot_start_raises_and_closes_the_terminal(tmp_path, monkeypatch):
    fake_tool(tmp_path / "bin", "#!/nonexistent/interpreter\n", monkeypatch)
    before = open_fds()
    with pytest.raises(FileNotFoundError):
        softhsm.init_token(tmp_path / "my.conf", "lbl", so_pin="1234", user_pin="5678")
    assert open_fds() == before


def test_without_softhsm2_util_the_operator_is_told_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TokenNotFound) as info:
        softhsm.init_token(tmp_path / "my.conf", "lbl", so_pin="1234", user_pin="5678")
    assert str(info.value) == "softhsm2-util not found; install it: apt-get install softhsm2"


def test_the_module_is_the_first_candidate_present(tmp_path, monkeypatch):
    missing, first, second = tmp_path / "a.so", tmp_path / "b.so", tmp_path / "c.so"
    first.touch()
    second.touch()
    monkeypatch.setattr(softhsm, "MODULE_CANDIDATES", (str(missing), str(first), str(second)))
    assert softhsm.find_module() == first
    monkeypatch.setattr(softhsm, "MODULE_CANDIDATES", (str(missing),))
    with pytest.raises(TokenNotFound) as info:
        softhsm.find_module()
    assert str(info.value) == ("SoftHSM2 is not installed (no libsofthsm2.so); install it: "
                               "apt-get install softhsm2")


def test_the_private_config_names_its_token_directory_and_is_readable_by_the_station_alone(tmp_path):
    conf, tokens = tmp_path / "softhsm2.conf", tmp_path / "work" / "hsm" / "tokens"
    for _ in range(2):  # written again (station init on an existing work directory): no error
        softhsm.write_config(conf, tokens)
    assert conf.read_text().splitlines() == [
        "# SoftHSM2 configuration private to this station (written by `station init`).",
        f"directories.tokendir = {tokens}",
        "objectstore.backend = file",
        "log.level = ERROR",
        "slots.removable = false",
    ]
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o700
    softhsm.check_config(conf)


def test_a_config_without_a_token_directory_is_refused_by_name(tmp_path):
    conf = tmp_path / "softhsm2.conf"
    conf.write_text("log.level = ERROR\n")
    with pytest.raises(TokenNotFound) as info:
        softhsm.check_config(conf)
    assert str(info.value) == f"SoftHSM2 configuration {conf} has no directories.tokendir"


@pytest.mark.parametrize("text,spec", [
    ("ec-p256", KeySpec("ec", curve="secp256r1")),
    ("EC-P384", KeySpec("ec", curve="secp384r1")),
    ("rsa-3072", KeySpec("rsa", bits=3072)),
    ("Rsa-2048", KeySpec("rsa", bits=2048)),
])
def test_each_key_type_parses_to_its_algorithm_and_size(text, spec):
    assert KeySpec.parse(text) == spec


def test_an_unknown_key_type_is_refused_with_the_list_of_known_ones():
    with pytest.raises(ValueError) as info:
        KeySpec.parse("ed25519")
    assert str(info.value) == "unknown key type 'ed25519' (expected one of ec-p256, ec-p384, rsa-3072, rsa-2048)"


def test_output_that_is_not_utf8_is_shown_with_replacement_characters(tmp_path, monkeypatch):
    fake_tool(tmp_path / "bin", "#!/bin/sh\nprintf 'bad byte: \\377\\n'\nexit 1\n", monkeypatch)
    with pytest.raises(HSMError) as info:
        softhsm.init_token(tmp_path / "my.conf", "lbl", so_pin="1234", user_pin="5678")
    assert str(info.value) == "softhsm2-util could not initialise token 'lbl': bad byte: \ufffd"
