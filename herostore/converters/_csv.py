"""What the converters share: a CSV reader that names the file and line of every problem, a collector refusing
duplicate ids, and the check of a label against a dataset's class list."""

from __future__ import annotations

import csv
import io
import math
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LabelError
from ..labels import Label, PathLike


@dataclass(frozen=True)
class Row:
    """One CSV record: its cells by column name, and where it came from."""

    path: Path
    line: int
    cells: dict[str, str]

    @property
    def where(self) -> str:
        return f"{self.path}: line {self.line}"

    def get(self, column: str) -> str:
        return self.cells[column].strip()

    def require(self, column: str, what: str = "a non-empty value") -> str:
        value = self.get(column)
        if not value:
            raise LabelError(f"{self.where}: column {column!r} is empty, expected {what}")
        return value

    def number(self, column: str, context: str = "") -> float | None:
        """The column as a finite float, ``None`` when empty."""
        value = self.get(column)
        if not value:
            return None
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise LabelError(f"{self.where}{context}: column {column!r}: expected a number, found {value!r}")
        return number

    def integer(self, column: str) -> int:
        """The column as a non-negative integer."""
        value = self.require(column, "an integer")
        if not value.isdigit():
            raise LabelError(f"{self.where}: column {column!r}: expected a non-negative integer, found {value!r}")
        return int(value)


def read_csv(path: PathLike, required: Sequence[str] = (), delimiter: str = ",") -> tuple[list[str], Iterator[Row]]:
    """Open a CSV (UTF-8, BOM eaten), check its header has ``required``, and iterate its records lazily."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LabelError(f"{path}: no such file") from None
    except OSError as e:
        raise LabelError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise LabelError(f"{path}: line {line}: not UTF-8 (byte 0x{raw[e.start]:02x}); expected a UTF-8 CSV") from None
    # StringIO(newline="") splits records like a file opened with newline="", as the csv module wants.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header = _next_record(reader, path)
    while header is not None and not any(cell.strip() for cell in header):
        header = _next_record(reader, path)
    expected = f"expected a CSV header with columns {', '.join(required)}" if required else "expected a CSV header"
    if header is None:
        raise LabelError(f"{path}: empty file, {expected}")
    header = [cell.strip() for cell in header]
    for column in required:
        if column not in header:
            raise LabelError(f"{path}: missing column {column!r} (header line {reader.line_num} has: "
                             f"{', '.join(header)}); {expected}")

    def rows() -> Iterator[Row]:
        start = reader.line_num + 1
        while (record := _next_record(reader, path)) is not None:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue  # a blank line is not a row
            if len(record) != len(header):
                raise LabelError(f"{path}: line {line}: {len(record)} fields, the header has {len(header)} "
                                 f"({', '.join(header)})")
            yield Row(path, line, dict(zip(header, record)))

    return header, rows()


def _next_record(reader: Any, path: Path) -> list[str] | None:
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as e:
        raise LabelError(f"{path}: line {reader.line_num}: malformed CSV: {e}") from None


def pick_column(header: Sequence[str], path: Path, given: str | None, candidates: Sequence[str], role: str,
                required: bool = True) -> str | None:
    """The column named ``given``, else the first of ``candidates`` in the header."""
    if given is not None:
        if given not in header:
            raise LabelError(f"{path}: missing column {given!r} for the {role} (header has: {', '.join(header)})")
        return given
    for column in candidates:
        if column in header:
            return column
    if required:
        raise LabelError(f"{path}: no {role} column: expected one of {', '.join(candidates)} "
                         f"(header has: {', '.join(header)})")
    return None


class Collector:
    """Labels in input order, refusing a video id seen before and naming both source rows."""

    def __init__(self) -> None:
        self.labels: list[Label] = []
        self.sources: dict[str, str] = {}

    def add(self, label: Label, source: str) -> None:
        if label.video_id in self.sources:
            raise LabelError(f"duplicate video id {label.video_id!r}: {self.sources[label.video_id]} and {source}")
        self.sources[label.video_id] = source
        self.labels.append(label)


class KnownClasses:
    """Checks each row's label against a dataset's class list: a label outside it is a ``LabelError`` naming the
    row, unless ``allow`` is set, in which case it is counted and noted as an added class."""

    def __init__(self, dataset: str, known: Sequence[str], allow: bool) -> None:
        self.dataset, self.known, self.allow = dataset, tuple(known), bool(allow)
        self.extra: Counter[str] = Counter()

    def check(self, emotion: str, where: str) -> None:
        if emotion in self.known:
            return
        if not self.allow:
            raise LabelError(f"{where}: label {emotion!r} is not one of the {self.dataset} classes "
                             f"({', '.join(self.known)}); correct it, or pass allow_extra_classes=True "
                             f"(--extra-classes) to add it as a new class")
        self.extra[emotion] += 1

    def notes(self) -> list[str]:
        if not self.extra:
            return []
        note = (f"{sum(self.extra.values())} labels outside the {self.dataset} classes added as "
                f"{len(self.extra)} new class(es) after them: {counts(self.extra)}")
        return [note]


def input_paths(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    """``paths`` (one path or several) as a non-empty list."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found = [Path(p) for p in paths]
    if not found:
        raise LabelError("no input files given")
    return found


def counts(counter: Counter[str]) -> str:
    """``2 'a', 1 'b'``: most frequent first."""
    return ", ".join(f"{n} {key!r}" for key, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))
