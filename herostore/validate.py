"""Checking a dataset root against the spec.

``validate_dataset`` checks a spec ``dataset_root`` in either format: labels vs features both ways, required
keys, last dims, 2-D shapes, dtypes, NaN/Inf, the transcript type, duplicate ids, labels outside
``classes.json``, malformed JSON, and, for a store, that it opens and that every video reads through
herostore's reader (a damaged chunk or edited metadata is reported there). Facts worth knowing that are not
errors (values a precision cast flushed toward zero) are listed as notes. The root may be a URL
(``s3://bucket/root``; ``storage_options`` for fsspec).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import npyfile, urls
from .errors import HerostoreError
from .layout import CLASSES_FILE, LABELS_FILE, META
from .locations import dataset_root_of, is_packed, resolve_features
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


def validate_dataset(root: str | os.PathLike, *, check_values: bool = True,
                     storage_options: Mapping[str, Any] | None = None) -> ValidationReport:
    """Check a spec dataset root (``features/`` as `.npy` files, a store or a packed dataset, ``labels.json``);
    a path or a URL."""
    root = os.fspath(root).rstrip("/") if urls.is_url(root) else urls.local(root)
    features = resolve_features(root, storage_options)
    dataset_root = dataset_root_of(features) if os.fspath(features) != os.fspath(root) else root
    stored = urls.exists(urls.join(features, META), storage_options) or is_packed(features, storage_options)
    fmt = "zarr" if stored else "npy"
    report = ValidationReport(urls.display(root), fmt)
    if fmt == "zarr":
        try:
            store = FeatureStore(features, storage_options=storage_options)
        except HerostoreError as exc:
            report.error(urls.display(features), f"cannot be opened as a herostore store: {exc}")
            _check_labels(dataset_root, set(), report, storage_options)
            return report
        video_ids = store.video_ids()
        for name in store.stray_folders():
            report.error(name, f"a folder in the store without {META}, so not a video group (an interrupted "
                               "copy, or not written by herostore); it is not listed as a video")
        reader = store.reader()
        for vid in video_ids:
            _check_store_video(store, reader, vid, report, check_values)
    else:
        names = urls.list_names(features, npyfile.SUFFIX, storage_options)
        video_ids = [name[: -len(npyfile.SUFFIX)] for name in names]
        if not video_ids:
            report.error(urls.display(features), "no .npy feature files (expected features/<video_id>.npy)")
        for name in names:
            _check_npy_video(urls.join(features, name), name, report, check_values, storage_options)
    report.videos = len(video_ids)
    _check_labels(dataset_root, set(video_ids), report, storage_options)
    return report


def _check_npy_video(path: Any, name: str, report: ValidationReport, check_values: bool,
                     storage_options: Mapping[str, Any] | None) -> None:
    shown = urls.display(path)
    try:
        raw = npyfile.load_dict(path, storage_options)
        checked = check_features(raw, source=name)
    except HerostoreError as exc:
        report.error(shown, str(exc).removeprefix(f"{shown}: ").removeprefix(f"{name}: "))
        return
    for deviation in checked.deviations:
        report.error(shown, deviation.split(": ", 1)[-1])
    if check_values:
        for key, array in checked.arrays.items():
            _check_values(shown, key, array, report)


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


def _check_labels(dataset_root: Any, video_ids: set[str], report: ValidationReport,
                  storage_options: Mapping[str, Any] | None = None) -> None:
    labels_path = urls.join(dataset_root, LABELS_FILE)
    labels_shown = urls.display(labels_path)
    entries = _load_json(labels_path, report, required=True, storage_options=storage_options)
    if entries is None:
        return
    if not isinstance(entries, list):
        report.error(labels_shown, f"top level is {type(entries).__name__}, expected a JSON array of objects")
        return
    report.labels = len(entries)
    if not entries:
        report.error(labels_shown, "no labels (an empty array): a dataset built on it has no samples")
    classes_path = urls.join(dataset_root, CLASSES_FILE)
    classes_shown = urls.display(classes_path)
    classes = _load_json(classes_path, report, required=False, storage_options=storage_options)
    if classes is not None and not (isinstance(classes, list) and classes
                                    and all(isinstance(c, str) and c for c in classes)):
        report.error(classes_shown, "expected a JSON array of class-name strings (at least one, none empty)")
        classes = None
    for name, count in sorted(Counter(classes or []).items()):
        if count > 1:
            report.error(classes_shown, f"class {name!r} appears {count} times; class names must be unique")
    ids: list[str] = []
    for index, entry in enumerate(entries):
        where = f"{LABELS_FILE}[{index}]"
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
            report.error(LABELS_FILE, f"video_id {vid!r} appears {count} times", "video_id")
    labelled = set(ids)
    for vid in sorted(labelled - video_ids):
        report.error(vid, "labelled in labels.json but has no features")
    for vid in sorted(video_ids - labelled):
        report.error(vid, "has features but no entry in labels.json")


def _load_json(path: Any, report: ValidationReport, *, required: bool,
               storage_options: Mapping[str, Any] | None = None) -> Any:
    shown = urls.display(path)
    try:
        return json.loads(urls.read_bytes(path, storage_options).decode("utf-8"))
    except FileNotFoundError:
        if required:
            report.error(shown, "missing (the spec's dataset_root holds labels.json beside features/)")
    except json.JSONDecodeError as exc:
        report.error(shown, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
    except RecursionError:
        report.error(shown, "malformed JSON: nested too deeply")
    except HerostoreError as exc:
        report.error(shown, f"unreadable: {exc}")
    except (OSError, UnicodeDecodeError) as exc:
        report.error(shown, f"unreadable: {exc}")
    return None
