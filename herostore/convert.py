"""Conversion between the spec's `features/` folder of dict `.npy` files and a store.

Both directions work on whole spec ``dataset_root`` folders: the features move, and ``labels.json`` /
``classes.json`` travel beside them so the output is a complete dataset. A label file already in the destination
is never replaced when it differs, unless asked (``overwrite_labels``): the run stops first and says how it
differs. Runs resume (complete videos are skipped unless ``overwrite``), go through many videos in parallel with
dask, and continue past a bad file: it is reported in the returned ``JobReport``.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np

from . import npyfile
from .bulk import JobReport, Outcome, map_videos
from .errors import LabelError, SpecError, StoreError
from .fsutil import atomic_write, clean_stale_temporaries, make_folder
from .layout import FEATURES_DIR, LABEL_FILES, check_video_id, dataset_root_of, resolve_features
from .presets import DEFAULT_PRESET, Preset, get_preset
from .store import FeatureStore, is_store

__all__ = ["copy_label_files", "export_npy", "import_npy"]

IMPORT_SECONDS = 0.05  # a first guess of one spec-shaped video's conversion, for the bulk engine's first batches


def copy_label_files(src_features: Path, dst_root: Path, *, overwrite: bool = False) -> list[str]:
    """Copy ``labels.json`` / ``classes.json`` from beside ``src_features`` into ``dst_root``.

    A destination file with the same bytes is left alone; one that differs is an error saying how, unless
    ``overwrite``. Checked for both files before either is written.
    """
    pairs = []
    for name in LABEL_FILES:
        source = dataset_root_of(src_features) / name
        target = dst_root / name
        if not source.is_file() or (target.exists() and source.resolve() == target.resolve()):
            continue
        data = source.read_bytes()
        if target.exists():
            old = target.read_bytes()
            if old == data:
                continue
            if not overwrite:
                raise LabelError(f"{target}: exists and differs from {source} ({_difference(old, data)}); "
                                 f"keep it, or pass --overwrite-labels to replace it")
        pairs.append((target, data))
    for target, data in pairs:
        atomic_write(target, data)
    return [target.name for target, _ in pairs]


def _difference(old: bytes, new: bytes) -> str:
    old_lines, new_lines = old.splitlines(), new.splitlines()
    for number, (a, b) in enumerate(zip(old_lines, new_lines), 1):
        if a != b:
            return f"first at line {number}"
    return f"{len(old_lines)} lines there, {len(new_lines)} in the source"


def import_npy(
    src: str | os.PathLike,
    dst_root: str | os.PathLike,
    *,
    preset: str | Preset = DEFAULT_PRESET,
    overwrite: bool = False,
    overwrite_labels: bool = False,
    strict: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
) -> JobReport:
    """Convert a spec dataset (or features folder) of `.npy` dicts into ``dst_root/features`` as a store."""
    preset = get_preset(preset)
    src_features = resolve_features(src)
    if is_store(src_features):
        raise StoreError(f"{src_features}: is already a herostore store; import-npy reads a folder of .npy files")
    video_ids = npyfile.list_video_ids(src_features)
    if not video_ids:
        raise StoreError(f"{src_features}: no .npy feature files found")
    dst_root = Path(dst_root)
    make_folder(dst_root, "the destination dataset root")
    copy_label_files(src_features, dst_root, overwrite=overwrite_labels)
    store = FeatureStore.create(dst_root / FEATURES_DIR, preset)
    store.clean_scratch()
    # absolute: workers of an existing cluster run in other folders
    items = [(vid, str(src_features.absolute() / f"{vid}{npyfile.SUFFIX}")) for vid in video_ids]
    job = partial(_import_one, store_path=str(store.path.absolute()), overwrite=overwrite, strict=strict)
    return map_videos(job, items, workers=workers, scheduler=scheduler, progress=progress, desc="import-npy",
                      complete=None if overwrite else store.video_ids(), item_seconds=IMPORT_SECONDS,
                      check_paths=[src_features, store.path])


def _import_one(video_id: str, npy_path: str, *, store_path: str, overwrite: bool, strict: bool) -> Outcome:
    store = FeatureStore(store_path)
    check_video_id(video_id)
    if not overwrite and video_id in store:
        return Outcome(video_id, "skipped")
    checked = npyfile.load_features(npy_path, strict=strict)
    written = store.write_video(video_id, checked, overwrite=overwrite)
    return Outcome(video_id, "written" if written else "skipped", notes=checked.deviations)


def export_npy(
    src: str | os.PathLike,
    dst_root: str | os.PathLike,
    *,
    overwrite: bool = False,
    overwrite_labels: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
) -> JobReport:
    """Write every video of a store as a spec dict `.npy` into ``dst_root/features``."""
    src_features = resolve_features(src)
    store = FeatureStore(src_features)
    dst_root = Path(dst_root)
    features_dir = make_folder(dst_root / FEATURES_DIR, "the export's features folder")
    copy_label_files(src_features, dst_root, overwrite=overwrite_labels)
    clean_stale_temporaries(features_dir)
    items = [(vid,) for vid in store.video_ids()]
    job = partial(_export_one, store_path=str(store.path.absolute()), features_dir=str(features_dir.absolute()),
                  overwrite=overwrite)
    done = None if overwrite else npyfile.list_video_ids(features_dir)
    return map_videos(job, items, workers=workers, scheduler=scheduler, progress=progress, desc="export-npy",
                      describe=lambda item: f"{store.path}: video {item[0]!r}", complete=done,
                      item_seconds=IMPORT_SECONDS, check_paths=[store.path, features_dir])


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _export_one(video_id: str, *, store_path: str, features_dir: str, overwrite: bool) -> Outcome:
    target = Path(features_dir) / f"{video_id}{npyfile.SUFFIX}"
    if not overwrite and target.exists():
        return Outcome(video_id, "skipped")
    store = FeatureStore(store_path)
    features = store.read_video(video_id)
    notes = []
    for key, value in features.items():
        if key == "transcript" or value.dtype.itemsize <= 4:
            continue
        largest = float(np.max(np.abs(value[np.isfinite(value)]), initial=0.0))
        if largest > _FLOAT32_MAX:
            raise SpecError(f"{store_path}: video {video_id!r}, key {key!r}: values up to {largest:g} are beyond "
                            f"float32's range; the spec's .npy holds float32 (they would become inf)")
        notes.append(f"{video_id}: key {key!r} stored as {value.dtype}, written as float32")
    npyfile.save_features(target, features, source=f"{store_path}: video {video_id!r}")
    return Outcome(video_id, "written", notes=notes)
