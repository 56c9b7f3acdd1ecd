"""Checking a dataset root against the spec.

``validate_dataset`` checks a spec ``dataset_root`` in either format: labels vs features both ways, required
keys, last dims, 2-D shapes, dtypes, NaN/Inf, the transcript type, duplicate ids, labels outside
``classes.json``, malformed JSON, and, for a store, that it opens and that every video reads through
herostore's reader (a damaged chunk or edited metadata is reported there). Facts worth knowing that are not
errors (values a precision cast flushed toward zero) are listed as notes.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import npyfile
from .errors import HerostoreError
from .layout import CLASSES_FILE, LABELS_FILE, META, dataset_root_of, resolve_features
from .schema import ARRAY_KEYS, MODALITY_BY_NAME, REQUIRED_ARRAY_KEYS, SPEC_DTYPE, check_features
from .store import FeatureStore


@dataclass
class Finding:
    where: str  # a file or a video id
    message: str
    key: str | None = None


@dataclass
class ValidationReport:
    dataset: str
    format: str
    videos: int = 0
    labels: int = 0
    errors: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, where: str, message: str, key: str | None = None) -> None:
        self.errors.append(Finding(where, message, key))

    def note(self, where: str, message: str, key: str | None = None) -> None:
        self.notes.append(Finding(where, message, key))

    def to_json(self) -> str:
        payload = asdict(self)
        payload["ok"] = self.ok
        return json.dumps(payload, indent=1, ensure_ascii=False)

    def render(self) -> str:
        head = f"{self.dataset} ({self.format}): {self.videos} videos, {self.labels} labels"
        lines = [f"{head}: OK, no deviation from the spec" if self.ok else f"{head}: {len(self.errors)} problem(s)"]
        lines += [f"  {f.where}{f' [{f.key}]' if f.key else ''}: {f.message}" for f in self.errors]
        if self.notes:
            lines.append(f"{len(self.notes)} note(s):")
            lines += [f"  {f.where}{f' [{f.key}]' if f.key else ''}: {f.message}" for f in self.notes]
        return "\n".join(lines)


def validate_dataset(root: str | os.PathLike, *, check_values: bool = True) -> ValidationReport:
    """Check a spec dataset root (``features/`` as `.npy` files or a store, ``labels.json``)."""
    root = Path(root)
    features = resolve_features(root)
    dataset_root = dataset_root_of(features) if features != root else root
    fmt = "zarr" if (features / META).exists() else "npy"
    report = ValidationReport(str(root), fmt)
    if fmt == "zarr":
        try:
            store = FeatureStore(features)
        except HerostoreError as exc:
            report.error(str(features), f"cannot be opened as a herostore store: {exc}")
            _check_labels(dataset_root, set(), report)
            return report
        video_ids = store.video_ids()
        for name in store.stray_folders():
            report.error(name, f"a folder in the store without {META}, so not a video group (an interrupted "
                               "copy, or not written by herostore); it is not listed as a video")
        reader = store.reader()
        for vid in video_ids:
            _check_store_video(store, reader, vid, report, check_values)
    else:
        video_ids = npyfile.list_video_ids(features)
        if not video_ids:
            report.error(str(features), "no .npy feature files (expected features/<video_id>.npy)")
        for vid in video_ids:
            _check_npy_video(features / f"{vid}{npyfile.SUFFIX}", report, check_values)
    report.videos = len(video_ids)
    _check_labels(dataset_root, set(video_ids), report)
    return report


def _check_npy_video(path: Path, report: ValidationReport, check_values: bool) -> None:
    try:
        raw = npyfile.load_dict(path)
        checked = check_features(raw, source=path.name)
    except HerostoreError as exc:
        report.error(str(path), str(exc).removeprefix(f"{path}: ").removeprefix(f"{path.name}: "))
        return
    for deviation in checked.deviations:
        report.error(str(path), deviation.split(": ", 1)[-1])
    if check_values:
        for key, array in checked.arrays.items():
            _check_values(str(path), key, array, report)


def _check_store_video(store: FeatureStore, reader: Any, video_id: str, report: ValidationReport,
                       check_values: bool) -> None:
    try:
        record = reader.read(video_id)
    except (HerostoreError, OSError) as exc:
        report.error(video_id, f"unreadable video: {exc}")
        return
    features = record.arrays
    underflow = record.notes.get(f"{store.preset.dtype}_underflow") or {}
    for key, lost in (underflow.items() if isinstance(underflow, dict) else [(None, underflow)]):
        if not isinstance(lost, dict):
            report.note(video_id, f"unreadable note {store.preset.dtype}_underflow: {str(lost)[:100]!r}", key)
            continue
        report.note(video_id, f"the {store.preset.dtype} cast turned {lost.get('to_zero', 0)} nonzero values into 0 "
                              f"and left {lost.get('subnormal', 0)} below its smallest normal number (reduced "
                              "precision there)", key)
    for key in REQUIRED_ARRAY_KEYS:
        if key not in features:
            report.error(video_id, f"missing required array (expected [T, {MODALITY_BY_NAME[key].dim}])", key)
    allowed = {np.dtype(SPEC_DTYPE)}
    if store.preset.dtype:
        allowed.add(np.dtype(store.preset.dtype))
    for key in ARRAY_KEYS:
        if key not in features:
            continue
        array = features[key]
        dim = MODALITY_BY_NAME[key].dim
        if array.ndim != 2 or array.shape[-1] != dim or array.shape[0] < 1:
            report.error(video_id, f"shape {list(array.shape)}, expected [T, {dim}] with T >= 1", key)
        if array.dtype not in allowed:
            expected = " or ".join(sorted(str(d) for d in allowed))
            report.error(video_id, f"dtype {array.dtype}, expected {expected} (preset {store.preset.name})", key)
        if check_values:
            _check_values(video_id, key, array, report)


def _check_values(where: str, key: str, array: np.ndarray, report: ValidationReport) -> None:
    finite = np.isfinite(array)
    if not finite.all():
        nan = int(np.isnan(array).sum())
        inf = int(array.size - finite.sum()) - nan
        report.error(where, f"{nan} NaN and {inf} Inf values", key)


def _check_labels(dataset_root: Path, video_ids: set[str], report: ValidationReport) -> None:
    labels_path = dataset_root / LABELS_FILE
    entries = _load_json(labels_path, report, required=True)
    if entries is None:
        return
    if not isinstance(entries, list):
        report.error(str(labels_path), f"top level is {type(entries).__name__}, expected a JSON array of objects")
        return
    report.labels = len(entries)
    if not entries:
        report.error(str(labels_path), "no labels (an empty array): a dataset built on it has no samples")
    classes_path = dataset_root / CLASSES_FILE
    classes = _load_json(classes_path, report, required=False)
    if classes is not None and not (isinstance(classes, list) and classes
                                    and all(isinstance(c, str) and c for c in classes)):
        report.error(str(classes_path), "expected a JSON array of class-name strings (at least one, none empty)")
        classes = None
    for name, count in sorted(Counter(classes or []).items()):
        if count > 1:
            report.error(str(classes_path), f"class {name!r} appears {count} times; class names must be unique")
    ids: list[str] = []
    for index, entry in enumerate(entries):
        where = f"{labels_path.name}[{index}]"
        if not isinstance(entry, dict):
            report.error(where, f"entry is {type(entry).__name__}, expected an object")
            continue
        vid, emotion = entry.get("video_id"), entry.get("emotion")
        if not isinstance(vid, str) or not vid:
            report.error(where, f"video_id {vid!r}, expected a non-empty string", "video_id")
            continue
        ids.append(vid)
        if not isinstance(emotion, str) or not emotion:
            report.error(f"{where} {vid}", f"emotion {emotion!r}, expected a non-empty string", "emotion")
        elif classes is not None and emotion not in classes:
            report.error(f"{where} {vid}", f"label {emotion!r} is not in classes.json {classes}", "emotion")
        text, sentiment = entry.get("text"), entry.get("sentiment")
        if text is not None and not isinstance(text, str):
            report.error(f"{where} {vid}", f"text is {type(text).__name__}, expected a string", "text")
        if sentiment is not None and (isinstance(sentiment, bool) or not isinstance(sentiment, (str, int, float))
                                      or (isinstance(sentiment, float) and not math.isfinite(sentiment))):
            report.error(f"{where} {vid}", f"sentiment is {sentiment!r}, expected a string or a finite number",
                         "sentiment")
    for vid, count in sorted(Counter(ids).items()):
        if count > 1:
            report.error(labels_path.name, f"video_id {vid!r} appears {count} times", "video_id")
    labelled = set(ids)
    for vid in sorted(labelled - video_ids):
        report.error(vid, "labelled in labels.json but has no features")
    for vid in sorted(video_ids - labelled):
        report.error(vid, "has features but no entry in labels.json")


def _load_json(path: Path, report: ValidationReport, *, required: bool) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        if required:
            report.error(str(path), "missing (the spec's dataset_root holds labels.json beside features/)")
    except json.JSONDecodeError as exc:
        report.error(str(path), f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
    except RecursionError:
        report.error(str(path), "malformed JSON: nested too deeply")
    except (OSError, UnicodeDecodeError) as exc:
        report.error(str(path), f"unreadable: {exc}")
    return None
