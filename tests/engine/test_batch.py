"""Work orders and manifests: pure rules, no devices needed."""
from __future__ import annotations

import pytest

from station.engine.batch import Batch, Manifest
from station.errors import ConfigError, PolicyRefusal


def _manifest(tmp_path, text: str) -> Manifest:
    path = tmp_path / "manifest.csv"
    path.write_text(text)
    return Manifest.load(path)


def test_manifest_with_device_ids_decides_the_label(tmp_path):
    batch = Batch("WO-1", "SIM-1", "op", manifest=_manifest(tmp_path, "device_id,label\nAA01,L-1\nBB02,L-2\n"))
    assert batch.label_for("aa01", None) == "L-1"
    with pytest.raises(PolicyRefusal) as info:
        batch.label_for("CC03", None)
    assert info.value.code == "not-in-manifest"
    with pytest.raises(PolicyRefusal) as info:
        batch.label_for("AA01", "L-2")
    assert info.value.code == "label-mismatch"


def test_manifest_of_labels_checks_the_scan(tmp_path):
    batch = Batch("WO-1", "SIM-1", "op", manifest=_manifest(tmp_path, "label\nL-1\nL-2\n"))
    assert batch.label_for("AA01", "L-2") == "L-2"
    with pytest.raises(PolicyRefusal, match="not in the batch manifest"):
        batch.label_for("AA01", "L-9")
    with pytest.raises(PolicyRefusal, match="scan its label"):
        batch.label_for("AA01", None)


@pytest.mark.parametrize("text,fragment", [
    ("serial\nX\n", "'label' column"),
    ("label\n\n", "no devices listed"),
    ("label\nL1\nL1\n", "line 3: label L1 appears twice"),
    ("device_id,label\nA,L1\nA,L2\n", "line 3: device A appears twice"),
    ("device_id,label\n,L1\n", "line 2: device id is empty"),
])
def test_bad_manifests_name_file_and_line(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as info:
        _manifest(tmp_path, text)
    assert fragment in str(info.value) and "manifest.csv" in str(info.value)


def test_manifest_hash_is_of_the_file_bytes(tmp_path):
    import hashlib

    m = _manifest(tmp_path, "label\nL1\n")
    assert m.sha256 == hashlib.sha256(b"label\nL1\n").hexdigest()
