"""Where the PIN comes from, when the operator got it wrong: the PIN file is a directory, not
UTF-8, or a FIFO; `STATION_PIN` has a stray newline. Exit 2 with one clear line, never a hang,
never the PIN in a message."""
from __future__ import annotations

import os

from tests.cli_runner import assert_clean_failure, run_station

SECRET = "s3cret-PIN"


def test_a_pin_file_that_is_a_directory_is_a_usage_error(tmp_path, config_with_pin_file):
    pin_dir = tmp_path / "pin"
    pin_dir.mkdir(mode=0o700)
    result = run_station("--config", config_with_pin_file(pin_dir), "ca", "show")
    assert_clean_failure(result, 2, f"PIN file {pin_dir} is a directory")


def test_a_pin_file_that_is_not_utf8_is_refused_without_quoting_it(tmp_path, config_with_pin_file):
    pin_file = tmp_path / "user.pin"
    pin_file.write_bytes(SECRET.encode() + b"\xff\xfe\n")
    pin_file.chmod(0o600)
    result = run_station("--config", config_with_pin_file(pin_file), "ca", "show")
    assert_clean_failure(result, 2, f"PIN file {pin_file} is not UTF-8 text")
    # The codec's own message would name the byte 0xff: a piece of the PIN file.
    assert SECRET not in result.stderr + result.stdout and "0xff" not in result.stderr


def test_a_pin_file_that_is_a_fifo_is_refused_at_once(tmp_path, config_with_pin_file):
    fifo = tmp_path / "user.pin"
    os.mkfifo(fifo, 0o600)
    # Opened for reading without a writer, a FIFO blocks forever: the timeout is the test.
    result = run_station("--config", config_with_pin_file(fifo), "ca", "show", timeout=30)
    assert_clean_failure(result, 2, f"PIN file {fifo} is a FIFO (named pipe); expected a regular file")


def test_station_pin_with_a_stray_newline_is_the_pin(workdir):
    pin = (workdir / "hsm" / "user.pin").read_text().strip()
    # On a real HSM the newline would be a wrong-PIN attempt counting towards a lockout.
    result = run_station("ca", "show", cwd=workdir, env={"STATION_PIN": f"  {pin}\n"})
    assert result.returncode == 0, result.stderr
    assert pin not in result.stdout + result.stderr
