"""Labels: the spec's ``labels.json`` / ``classes.json``, and converters from the CSVs datasets ship.

``labels.json`` is a JSON array of ``{"video_id", "emotion", "sentiment"?, "text"?}`` objects (spec section 3);
``classes.json`` an optional array of class names whose order fixes the class indexes. Every problem is a
``LabelError`` naming the file, the entry or line, the key, and what was expected: the reference loader silently
maps an unknown label to ``neutral`` and skips unreadable samples, and that is what this module is here to stop.

Converters turn a dataset's own label files into ``Label`` lists (``convert(kind, paths, ...)``). Rows they drop
or skip are counted in human-readable notes appended to ``report``, never dropped silently.
"""

from __future__ import annotations

import contextlib
import csv
import inspect
import io
import json
import math
import os
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import LabelError, LabelFileExistsError

__all__ = [
    "CLASSES_FILE",
    "CONVERTERS",
    "IEMOCAP_CLASSES",
    "LABELS_FILE",
    "MELD_CLASSES",
    "MER_CLASSES",
    "MOSEI_CLASSES",
    "Label",
    "check_labels_against_classes",
    "convert",
    "convert_csv",
    "convert_iemocap",
    "convert_meld",
    "convert_mer",
    "convert_mosei",
    "derive_classes",
    "load_label_set",
    "read_classes",
    "read_labels",
    "write_classes",
    "write_label_set",
    "write_labels",
]

PathLike = str | os.PathLike

LABELS_FILE = "labels.json"
CLASSES_FILE = "classes.json"

MER_CLASSES: tuple[str, ...] = ("neutral", "angry", "happy", "sad", "worried", "surprise")
MELD_CLASSES: tuple[str, ...] = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
MOSEI_EMOTIONS: tuple[str, ...] = ("happiness", "sadness", "anger", "fear", "disgust", "surprise")
MOSEI_CLASSES: tuple[str, ...] = ("neutral",) + MOSEI_EMOTIONS
# CMU-MultimodalSDK's label CSVs name two of the intensity columns differently (happy, sad, anger, surprise,
# disgust, fear); either spelling is read, the classes keep the names above.
MOSEI_ALIASES: dict[str, str] = {"happiness": "happy", "sadness": "sad"}
# IEMOCAP: the first four follow the reference loader's emo2idx order (neutral, angry, happy, sad).
IEMOCAP_CLASSES: dict[str, tuple[str, ...]] = {
    "4": ("neutral", "angry", "happy", "sad"),
    "6": ("neutral", "angry", "happy", "sad", "excited", "frustrated"),
}
IEMOCAP_CODES: dict[str, str | None] = {
    "neu": "neutral", "hap": "happy", "exc": "excited", "sad": "sad", "ang": "angry", "fru": "frustrated",
    "sur": "surprise", "fea": "fear", "dis": "disgust", "oth": None, "xxx": None,
}
MER_NO_VALENCE = -10.0
_LIST_MAX = 5  # ids shown per problem before "and N more"


@dataclass(frozen=True)
class Label:
    """One sample's annotation. ``sentiment`` is a label ("positive") or a score (CMU-MOSEI, MER valence)."""

    video_id: str
    emotion: str
    sentiment: str | float | None = None
    text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The spec's JSON object; ``None`` fields are left out."""
        entry: dict[str, Any] = {"video_id": self.video_id, "emotion": self.emotion}
        if self.sentiment is not None:
            entry["sentiment"] = self.sentiment
        if self.text is not None:
            entry["text"] = self.text
        return entry


# --------------------------------------------------------------------------------------------- labels.json


def read_labels(path: PathLike) -> list[Label]:
    """Read and check a spec ``labels.json``; extra keys in an entry are ignored."""
    path = Path(path)
    data = _load_json(path, "labels", "a JSON array of label objects")
    if not isinstance(data, list):
        raise LabelError(f"{path}: expected a JSON array of label objects at the top level, found {_kind(data)}")
    labels = []
    for i, entry in enumerate(data):
        where = f"{path}: entry [{i}]"
        if not isinstance(entry, dict):
            raise LabelError(f"{where}: expected an object with 'video_id' and 'emotion', found {_describe(entry)}")
        for key in ("video_id", "emotion"):
            if key not in entry:
                raise LabelError(f"{where}: missing key {key!r} (expected a non-empty string)")
        label = Label(entry["video_id"], entry["emotion"], entry.get("sentiment"), entry.get("text"))
        _check_label(label, where)
        labels.append(label)
    _check_unique(labels, lambda i: f"entry [{i}]", str(path))
    return labels


def write_labels(path: PathLike, labels: Iterable[Label]) -> None:
    """Check ``labels`` and write them as a spec ``labels.json``, atomically."""
    path = Path(path)
    labels = list(labels)
    _check_label_list(labels, path)
    _write_json_atomic(path, [label.to_dict() for label in labels])


def _check_label_list(labels: list[Any], path: Path) -> None:
    for i, label in enumerate(labels):
        if not isinstance(label, Label):
            raise LabelError(f"{path}: labels[{i}]: expected a Label, found {_describe(label)}")
        _check_label(label, f"{path}: labels[{i}]")
    _check_unique(labels, lambda i: f"labels[{i}]", str(path))


def _check_label(label: Label, where: str) -> None:
    for key in ("video_id", "emotion"):
        value = getattr(label, key)
        if not isinstance(value, str) or not value.strip():
            raise LabelError(f"{where}: key {key!r}: expected a non-empty string, found {_describe(value)}")
        if key == "video_id":
            where = f"{where} (video_id {value!r})"
    s = label.sentiment
    if s is not None and not isinstance(s, str) and (
        isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s)
    ):
        raise LabelError(f"{where}: key 'sentiment': expected a string, a finite number or null, found {_describe(s)}")
    if label.text is not None and not isinstance(label.text, str):
        raise LabelError(f"{where}: key 'text': expected a string or null, found {_describe(label.text)}")


def _check_unique(labels: Sequence[Label], name: Callable[[int], str], source: str) -> None:
    first: dict[str, int] = {}
    for i, label in enumerate(labels):
        j = first.setdefault(label.video_id, i)
        if j != i:
            raise LabelError(f"{source}: duplicate video_id {label.video_id!r} at {name(j)} and {name(i)}")


# -------------------------------------------------------------------------------------------- classes.json


def read_classes(path: PathLike) -> list[str]:
    """Read and check ``classes.json``: a JSON array of unique non-empty strings."""
    path = Path(path)
    data = _load_json(path, "classes", "a JSON array of class names")
    if not isinstance(data, list):
        raise LabelError(f"{path}: expected a JSON array of class names at the top level, found {_kind(data)}")
    _check_classes(data, str(path), "entry ")
    return list(data)


def write_classes(path: PathLike, classes: Iterable[str]) -> None:
    """Check ``classes`` and write them as ``classes.json``, atomically."""
    path = Path(path)
    classes = list(classes)
    _check_classes(classes, str(path), "classes")
    _write_json_atomic(path, classes)


def _check_classes(classes: list[Any], source: str, name: str) -> None:
    if not classes:
        raise LabelError(f"{source}: no classes listed, expected at least one class name")
    first: dict[str, int] = {}
    for i, c in enumerate(classes):
        if not isinstance(c, str) or not c.strip():
            raise LabelError(f"{source}: {name}[{i}]: expected a non-empty string class name, found {_describe(c)}")
        j = first.setdefault(c, i)
        if j != i:
            raise LabelError(f"{source}: duplicate class {c!r} at {name}[{j}] and {name}[{i}]")


def derive_classes(labels: Iterable[Label]) -> list[str]:
    """The classes used by ``labels``: sorted unique emotions, so the same labels always give the same order."""
    return sorted({label.emotion for label in labels})


def check_labels_against_classes(labels: Iterable[Label], classes: Sequence[str], source: str) -> None:
    """Raise ``LabelError`` listing every emotion not in ``classes``, with its video ids and the valid classes."""
    known = set(classes)
    unknown: dict[str, list[str]] = {}
    for label in labels:
        if label.emotion not in known:
            unknown.setdefault(label.emotion, []).append(label.video_id)
    if unknown:
        n = sum(len(ids) for ids in unknown.values())
        parts = [f"{emotion!r} (video ids {_short_list(ids)})" for emotion, ids in unknown.items()]
        raise LabelError(f"{source}: {n} label(s) not in the classes: {'; '.join(parts)}; "
                         f"valid classes: {', '.join(classes)}")


def load_label_set(ann_path: PathLike, classes_path: PathLike | None = None) -> tuple[list[Label], list[str]]:
    """Read labels and their classes, and check that every emotion is a known class.

    Classes come from ``classes_path``, else from ``classes.json`` beside ``ann_path`` if there is one, else
    they are derived from the labels (sorted).
    """
    ann_path = Path(ann_path)
    labels = read_labels(ann_path)
    if classes_path is None and (ann_path.parent / CLASSES_FILE).is_file():
        classes_path = ann_path.parent / CLASSES_FILE
    if classes_path is None:
        return labels, derive_classes(labels)
    classes = read_classes(classes_path)
    check_labels_against_classes(labels, classes, f"{ann_path} (classes from {classes_path})")
    return labels, classes


# --------------------------------------------------------------------------------------------- label sets


def write_label_set(dataset_root: PathLike, labels: Iterable[Label], classes: Iterable[str], *,
                    overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``labels.json`` and ``classes.json`` into ``dataset_root`` (created if needed); return their paths.

    Both are checked first, so nothing is written unless both can be. An existing file is never replaced
    silently, as it may have been edited by hand: one with the same content is left as it is, one that differs is
    a ``LabelFileExistsError`` saying how, unless ``overwrite``.
    """
    root = Path(dataset_root)
    labels_path, classes_path = root / LABELS_FILE, root / CLASSES_FILE
    labels, classes = list(labels), list(classes)
    _check_label_list(labels, labels_path)
    _check_classes(classes, str(classes_path), "classes")
    check_labels_against_classes(labels, classes, f"{labels_path} (classes for {classes_path})")
    if root.exists() and not root.is_dir():
        raise LabelError(f"{root}: exists and is not a folder; expected a dataset root folder")
    pending: list[tuple[Path, Any]] = []
    conflicts: list[str] = []
    for path, new, data, read, describe in (
        (classes_path, classes, classes, read_classes, _classes_change),
        (labels_path, labels, [label.to_dict() for label in labels], read_labels, _labels_change),
    ):
        if overwrite or not path.exists():
            pending.append((path, data))
            continue
        try:
            old = read(path)
        except LabelError as exc:
            conflicts.append(f"{path} exists and cannot be compared: {str(exc).removeprefix(f'{path}: ')}")
            continue
        if old != new:
            conflicts.append(f"{path} exists with {describe(old, new)}")
    if conflicts:
        raise LabelFileExistsError(f"{'; '.join(conflicts)}; not replaced")
    _make_folder(root)
    for path, data in pending:
        _write_json_atomic(path, data)
    return labels_path, classes_path


def _labels_change(old: list[Label], new: list[Label]) -> str:
    """How labels read from a file differ from a new set, e.g. ``4 labels, the new set has 3: 1 ids only in ...``."""
    old_by_id = {x.video_id: x for x in old}
    new_by_id = {x.video_id: x for x in new}
    both = [v for v in old_by_id if v in new_by_id]
    groups = [("only in the file", [v for v in old_by_id if v not in new_by_id]),
              ("only in the new set", [v for v in new_by_id if v not in old_by_id])]
    groups += [(f"with another {key}", [v for v in both if getattr(old_by_id[v], key) != getattr(new_by_id[v], key)])
               for key in ("emotion", "sentiment", "text")]
    parts = [f"{len(ids)} ids {what} ({_short_list(ids)})" for what, ids in groups if ids]
    return f"{len(old)} labels, the new set has {len(new)}: {', '.join(parts) or 'the same labels in another order'}"


def _classes_change(old: list[str], new: list[str]) -> str:
    """How classes read from a file differ from a new list, e.g. ``6 classes, the new list has 7: ...``."""
    groups = [("only in the file", [c for c in old if c not in new]),
              ("only in the new list", [c for c in new if c not in old])]
    parts = [f"{len(names)} {what} ({_short_list(names)})" for what, names in groups if names]
    detail = ", ".join(parts) or f"the same classes in another order ({', '.join(new)}), which changes the indexes"
    return f"{len(old)} classes, the new list has {len(new)}: {detail}"


def _make_folder(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in root.parents if p.exists() and not p.is_dir()), None)
        reason = f"{blocker} is a file, not a folder" if blocker is not None else (exc.strerror or str(exc))
        raise LabelError(f"{root}: cannot create the dataset root: {reason}") from None


# ------------------------------------------------------------------------------------------------- JSON I/O


def _load_json(path: Path, what: str, expected: str) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LabelError(f"{path}: no such {what} file") from None
    except OSError as e:
        raise LabelError(f"{path}: cannot read the {what} file: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise LabelError(f"{path}: not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                         f"expected UTF-8 JSON") from None
    if not text.strip():
        raise LabelError(f"{path}: empty file, expected {expected}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise LabelError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None


def _write_json_atomic(path: Path, data: Any) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=1, allow_nan=False) + "\n"
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", type(None): "null"}.get(type(value), _describe(value))


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _short_list(items: Sequence[str]) -> str:
    shown = ", ".join(repr(x) for x in items[:_LIST_MAX])
    return shown if len(items) <= _LIST_MAX else f"{shown} and {len(items) - _LIST_MAX} more"


# ------------------------------------------------------------------------------------------------ CSV input


@dataclass(frozen=True)
class _Row:
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


def _read_csv(path: PathLike, required: Sequence[str] = (), delimiter: str = ",",
              ) -> tuple[list[str], Iterator[_Row]]:
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

    def rows() -> Iterator[_Row]:
        start = reader.line_num + 1
        while (record := _next_record(reader, path)) is not None:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue  # a blank line is not a row
            if len(record) != len(header):
                raise LabelError(f"{path}: line {line}: {len(record)} fields, the header has {len(header)} "
                                 f"({', '.join(header)})")
            yield _Row(path, line, dict(zip(header, record)))

    return header, rows()


def _next_record(reader: Any, path: Path) -> list[str] | None:
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as e:
        raise LabelError(f"{path}: line {reader.line_num}: malformed CSV: {e}") from None


def _pick_column(header: Sequence[str], path: Path, given: str | None, candidates: Sequence[str], role: str,
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


class _Collector:
    """Labels in input order, refusing a video id seen before and naming both source rows."""

    def __init__(self) -> None:
        self.labels: list[Label] = []
        self.sources: dict[str, str] = {}

    def add(self, label: Label, source: str) -> None:
        if label.video_id in self.sources:
            raise LabelError(f"duplicate video id {label.video_id!r}: {self.sources[label.video_id]} and {source}")
        self.sources[label.video_id] = source
        self.labels.append(label)


def _paths(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found = [Path(p) for p in paths]
    if not found:
        raise LabelError("no input files given")
    return found


def _note(report: list[str] | None, text: str) -> None:
    if report is not None:
        report.append(text)


def _counts(counter: Counter) -> str:
    return ", ".join(f"{n} {key!r}" for key, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def _ordered_classes(fixed: Sequence[str], labels: Iterable[Label]) -> list[str]:
    """``fixed`` first, then any other emotions found (only with ``allow_extra_classes``), sorted."""
    extra = sorted({label.emotion for label in labels} - set(fixed))
    return list(fixed) + extra


class _KnownClasses:
    """Checks each row's label against a dataset's class list: a label outside it is a ``LabelError`` naming the
    row, unless ``allow`` is set, in which case it is counted and reported as an added class."""

    def __init__(self, dataset: str, known: Sequence[str], allow: bool) -> None:
        self.dataset, self.known, self.allow = dataset, tuple(known), bool(allow)
        self.extra: Counter = Counter()

    def check(self, emotion: str, where: str) -> None:
        if emotion in self.known:
            return
        if not self.allow:
            raise LabelError(f"{where}: label {emotion!r} is not one of the {self.dataset} classes "
                             f"({', '.join(self.known)}); correct it, or pass allow_extra_classes=True "
                             f"(--extra-classes) to add it as a new class")
        self.extra[emotion] += 1

    def note(self, report: list[str] | None) -> None:
        if self.extra:
            _note(report, f"{sum(self.extra.values())} labels outside the {self.dataset} classes added as "
                          f"{len(self.extra)} new class(es) after them: {_counts(self.extra)}")


# ----------------------------------------------------------------------------------------------- converters


def convert_mer(paths: PathLike | Sequence[PathLike], *, text_lang: str = "english",
                allow_extra_classes: bool = False, report: list[str] | None = None) -> list[Label]:
    """MER2023 ``train-label.csv`` / MER2024 ``label-disdim.csv`` (``name, discrete[, valence]``), and
    optionally MER2024 ``label-transcription.csv`` (``name, chinese, english``) for the text.

    Files are told apart by their header. Valence ``-10`` means none; any other valence becomes the sentiment.
    A label outside ``MER_CLASSES`` is an error naming the file and line, unless ``allow_extra_classes``: then it
    is kept (``convert`` appends it to the classes) and counted in ``report``.
    """
    if text_lang not in ("chinese", "english"):
        raise LabelError(f"text_lang {text_lang!r}: expected 'chinese' or 'english'")
    out = _Collector()
    known = _KnownClasses("MER", MER_CLASSES, allow_extra_classes)
    texts: dict[str, str] = {}
    text_sources: dict[str, str] = {}
    for path in _paths(paths):
        header, rows = _read_csv(path, ("name",))
        if "discrete" in header:
            for row in rows:
                name = row.require("name", "a sample name")
                emotion = row.require("discrete", "an emotion label")
                known.check(emotion, f"{row.where} (name {name!r}): column 'discrete'")
                valence = row.number("valence", f" (name {name!r})") if "valence" in header else None
                sentiment = None if valence is None or valence == MER_NO_VALENCE else valence
                out.add(Label(name, emotion, sentiment), row.where)
        elif "chinese" in header or "english" in header:
            if text_lang not in header:
                raise LabelError(f"{path}: missing column {text_lang!r} for text_lang={text_lang!r} "
                                 f"(header has: {', '.join(header)})")
            for row in rows:
                name = row.require("name", "a sample name")
                if name in text_sources:
                    raise LabelError(f"duplicate transcription for {name!r}: {text_sources[name]} and {row.where}")
                text_sources[name] = row.where
                texts[name] = row.get(text_lang)
        else:
            raise LabelError(f"{path}: neither a MER label file (columns name, discrete, valence) nor a "
                             f"transcription file (columns name, chinese, english); header has: {', '.join(header)}")
    known.note(report)
    labels = out.labels
    if text_sources:
        labels = [Label(x.video_id, x.emotion, x.sentiment, texts.get(x.video_id) or None) for x in labels]
        no_text = sum(1 for x in labels if x.text is None)
        if no_text:
            _note(report, f"{no_text} labels have no {text_lang} transcription (text left empty)")
        unused = len(set(texts) - set(out.sources))
        if unused:
            _note(report, f"ignored {unused} transcription rows with no label")
    return labels


def convert_meld(paths: PathLike | Sequence[PathLike], *, id_prefix: str = "", allow_extra_classes: bool = False,
                 report: list[str] | None = None) -> list[Label]:
    """MELD ``{train,dev,test}_sent_emo.csv``: id ``{id_prefix}dia{Dialogue_ID}_utt{Utterance_ID}``.

    ``id_prefix`` may contain ``{split}``, replaced by the file name's part before ``_sent_emo``, which keeps ids
    unique when several splits are merged (MELD numbers dialogues from 0 in every split). An emotion outside
    ``MELD_CLASSES`` is an error naming the file and line, unless ``allow_extra_classes`` (then it is kept and
    counted in ``report``).
    """
    out = _Collector()
    known = _KnownClasses("MELD", MELD_CLASSES, allow_extra_classes)
    for path in _paths(paths):
        _, rows = _read_csv(path, ("Utterance", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID"))
        prefix = id_prefix.replace("{split}", Path(path).name.split("_sent_emo")[0])
        for row in rows:
            dia = _int_cell(row, "Dialogue_ID")
            utt = _int_cell(row, "Utterance_ID")
            vid = f"{prefix}dia{dia}_utt{utt}"
            emotion = row.require("Emotion", f"an emotion label for {vid!r}")
            known.check(emotion, f"{row.where} ({vid!r}): column 'Emotion'")
            sentiment = row.get("Sentiment") or None
            out.add(Label(vid, emotion, sentiment, row.get("Utterance") or None), row.where)
    known.note(report)
    return out.labels


def _int_cell(row: _Row, column: str) -> int:
    value = row.require(column, "an integer")
    if not value.isdigit():
        raise LabelError(f"{row.where}: column {column!r}: expected a non-negative integer, found {value!r}")
    return int(value)


_IEMOCAP_TURN = re.compile(r"^\[\s*([-\d.]+)\s*-\s*([-\d.]+)\s*\]\s+(\S+)\s+(\S+)\s+\[[^\]]*\]\s*$")


def convert_iemocap(paths: PathLike | Sequence[PathLike], *, classes: int | str = 4,
                    report: list[str] | None = None) -> list[Label]:
    """IEMOCAP ``Session*/dialog/EmoEvaluation/*.txt`` files (directories are searched recursively).

    ``classes=4`` keeps neutral, angry, happy, sad and merges excited into happy; ``classes=6`` keeps those and
    excited, frustrated. ``oth``/``xxx`` turns are skipped and other emotions dropped, both counted in ``report``.
    """
    mode = str(classes)
    if mode not in IEMOCAP_CLASSES:
        raise LabelError(f"IEMOCAP classes {classes!r}: expected one of {', '.join(IEMOCAP_CLASSES)}")
    keep = set(IEMOCAP_CLASSES[mode])
    out = _Collector()
    skipped: Counter = Counter()
    dropped: Counter = Counter()
    merged = 0
    for path in _iemocap_files(paths):
        try:
            text = path.read_text(encoding="utf-8-sig", errors="strict")
        except (OSError, UnicodeDecodeError) as e:
            raise LabelError(f"{path}: cannot read the EmoEvaluation file: {e}") from None
        for n, line in enumerate(text.splitlines(), 1):
            if not line.startswith("["):
                continue  # the header, blank lines and the per-evaluator "C-E1:" / "A-E1:" lines
            m = _IEMOCAP_TURN.match(line)
            if m is None:
                raise LabelError(f"{path}: line {n}: expected '[start - end]<TAB>turn id<TAB>emotion code<TAB>"
                                 f"[V, A, D]', found {line.strip()[:80]!r}")
            turn, code = m.group(3), m.group(4)
            where = f"{path}: line {n}"
            if code not in IEMOCAP_CODES:
                raise LabelError(f"{where} (turn {turn!r}): unknown emotion code {code!r}; "
                                 f"expected one of {', '.join(IEMOCAP_CODES)}")
            emotion = IEMOCAP_CODES[code]
            if emotion is None:
                skipped[code] += 1
                continue
            if mode == "4" and emotion == "excited":
                emotion, merged = "happy", merged + 1
            if emotion not in keep:
                dropped[emotion] += 1
                continue
            out.add(Label(turn, emotion), where)
    if skipped:
        _note(report, f"skipped {sum(skipped.values())} turns without an agreed emotion: {_counts(skipped)}")
    if merged:
        _note(report, f"merged {merged} 'excited' turns into 'happy' ({mode}-way)")
    if dropped:
        _note(report, f"dropped {sum(dropped.values())} turns outside the {mode}-way classes: {_counts(dropped)}")
    return out.labels


def _iemocap_files(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    files: list[Path] = []
    for path in _paths(paths):
        if path.is_dir():
            # Only files directly in EmoEvaluation/: its Categorical/, Attribute/, Self-evaluation/ subfolders hold
            # per-evaluator files in other formats; "._*" are macOS resource forks shipped in some copies.
            found = sorted(p for p in path.rglob("*.txt")
                           if p.parent.name == "EmoEvaluation" and not p.name.startswith("._"))
            if not found:
                raise LabelError(f"{path}: no EmoEvaluation/*.txt files found under this directory "
                                 f"(expected Session*/dialog/EmoEvaluation/*.txt)")
            files.extend(found)
        elif path.suffix.lower() == ".csv":
            raise LabelError(f"{path}: a CSV, not an EmoEvaluation .txt file; convert it with the 'csv' "
                             f"converter (columns video_id/utterance_id/name and emotion/label)")
        elif not path.exists():
            raise LabelError(f"{path}: no such file or directory")
        else:
            files.append(path)
    return files


def convert_mosei(paths: PathLike | Sequence[PathLike], *, report: list[str] | None = None) -> list[Label]:
    """CMU-MOSEI: a CSV with ``video_id`` (or ``video`` + ``clip``/``segment``), ``sentiment`` in [-3, 3] and
    the six emotion intensities, named happiness, sadness, anger, fear, disgust, surprise or, as the
    CMU-MultimodalSDK does, happy, sad, anger, surprise, disgust, fear (any column order). The emotion is the
    strongest one, ``neutral`` when all are 0; ties go to the first in the order happiness, sadness, anger, fear,
    disgust, surprise and are counted in ``report``.
    """
    out = _Collector()
    ties = 0
    no_sentiment = 0
    for path in _paths(paths):
        header, rows = _read_csv(path, ("sentiment",))
        columns = _mosei_columns(header, path)
        if "video_id" in header:
            id_cols: tuple[str, ...] = ("video_id",)
        elif "video" in header and ("clip" in header or "segment" in header):
            id_cols = ("video", "clip" if "clip" in header else "segment")
        else:
            raise LabelError(f"{path}: missing column 'video_id' (or 'video' with 'clip'/'segment'); "
                             f"header has: {', '.join(header)}")
        for row in rows:
            vid = "_".join(row.require(c, "a video id part") for c in id_cols)
            context = f" (video_id {vid!r})"
            sentiment = row.number("sentiment", context)
            if sentiment is None:
                no_sentiment += 1
            elif not -3.0 <= sentiment <= 3.0:
                raise LabelError(f"{row.where}{context}: column 'sentiment': expected a score in [-3, 3], "
                                 f"found {row.get('sentiment')!r}")
            intensities = []
            for column in columns:
                value = row.number(column, context)
                if value is None or value < 0:
                    raise LabelError(f"{row.where}{context}: column {column!r}: expected an intensity >= 0, "
                                     f"found {row.get(column)!r}")
                intensities.append(value)
            top = max(intensities)
            if top == 0:
                emotion = "neutral"
            else:
                emotion = MOSEI_EMOTIONS[intensities.index(top)]
                ties += intensities.count(top) > 1
            text = (row.get("text") or None) if "text" in header else None
            out.add(Label(vid, emotion, sentiment, text), row.where)
    if ties:
        _note(report, f"{ties} clips had tied strongest emotions; took the first in the order "
                      f"{', '.join(MOSEI_EMOTIONS)}")
    if no_sentiment:
        _note(report, f"{no_sentiment} clips have no sentiment score (left empty)")
    return out.labels


def _mosei_columns(header: Sequence[str], path: Path) -> list[str]:
    """The intensity column of each of ``MOSEI_EMOTIONS``, in that order, under either spelling."""
    expected = ", ".join(f"{e} (or {MOSEI_ALIASES[e]})" if e in MOSEI_ALIASES else e for e in MOSEI_EMOTIONS)
    columns = []
    for emotion in MOSEI_EMOTIONS:
        found = [c for c in (emotion, MOSEI_ALIASES.get(emotion)) if c is not None and c in header]
        if not found:
            alias = f" (or {MOSEI_ALIASES[emotion]!r})" if emotion in MOSEI_ALIASES else ""
            raise LabelError(f"{path}: missing column {emotion!r}{alias} (header has: {', '.join(header)}); "
                             f"expected sentiment and the six emotion intensities {expected}")
        if len(found) > 1:
            raise LabelError(f"{path}: both {found[0]!r} and {found[1]!r} columns; they are two names of one "
                             f"emotion intensity, expected one of them")
        columns.append(found[0])
    return columns


def convert_csv(paths: PathLike | Sequence[PathLike], *, id_col: str | None = None, label_col: str | None = None,
                sentiment_col: str | None = None, text_col: str | None = None, delimiter: str | None = None,
                report: list[str] | None = None) -> list[Label]:
    """Any CSV with an id and a label column.

    Columns not given are looked up: id ``video_id``/``utterance_id``/``name``, label ``emotion``/``label``,
    and ``sentiment``/``text`` if present. Numeric sentiments become floats. ``delimiter`` defaults to a tab for
    ``.tsv`` files and a comma otherwise.
    """
    out = _Collector()
    for path in _paths(paths):
        sep = delimiter if delimiter is not None else ("\t" if path.suffix.lower() == ".tsv" else ",")
        header, rows = _read_csv(path, (), sep)
        vid_c = _pick_column(header, path, id_col, ("video_id", "utterance_id", "name"), "video id")
        emo_c = _pick_column(header, path, label_col, ("emotion", "label"), "emotion label")
        sen_c = _pick_column(header, path, sentiment_col, ("sentiment",), "sentiment", required=False)
        txt_c = _pick_column(header, path, text_col, ("text",), "text", required=False)
        used = [f"{role} {col!r}" for role, col in (("id", vid_c), ("emotion", emo_c), ("sentiment", sen_c),
                                                    ("text", txt_c)) if col]
        _note(report, f"{path.name}: columns {', '.join(used)}")
        for row in rows:
            vid = row.require(vid_c, "a video id")
            emotion = row.require(emo_c, f"an emotion label for {vid!r}")
            sentiment: str | float | None = None
            if sen_c and row.get(sen_c):
                raw = row.get(sen_c)
                try:
                    sentiment = float(raw)
                except ValueError:
                    sentiment = raw
                if isinstance(sentiment, float) and not math.isfinite(sentiment):
                    sentiment = raw
            text = (row.get(txt_c) or None) if txt_c else None
            out.add(Label(vid, emotion, sentiment, text), row.where)
    return out.labels


_ConverterSpec = tuple[Callable[..., list[Label]], Callable[[list[Label], dict[str, Any]], list[str]]]
CONVERTERS: dict[str, _ConverterSpec] = {
    "mer": (convert_mer, lambda labels, o: _ordered_classes(MER_CLASSES, labels)),
    "meld": (convert_meld, lambda labels, o: _ordered_classes(MELD_CLASSES, labels)),
    "iemocap": (convert_iemocap, lambda labels, o: list(IEMOCAP_CLASSES[str(o.get("classes", 4))])),
    "mosei": (convert_mosei, lambda labels, o: list(MOSEI_CLASSES)),
    "csv": (convert_csv, lambda labels, o: derive_classes(labels)),
}


def convert(kind: str, paths: PathLike | Sequence[PathLike], *, report: list[str] | None = None,
            **options: Any) -> tuple[list[Label], list[str]]:
    """Run the ``kind`` converter over ``paths``; return the labels and the dataset's class list.

    Class order: the dataset's usual list (MER, MELD, IEMOCAP, MOSEI), followed for MER and MELD by the labels
    outside it, sorted, when ``allow_extra_classes=True`` (without it such a label is an error naming its file
    and line); sorted labels for ``csv``. Notes on skipped, dropped or merged rows are appended to ``report``.
    """
    if kind not in CONVERTERS:
        raise LabelError(f"unknown label format {kind!r}: expected one of {', '.join(CONVERTERS)}")
    func, classes_for = CONVERTERS[kind]
    accepted = [name for name in inspect.signature(func).parameters if name not in ("paths", "report")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise LabelError(f"{kind}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(accepted) or 'none'}")
    labels = func(paths, report=report, **options)
    if not labels:
        raise LabelError(f"{kind}: no labels found in {', '.join(str(p) for p in _paths(paths))}")
    classes = classes_for(labels, options)
    check_labels_against_classes(labels, classes, f"{kind} labels")
    return labels, classes
