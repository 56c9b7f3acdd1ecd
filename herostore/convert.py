"""Conversion between the spec's `features/` folder of dict `.npy` files and a store.

Both directions work on whole spec ``dataset_root`` folders: the features move, and ``labels.json`` /
``classes.json`` travel beside them so the output is a complete dataset. A label file already in the destination
is never replaced when it differs, unless asked (``overwrite_labels``): the run stops first and says how it
differs. Runs resume (complete videos are skipped unless ``overwrite``), go through many videos in parallel with
dask, and continue past a bad file: it is reported in the returned ``JobReport``.

Either side may be a URL (``s3://bucket/root``, any fsspec URL whose package is installed), with
``storage_options`` for fsspec (credentials otherwise come from the usual environment); see ``herostore.urls``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np

from . import npyfile, urls
from .bulk import JobReport, Outcome, map_videos
from .errors import LabelError, SpecError, StoreError
from .fsutil import clean_stale_temporaries, make_folder
from .layout import FEATURES_DIR, LABEL_FILES, META, check_video_id
from .locations import dataset_root_of, resolve_features
from .presets import DEFAULT_PRESET, Preset, get_preset
from .store import FeatureStore

__all__ = ["copy_label_files", "export_npy", "import_npy"]

IMPORT_SECONDS = 0.05  # a first guess of one spec-shaped video's conversion, for the bulk engine's first batches


def copy_label_files(src_features: Any, dst_root: Any, *, overwrite: bool = False,
                     storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """Copy ``labels.json`` / ``classes.json`` from beside ``src_features`` into ``dst_root`` (paths or URLs).

    A destination file with the same bytes is left alone; one that differs is an error saying how, unless
    ``overwrite``. Checked for both files before either is written.
    """
    pairs = []
    for name in LABEL_FILES:
        source = urls.join(dataset_root_of(src_features), name)
        target = urls.join(dst_root, name)
        if _same_file(source, target):
            continue
        data = _read_if_there(source, storage_options)
        if data is None:
            continue
        old = _read_if_there(target, storage_options)
        if old == data:
            continue
        if old is not None and not overwrite:
            raise LabelError(f"{urls.display(target)}: exists and differs from {urls.display(source)} "
                             f"({_difference(old, data)}); keep it, or pass --overwrite-labels to replace it")
        pairs.append((name, target, data))
    for _, target, data in pairs:
        urls.write_bytes(target, data, storage_options)
    return [name for name, _, _ in pairs]


def _read_if_there(path: Any, storage_options: Mapping[str, Any] | None) -> bytes | None:
    try:
        return urls.read_bytes(path, storage_options)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _same_file(a: Any, b: Any) -> bool:
    if urls.is_url(a) or urls.is_url(b):
        return os.fspath(a) == os.fspath(b)
    return a.exists() and b.exists() and a.resolve() == b.resolve()


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
    storage_options: Mapping[str, Any] | None = None,
) -> JobReport:
    """Convert a spec dataset (or features folder) of `.npy` dicts into ``dst_root/features`` as a store."""
    preset = get_preset(preset)
    src_features = resolve_features(src, storage_options)
    shown = urls.display(src_features)
    if urls.exists(urls.join(src_features, META), storage_options):
        raise StoreError(f"{shown}: is already a herostore store; import-npy reads a folder of .npy files")
    video_ids = [name[: -len(npyfile.SUFFIX)] for name in urls.list_names(src_features, npyfile.SUFFIX,
                                                                           storage_options)]
    if not video_ids:
        raise StoreError(f"{shown}: no .npy feature files found")
    if not urls.is_url(dst_root):
        dst_root = make_folder(urls.local(dst_root), "the destination dataset root")
    copy_label_files(src_features, dst_root, overwrite=overwrite_labels, storage_options=storage_options)
    store = FeatureStore.create(urls.join(dst_root, FEATURES_DIR), preset, storage_options=storage_options)
    store.clean_scratch()
    items = [(vid, _absolute(urls.join(src_features, f"{vid}{npyfile.SUFFIX}"))) for vid in video_ids]
    job = partial(_import_one, location=store.location, overwrite=overwrite, strict=strict,
                  storage_options=storage_options)
    return map_videos(job, items, workers=workers, scheduler=scheduler, progress=progress, desc="import-npy",
                      complete=None if overwrite else store.video_ids(), item_seconds=IMPORT_SECONDS,
                      check_paths=[src_features, getattr(store.location, "path", None)])


def _import_one(video_id: str, npy_path: str, *, location: Any, overwrite: bool, strict: bool,
                storage_options: Mapping[str, Any] | None = None) -> Outcome:
    store = FeatureStore(location)
    check_video_id(video_id)
    if not overwrite and video_id in store:
        return Outcome(video_id, "skipped")
    checked = npyfile.load_features(npy_path, strict=strict, storage_options=storage_options)
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
    storage_options: Mapping[str, Any] | None = None,
) -> JobReport:
    """Write every video of a store as a spec dict `.npy` into ``dst_root/features``."""
    src_features = resolve_features(src, storage_options)
    store = FeatureStore(src_features, storage_options=storage_options)
    features_dir = urls.join(dst_root, FEATURES_DIR)
    if not urls.is_url(features_dir):
        make_folder(features_dir, "the export's features folder")
        clean_stale_temporaries(features_dir)
    copy_label_files(src_features, dst_root, overwrite=overwrite_labels, storage_options=storage_options)
    items = [(vid,) for vid in store.video_ids()]
    job = partial(_export_one, location=store.location, features_dir=_absolute(features_dir), overwrite=overwrite,
                  storage_options=storage_options)
    done = None if overwrite else [name[: -len(npyfile.SUFFIX)] for name in
                                   urls.list_names(features_dir, npyfile.SUFFIX, storage_options)]
    return map_videos(job, items, workers=workers, scheduler=scheduler, progress=progress, desc="export-npy",
                      describe=lambda item: f"{store.name}: video {item[0]!r}", complete=done,
                      item_seconds=IMPORT_SECONDS, check_paths=[getattr(store.location, "path", None), features_dir])


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _absolute(path: Any) -> str:
    """A path workers of an existing cluster (running in other folders) can open, or the URL as it is."""
    return os.fspath(path) if urls.is_url(path) else os.path.abspath(path)


def _export_one(video_id: str, *, location: Any, features_dir: str, overwrite: bool,
                storage_options: Mapping[str, Any] | None = None) -> Outcome:
    target = urls.join(features_dir, f"{video_id}{npyfile.SUFFIX}")
    if not overwrite and urls.exists(target, storage_options):
        return Outcome(video_id, "skipped")
    store = FeatureStore(location)
    store_path = store.name
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
    npyfile.save_features(target, features, source=f"{store_path}: video {video_id!r}",
                          storage_options=storage_options)
    return Outcome(video_id, "written", notes=notes)
