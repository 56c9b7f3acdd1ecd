"""Checking a dataset root against the spec, and describing a store.

``validate_dataset`` checks a spec ``dataset_root`` in either format: labels vs
features both ways, required keys, last dims, 2-D shapes, dtypes, NaN/Inf, the
transcript type, duplicate ids, labels outside ``classes.json`` and malformed JSON.
``store_info`` reports videos, bytes on disk per modality, the compression ratio
against float32 and sequence-length statistics.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import npyfile
from .convert import resolve_features
from .errors import HerostoreError
from .schema import ARRAY_KEYS, MODALITY_BY_NAME, REQUIRED_ARRAY_KEYS, SPEC_DTYPE, check_features
from .store import GROUP_META, FeatureStore, is_store


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

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, where: str, message: str, key: str | None = None) -> None:
        self.errors.append(Finding(where, message, key))

    def to_json(self) -> str:
        payload = asdict(self)
        payload["ok"] = self.ok
        return json.dumps(payload, indent=1, ensure_ascii=False)

    def render(self) -> str:
        head = f"{self.dataset} ({self.format}): {self.videos} videos, {self.labels} labels"
        if self.ok:
            return f"{head}: OK, no deviation from the spec"
        lines = [f"{head}: {len(self.errors)} problem(s)"]
        for f in self.errors:
            key = f" [{f.key}]" if f.key else ""
            lines.append(f"  {f.where}{key}: {f.message}")
        return "\n".join(lines)


def validate_dataset(root: str | os.PathLike, *, check_values: bool = True) -> ValidationReport:
    """Check a spec dataset root (``features/`` as `.npy` files or a store, ``labels.json``)."""
    root = Path(root)
    features = resolve_features(root)
    dataset_root = features.parent if features != root else root
    fmt = "zarr" if is_store(features) else "npy"
    report = ValidationReport(str(root), fmt)
    if fmt == "zarr":
        store = FeatureStore(features)
        video_ids = store.video_ids()
        for name in store.stray_folders():
            report.error(name, f"a folder in the store without {GROUP_META}, so not a video group (an interrupted "
                               "copy, or not written by herostore); it is not listed as a video")
        for vid in video_ids:
            _check_store_video(store, vid, report, check_values)
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


def _check_store_video(store: FeatureStore, video_id: str, report: ValidationReport, check_values: bool) -> None:
    try:
        meta = store.video_metadata(video_id)
        features = store.read_arrays(video_id)
    except (HerostoreError, OSError, ValueError, KeyError) as exc:
        report.error(video_id, f"unreadable video group: {exc}")
        return
    attrs = meta.get("attributes", {})
    if not isinstance(attrs.get("transcript"), str):
        report.error(video_id, "transcript missing or not a string", "transcript")
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
    labels_path = dataset_root / "labels.json"
    entries = _load_json(labels_path, report, required=True)
    if entries is None:
        return
    if not isinstance(entries, list):
        report.error(str(labels_path), f"top level is {type(entries).__name__}, expected a JSON array of objects")
        return
    report.labels = len(entries)
    classes = _load_json(dataset_root / "classes.json", report, required=False)
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        report.error(str(dataset_root / "classes.json"), "expected a JSON array of class-name strings")
        classes = None
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
        if sentiment is not None and (isinstance(sentiment, bool) or not isinstance(sentiment, (str, int, float))):
            report.error(f"{where} {vid}", f"sentiment is {type(sentiment).__name__}, expected a string or number",
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
    except (OSError, UnicodeDecodeError) as exc:
        report.error(str(path), f"unreadable: {exc}")
    return None


# -- info ---------------------------------------------------------------------------


def store_info(path: str | os.PathLike) -> dict[str, Any]:
    """Videos, bytes on disk per modality, ratio against float32, sequence lengths."""
    store = FeatureStore(resolve_features(path))
    video_ids = store.video_ids()
    disk: Counter[str] = Counter()
    raw: Counter[str] = Counter()
    lengths: dict[str, list[int]] = {key: [] for key in ARRAY_KEYS}
    notes: Counter[str] = Counter()
    meta_bytes = 0
    for vid in video_ids:
        vdir = store.path / vid
        meta_bytes += (vdir / GROUP_META).stat().st_size
        meta = store.video_metadata(vid)
        notes.update(_countable_notes(meta["attributes"].get("herostore", {})))
        for key, shape in store.shapes(vid).items():
            lengths.setdefault(key, []).append(shape[0])
            raw[key] += int(np.prod(shape)) * SPEC_DTYPE.itemsize
            disk[key] += _tree_bytes(vdir / key)
    modalities = {}
    for key, values in lengths.items():
        if not values:
            continue
        v = np.asarray(values)
        modalities[key] = {
            "videos": int(v.size),
            "bytes_on_disk": int(disk[key]),
            "float32_bytes": int(raw[key]),
            "ratio_vs_float32": round(disk[key] / raw[key], 4) if raw[key] else None,
            "length": {"min": int(v.min()), "median": float(np.median(v)), "mean": round(float(v.mean()), 1),
                       "max": int(v.max())},
        }
    total_disk = sum(disk.values()) + meta_bytes
    total_raw = sum(raw.values())
    return {
        "store": str(store.path),
        "preset": store.preset.to_config(),
        "videos": len(video_ids),
        "bytes_on_disk": int(total_disk),
        "float32_bytes": int(total_raw),
        "ratio_vs_float32": round(total_disk / total_raw, 4) if total_raw else None,
        "modalities": modalities,
        "notes": dict(notes),
    }


def _countable_notes(info: dict[str, Any]) -> list[str]:
    """The notes worth counting over a store: scalar facts (``audio=missing``), not per-video details."""
    found = [f"{k}={v}" for k, v in info.items()
             if k not in ("modalities", "deviations") and isinstance(v, (str, int, float, bool))]
    extraction = info.get("extraction")
    if isinstance(extraction, dict) and extraction.get("random_weight_test_models"):
        found.append("features from RANDOM-WEIGHT test models")
    return found


def render_info(info: dict[str, Any]) -> str:
    p = info["preset"]
    lines = [
        f"store   {info['store']}",
        f"preset  {p['name']}: {p['description']}",
        f"videos  {info['videos']}",
        f"size    {_mb(info['bytes_on_disk'])} on disk, {_mb(info['float32_bytes'])} as float32"
        + (f" (ratio {info['ratio_vs_float32']:.3f})" if info["ratio_vs_float32"] else ""),
        "",
        f"{'modality':<10} {'videos':>7} {'on disk':>11} {'float32':>11} {'ratio':>6}  length min/median/mean/max",
    ]
    for key, m in info["modalities"].items():
        n = m["length"]
        lines.append(
            f"{key:<10} {m['videos']:>7} {_mb(m['bytes_on_disk']):>11} {_mb(m['float32_bytes']):>11} "
            f"{m['ratio_vs_float32']:>6.3f}  {n['min']}/{n['median']:g}/{n['mean']:g}/{n['max']}"
        )
    for note, count in sorted(info["notes"].items()):
        lines.append(f"note: {count} video(s) with {note}")
    return "\n".join(lines)


def _tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        total += sum(os.stat(os.path.join(dirpath, f)).st_size for f in files)
    return total


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"
