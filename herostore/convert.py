"""Conversion between the spec's `features/` folder of dict `.npy` files and a store.

Both directions work on whole spec ``dataset_root`` folders: the features move, and
``labels.json`` / ``classes.json`` are copied beside them so the output is a complete
dataset. Runs resume (complete videos are skipped unless ``overwrite``), go through
many videos in parallel with dask, and continue past a bad file: it is reported in
the returned ``JobReport``.
"""

from __future__ import annotations

import os
import shutil
from functools import partial
from pathlib import Path

from . import npyfile
from .errors import StoreError
from .parallel import JobReport, Outcome, map_videos
from .presets import DEFAULT_PRESET, Preset, get_preset
from .store import FeatureStore, check_video_id, is_store, make_folder

FEATURES_DIR = "features"
LABEL_FILES = ("labels.json", "classes.json")


def resolve_features(path: str | os.PathLike) -> Path:
    """The features location of a dataset root, or ``path`` itself if it is one."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: no such dataset root or features folder")
    if (path / FEATURES_DIR).is_dir():
        return path / FEATURES_DIR
    if path.is_dir():
        return path
    raise StoreError(f"{path}: expected a dataset root (with features/) or a features folder")


def copy_label_files(src_features: Path, dst_root: Path) -> list[str]:
    """Copy labels.json / classes.json from beside ``src_features`` into ``dst_root``."""
    copied = []
    for name in LABEL_FILES:
        source = src_features.parent / name
        if source.is_file() and source.resolve() != (dst_root / name).resolve():
            shutil.copyfile(source, dst_root / name)
            copied.append(name)
    return copied


def import_npy(
    src: str | os.PathLike,
    dst_root: str | os.PathLike,
    *,
    preset: str | Preset = DEFAULT_PRESET,
    overwrite: bool = False,
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
    store = FeatureStore.create(dst_root / FEATURES_DIR, preset)
    store.clean_scratch()
    copy_label_files(src_features, dst_root)
    items = [(vid, str(src_features / f"{vid}{npyfile.SUFFIX}")) for vid in video_ids]
    job = partial(_import_one, store_path=str(store.path), overwrite=overwrite, strict=strict)
    return map_videos(job, items, workers=workers, scheduler=scheduler, progress=progress, desc="import-npy")


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
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
) -> JobReport:
    """Write every video of a store as a spec dict `.npy` into ``dst_root/features``."""
    src_features = resolve_features(src)
    if not is_store(src_features):
        raise StoreError(f"{src_features}: not a herostore store (no zarr.json with herostore attributes)")
    store = FeatureStore(src_features)
    dst_root = Path(dst_root)
    features_dir = dst_root / FEATURES_DIR
    make_folder(features_dir, "the export's features folder")
    copy_label_files(src_features, dst_root)
    items = [(vid,) for vid in store.video_ids()]
    job = partial(_export_one, store_path=str(store.path), features_dir=str(features_dir), overwrite=overwrite)
    return map_videos(job, items, workers=workers, scheduler=scheduler, progress=progress, desc="export-npy")


def _export_one(video_id: str, *, store_path: str, features_dir: str, overwrite: bool) -> Outcome:
    target = Path(features_dir) / f"{video_id}{npyfile.SUFFIX}"
    if not overwrite and target.exists():
        return Outcome(video_id, "skipped")
    store = FeatureStore(store_path)
    features = store.read_video(video_id)
    notes = [
        f"{video_id}: key {key!r} stored as {value.dtype}, written as float32"
        for key, value in features.items()
        if key != "transcript" and value.dtype.itemsize > 4
    ]
    npyfile.save_features(target, features, source=f"{store_path}: video {video_id!r}")
    return Outcome(video_id, "written", notes=notes)
