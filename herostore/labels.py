"""The spec's label files: ``labels.json`` and ``classes.json``, read, checked and written.

``labels.json`` is a JSON array of ``{"video_id", "emotion", "sentiment"?, "text"?}`` objects (spec section 3);
``classes.json`` an optional array of class names whose order fixes the class indexes. Every problem is a
``LabelError`` naming the file, the entry or line, the key, and what was expected: the reference loader silently
maps an unknown label to ``neutral`` and skips unreadable samples, and that is what this module is here to stop.
Files are written atomically, and ``write_label_set`` never replaces a differing file unless asked to. Paths may be
URLs (``s3://bucket/root/labels.json``; ``storage_options`` for fsspec, see ``herostore.urls``).

Converters from the label files datasets ship are in ``herostore.converters``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import urls
from .errors import LabelError, LabelFileExistsError, StoreError
from .fsutil import make_folder, short_list
from .layout import CLASSES_FILE, LABELS_FILE

__all__ = [
    "CLASSES_FILE",
    "LABELS_FILE",
    "Label",
    "check_labels_against_classes",
    "derive_classes",
    "load_label_set",
    "read_classes",
    "read_labels",
    "write_classes",
    "write_label_set",
    "write_labels",
]

PathLike = str | os.PathLike
Options = Mapping[str, Any] | None



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


def read_labels(path: PathLike, storage_options: Options = None) -> list[Label]:
    """Read and check a spec ``labels.json`` (a path or a URL); extra keys in an entry are ignored."""
    path = _path(path)
    shown = urls.display(path)
    data = _load_json(path, "labels", "a JSON array of label objects", storage_options)
    if not isinstance(data, list):
        raise LabelError(f"{shown}: expected a JSON array of label objects at the top level, found {_kind(data)}")
    labels = []
    for i, entry in enumerate(data):
        where = f"{shown}: entry [{i}]"
        if not isinstance(entry, dict):
            raise LabelError(f"{where}: expected an object with 'video_id' and 'emotion', found {_describe(entry)}")
        for key in ("video_id", "emotion"):
            if key not in entry:
                raise LabelError(f"{where}: missing key {key!r} (expected a non-empty string)")
        label = Label(entry["video_id"], entry["emotion"], entry.get("sentiment"), entry.get("text"))
        _check_label(label, where)
        labels.append(label)
    _check_unique(labels, lambda i: f"entry [{i}]", shown)
    return labels


def write_labels(path: PathLike, labels: Iterable[Label], storage_options: Options = None) -> None:
    """Check ``labels`` and write them as a spec ``labels.json``, atomically (one PUT for a URL)."""
    path = _path(path)
    shown = urls.display(path)
    labels = list(labels)
    _check_label_list(labels, shown)
    _write_json_atomic(path, [label.to_dict() for label in labels], storage_options)


def _check_label_list(labels: list[Any], path: str) -> None:
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


def read_classes(path: PathLike, storage_options: Options = None) -> list[str]:
    """Read and check ``classes.json`` (a path or a URL): a JSON array of unique non-empty strings."""
    path = _path(path)
    shown = urls.display(path)
    data = _load_json(path, "classes", "a JSON array of class names", storage_options)
    if not isinstance(data, list):
        raise LabelError(f"{shown}: expected a JSON array of class names at the top level, found {_kind(data)}")
    _check_classes(data, shown, "entry ")
    return list(data)


def write_classes(path: PathLike, classes: Iterable[str], storage_options: Options = None) -> None:
    """Check ``classes`` and write them as ``classes.json``, atomically (one PUT for a URL)."""
    path = _path(path)
    shown = urls.display(path)
    classes = list(classes)
    _check_classes(classes, shown, "classes")
    _write_json_atomic(path, classes, storage_options)


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
        parts = [f"{emotion!r} (video ids {short_list(ids)})" for emotion, ids in unknown.items()]
        raise LabelError(f"{source}: {n} label(s) not in the classes: {'; '.join(parts)}; "
                         f"valid classes: {', '.join(classes)}")


def load_label_set(ann_path: PathLike, classes_path: PathLike | None = None,
                   storage_options: Options = None) -> tuple[list[Label], list[str]]:
    """Read labels and their classes, and check that every emotion is a known class.

    Classes come from ``classes_path``, else from ``classes.json`` beside ``ann_path`` if there is one, else
    they are derived from the labels (sorted). Either may be a URL.
    """
    ann_path = _path(ann_path)
    labels = read_labels(ann_path, storage_options)
    beside = urls.join(urls.parent(ann_path), CLASSES_FILE)
    if classes_path is None and _exists(beside, storage_options):
        classes_path = beside
    if classes_path is None:
        return labels, derive_classes(labels)
    classes = read_classes(classes_path, storage_options)
    check_labels_against_classes(labels, classes,
                                 f"{urls.display(ann_path)} (classes from {urls.display(classes_path)})")
    return labels, classes


# --------------------------------------------------------------------------------------------- label sets


def write_label_set(dataset_root: PathLike, labels: Iterable[Label], classes: Iterable[str], *,
                    overwrite: bool = False, storage_options: Options = None) -> tuple[Any, Any]:
    """Write ``labels.json`` and ``classes.json`` into ``dataset_root`` (created if needed); return their paths.

    Both are checked first, so nothing is written unless both can be. An existing file is never replaced
    silently, as it may have been edited by hand: one with the same content is left as it is, one that differs is
    a ``LabelFileExistsError`` saying how, unless ``overwrite``.
    """
    root = _path(dataset_root)
    labels_path, classes_path = urls.join(root, LABELS_FILE), urls.join(root, CLASSES_FILE)
    labels, classes = list(labels), list(classes)
    _check_label_list(labels, urls.display(labels_path))
    _check_classes(classes, urls.display(classes_path), "classes")
    check_labels_against_classes(labels, classes, f"{urls.display(labels_path)} (classes for "
                                                   f"{urls.display(classes_path)})")
    if not urls.is_url(root) and root.exists() and not root.is_dir():
        raise LabelError(f"{root}: exists and is not a folder; expected a dataset root folder")
    pending: list[tuple[Any, Any]] = []
    conflicts: list[str] = []
    for path, new, data, read, describe in (
        (classes_path, classes, classes, read_classes, _classes_change),
        (labels_path, labels, [label.to_dict() for label in labels], read_labels, _labels_change),
    ):
        if overwrite or not _exists(path, storage_options):
            pending.append((path, data))
            continue
        try:
            old = read(path, storage_options)
        except LabelError as exc:
            shown = urls.display(path)
            conflicts.append(f"{shown} exists and cannot be compared: {str(exc).removeprefix(f'{shown}: ')}")
            continue
        if old != new:
            conflicts.append(f"{urls.display(path)} exists with {describe(old, new)}")
    if conflicts:
        raise LabelFileExistsError(f"{'; '.join(conflicts)}; not replaced")
    if not urls.is_url(root):
        make_folder(root, "the dataset root", LabelError)
    for path, data in pending:
        _write_json_atomic(path, data, storage_options)
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
    parts = [f"{len(ids)} ids {what} ({short_list(ids)})" for what, ids in groups if ids]
    return f"{len(old)} labels, the new set has {len(new)}: {', '.join(parts) or 'the same labels in another order'}"


def _classes_change(old: list[str], new: list[str]) -> str:
    """How classes read from a file differ from a new list, e.g. ``6 classes, the new list has 7: ...``."""
    groups = [("only in the file", [c for c in old if c not in new]),
              ("only in the new list", [c for c in new if c not in old])]
    parts = [f"{len(names)} {what} ({short_list(names)})" for what, names in groups if names]
    detail = ", ".join(parts) or f"the same classes in another order ({', '.join(new)}), which changes the indexes"
    return f"{len(old)} classes, the new list has {len(new)}: {detail}"


# ------------------------------------------------------------------------------------------------- JSON I/O


def _path(path: PathLike) -> Any:
    """A local ``Path``, or a URL kept as a string."""
    return os.fspath(path) if urls.is_url(path) else urls.local(path)


def _exists(path: Any, storage_options: Options) -> bool:
    try:
        return urls.exists(path, storage_options)
    except StoreError as exc:
        raise LabelError(str(exc)) from None


def _load_json(path: Any, what: str, expected: str, storage_options: Options = None) -> Any:
    where = urls.display(path)
    try:
        raw = urls.read_bytes(path, storage_options)
    except FileNotFoundError:
        raise LabelError(f"{where}: no such {what} file") from None
    except StoreError as exc:
        raise LabelError(str(exc)) from None
    except OSError as e:
        raise LabelError(f"{where}: cannot read the {what} file: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise LabelError(f"{where}: not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                         f"expected UTF-8 JSON") from None
    if not text.strip():
        raise LabelError(f"{where}: empty file, expected {expected}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise LabelError(f"{where}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise LabelError(f"{where}: malformed JSON: nested too deeply") from None


def _write_json_atomic(path: Any, data: Any, storage_options: Options = None) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=1, allow_nan=False) + "\n"
    try:
        urls.write_bytes(path, text.encode("utf-8"), storage_options)
    except StoreError as exc:
        raise LabelError(str(exc)) from None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", type(None): "null"}.get(type(value), _describe(value))


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"
