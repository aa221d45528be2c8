"""station/atomic_file.py on a real file system: old content or new, never half; nothing left
behind on failure; the mode of a replaced file kept when asked, the umask's otherwise."""
from __future__ import annotations

import os
import stat

import pytest

from station.atomic_file import atomic_output
from station.errors import EnvironmentProblem


def test_the_target_changes_only_when_the_block_ends_well(tmp_path):
    target = tmp_path / "report.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as out:
            out.write("half of the new")
            assert target.read_text() == "old\n"  # nothing visible while it is written
            raise RuntimeError("the export failed midway")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.csv"]
    with atomic_output(target, "wb") as out:
        out.write(b"new\n")
    assert target.read_bytes() == b"new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.csv"]


def test_permissions_of_the_replaced_file_are_kept_when_asked_else_the_umask_decides(tmp_path):
    config = tmp_path / "station.toml"
    config.write_text("x = 1\n")
    config.chmod(0o640)
    with atomic_output(config, permissions=stat.S_IMODE(config.stat().st_mode)) as out:
        out.write("x = 2\n")
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    old = os.umask(0o027)
    try:
        with atomic_output(tmp_path / "new.txt") as out:
            out.write("n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640


def test_an_unwritable_place_is_one_environment_error_naming_the_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(EnvironmentProblem, match=r"cannot write .*file/out\.csv: Not a directory"):
        with atomic_output(blocker / "out.csv") as out:
            out.write("x")
