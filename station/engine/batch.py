"""A batch is a work order: id, model, operator, expected count and an optional manifest.

The manifest is a CSV with a header. Column `label` is required; `device_id` is optional.
With device ids it decides each device's label ("the manifest decides"); with labels only, a
scanned label must be one of them. Each label may be used once.
"""
from __future__ import annotations

import csv
import hashlib
import io
import threading
from dataclasses import dataclass, field
from pathlib import Path

from station.errors import ConfigError, PolicyRefusal


@dataclass(frozen=True)
class Manifest:
    path: Path
    sha256: str
    labels: tuple[str, ...]
    label_by_device: dict[str, str]  # empty when the manifest has no device_id column

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"manifest {path}: cannot read ({exc.strerror})") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ConfigError(f"manifest {path}: not UTF-8 text") from None
        reader = csv.DictReader(io.StringIO(text))
        columns = [c.strip() for c in (reader.fieldnames or [])]
        if "label" not in columns:
            raise ConfigError(f"manifest {path}: the header must name a 'label' column (found: {', '.join(columns) or 'none'})")
        labels: list[str] = []
        by_device: dict[str, str] = {}
        for line_no, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            label = row.get("label", "")
            if not label:
                raise ConfigError(f"manifest {path} line {line_no}: empty label")
            if label in labels:
                raise ConfigError(f"manifest {path} line {line_no}: label {label} appears twice")
            labels.append(label)
            device_id = row.get("device_id", "")
            if "device_id" in columns:
                if not device_id:
                    raise ConfigError(f"manifest {path} line {line_no}: empty device_id")
                key = device_id.upper()
                if key in by_device:
                    raise ConfigError(f"manifest {path} line {line_no}: device {device_id} appears twice")
                by_device[key] = label
        if not labels:
            raise ConfigError(f"manifest {path}: no devices listed")
        return cls(path=Path(path), sha256=hashlib.sha256(raw).hexdigest(), labels=tuple(labels),
                   label_by_device=by_device)


@dataclass
class Batch:
    batch_id: str
    model: str
    operator: str
    expected: int | None = None
    manifest: Manifest | None = None
    passed: int = 0
    failed: int = 0
    passed_before: int = 0  # devices that passed in this batch in earlier runs (a resumed batch)
    _labels_in_use: set[str] = field(default_factory=set, repr=False)
    _in_progress: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def label_for(self, device_id: str, scanned: str | None) -> str:
        """The label this device gets, by the manifest and/or the scan. Raises PolicyRefusal."""
        manifest = self.manifest
        if manifest and manifest.label_by_device:
            expected = manifest.label_by_device.get(device_id.upper())
            if expected is None:
                raise PolicyRefusal("not-in-manifest", f"device {device_id} is not in the batch manifest")
            if scanned is not None and scanned != expected:
                raise PolicyRefusal("label-mismatch", f"scanned label {scanned} does not match the manifest's "
                                                      f"label {expected} for device {device_id}")
            return expected
        if scanned is None:
            raise PolicyRefusal("no-label", f"no label for device {device_id}: scan its label")
        if manifest and scanned not in manifest.labels:
            raise PolicyRefusal("not-in-manifest", f"label {scanned} is not in the batch manifest")
        return scanned

    def claim_label(self, label: str, device_id: str) -> None:
        """Reserve `label` for this run; a label scanned or assigned twice is refused."""
        with self._lock:
            if label in self._labels_in_use:
                raise PolicyRefusal("label-reused", f"label {label} was already used in batch {self.batch_id}")
            self._labels_in_use.add(label)

    def release_label(self, label: str) -> None:
        with self._lock:
            self._labels_in_use.discard(label)

    def take_unit(self, device_id: str) -> None:
        """A device starts its provisioning in this work order. With an expected count, the
        order is full once that many devices passed or are on their way: a work order for 100
        units never provisions a 101st, whichever slots they come through."""
        with self._lock:
            if self.expected is not None and \
                    self.passed_before + self.passed + self._in_progress >= self.expected:
                raise PolicyRefusal("batch-complete", f"batch {self.batch_id} already has its {self.expected} "
                                                      f"device(s) passed or in progress; device {device_id} "
                                                      "belongs to another work order")
            self._in_progress += 1

    def count(self, passed: bool, *, took_unit: bool = False) -> tuple[int, int]:
        """Count a device's end; `took_unit` says whether it had taken a unit (take_unit)."""
        with self._lock:
            if took_unit:
                self._in_progress -= 1
            if passed:
                self.passed += 1
            else:
                self.failed += 1
            return self.passed, self.failed
