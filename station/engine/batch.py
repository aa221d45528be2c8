"""A batch is a work order: id, model, operator, expected count and an optional manifest.

The manifest is a CSV with a header. Column `label` is required; `device_id` is optional.
With device ids it decides each device's label ("the manifest decides"); with labels only, a
scanned label must be one of them. Each label may be used once. Labels and device ids are
checked when the manifest is loaded, so a bad line is refused before the batch opens.
"""
from __future__ import annotations

import csv
import hashlib
import io
import threading
from dataclasses import dataclass, field
from pathlib import Path

from station.errors import ConfigError, PolicyRefusal
from station.identifiers import DEVICE_ID, LABEL
from station.regular_file import read_regular_file
from station.text import printable

MANIFEST_COLUMNS = ("device_id", "label")


@dataclass(frozen=True)
class Manifest:
    path: Path
    sha256: str
    labels: tuple[str, ...]
    label_by_device: dict[str, str]  # empty when the manifest has no device_id column
    label_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        # `scanned in labels` per device would scan a million-entry tuple each time.
        object.__setattr__(self, "label_set", frozenset(self.labels))

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        """Read and check a manifest: every label and device id valid (station.identifiers)
        and listed once. Linear in the number of lines. ConfigError names file and line."""
        raw = read_regular_file(path, "manifest")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line_no = raw.count(b"\n", 0, exc.start) + 1
            raise ConfigError(f"manifest {path} line {line_no}: not UTF-8 text") from None
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            labels, by_device = _read_rows(reader, path)
        # A field over csv.field_size_limit() (128 KiB): the limit stays (no label or device
        # id comes near it) and becomes a refusal naming the line, as any other csv.Error.
        except csv.Error as exc:
            raise ConfigError(f"manifest {path} line {reader.line_num}: {exc}") from None
        return cls(path=Path(path), sha256=hashlib.sha256(raw).hexdigest(), labels=labels,
                   label_by_device=by_device)

    @staticmethod
    def write(path: Path, rows) -> None:
        """Write a manifest of (device_id, label) rows, as the demo and the benchmark make them."""
        with open(path, "w", encoding="utf-8", newline="") as fh:
            out = csv.writer(fh, lineterminator="\n")
            out.writerow(MANIFEST_COLUMNS)
            out.writerows(rows)


def _where(path, reader) -> str:
    return f"manifest {path} line {reader.line_num}"


def _read_rows(reader, path) -> tuple[tuple[str, ...], dict[str, str]]:
    """The labels in order and, with a device_id column, label by upper-cased device id.
    `reader` is a csv.reader (lists, not DictReader's dicts: a third of the time on 1M lines)."""
    header = next(reader, [])
    columns = [c.strip() for c in header]
    if "label" not in columns:
        raise ConfigError(f"manifest {path}: the header must name a 'label' column "
                          f"(found: {printable(', '.join(columns)) or 'none'})")
    label_at = columns.index("label")
    device_at = columns.index("device_id") if "device_id" in columns else None
    labels: dict[str, None] = {}  # keeps the order and answers `in` in O(1), unlike a list
    by_device: dict[str, str] = {}
    width = len(header)
    # Bound methods and the error text built only on a bad line: this loop runs once per
    # device, a million times for a large work order.
    label_ok, device_ok = LABEL.pattern.fullmatch, DEVICE_ID.pattern.fullmatch
    for row in reader:
        if not row:
            continue  # a blank line
        if len(row) > width:
            raise ConfigError(f"{_where(path, reader)}: {len(row)} fields, but the header names {width}")
        label = row[label_at].strip() if label_at < len(row) else ""
        if not label_ok(label):
            raise ConfigError(f"{_where(path, reader)}: {LABEL.problem(label)}")
        if label in labels:
            raise ConfigError(f"{_where(path, reader)}: label {label} appears twice")
        labels[label] = None
        if device_at is not None:
            device_id = row[device_at].strip() if device_at < len(row) else ""
            if not device_ok(device_id):
                raise ConfigError(f"{_where(path, reader)}: {DEVICE_ID.problem(device_id)}")
            key = device_id.upper()
            if key in by_device:
                raise ConfigError(f"{_where(path, reader)}: device {device_id} appears twice")
            by_device[key] = label
    if not labels:
        raise ConfigError(f"manifest {path}: no devices listed")
    return tuple(labels), by_device


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
        if manifest and scanned not in manifest.label_set:
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
