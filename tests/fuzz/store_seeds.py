"""The valid stores the store fuzzer mutates, and what each one reads before any mutation.

``build_seeds(folder)`` writes one dataset root per seed (``<name>/features`` the store, ``labels.json``,
``classes.json``) and ``<name>.expected.pkl``: every video's arrays, transcript and notes as herostore's reader
returns them (checked equal to zarr-python's read), the video ids and ``store_info``'s summary. Seeds:

- the current format in every preset (``lossless``, ``float16``, ``float16-lz4``, ``bitround``, ``raw``), one
  chunk per array;
- the same presets with ``chunk_rows=4``, so arrays span several chunks, some with a padded last chunk;
- formats 1 and 2: copies of the golden stores written by earlier releases (``tests/data/golden/v1``, ``v2``).

Videos are small (a few rows) so a campaign copies a seed for every case cheaply.
"""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

PRESETS = ("lossless", "float16", "float16-lz4", "bitround", "raw")
GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
OLDER_FORMATS = (1, 2)
CLASSES = ["happy", "neutral"]
SMALL_CHUNKS = 4


@dataclass(frozen=True)
class StoreSeed:
    name: str
    root: Path  # the dataset root: features/, labels.json, classes.json
    format_version: int

    @property
    def expected_path(self) -> Path:
        return self.root.with_name(f"{self.root.name}.expected.pkl")


def _videos() -> dict[str, tuple[dict[str, Any], dict[str, Any] | None]]:
    from herostore.testing.features import sample_features

    return {
        "v0": (sample_features(0, lengths=(10, 3, 8, 5), au=True, transcript="héllo wörld — 你好"), None),
        "v1": (sample_features(1, lengths=(9, 2, 4, 1), transcript=""), {"audio": "missing"}),
    }


def _write_store(features: Path, preset: Any) -> None:
    from herostore.store import FeatureStore

    store = FeatureStore.create(features, preset)
    for vid, (feats, notes) in _videos().items():
        store.write_video(vid, feats, notes=notes)


def _write_labels(root: Path, ids: list[str]) -> None:
    labels = [{"video_id": vid, "emotion": CLASSES[i % len(CLASSES)]} for i, vid in enumerate(ids)]
    (root / "labels.json").write_text(json.dumps(labels))
    (root / "classes.json").write_text(json.dumps(CLASSES))


def build_seeds(folder: str | Path) -> list[StoreSeed]:
    """Write every seed under ``folder`` with what it reads; returns them."""
    from herostore.layout import FORMAT_VERSION
    from herostore.presets import get_preset

    folder = Path(folder)
    seeds = []
    for name in PRESETS:
        for tag, preset in ((name, get_preset(name)), (f"{name}-chunks", replace(get_preset(name),
                                                                                   chunk_rows=SMALL_CHUNKS))):
            root = folder / f"v{FORMAT_VERSION}-{tag}"
            _write_store(root / "features", preset)
            seeds.append(StoreSeed(root.name, root, FORMAT_VERSION))
    for version in OLDER_FORMATS:
        for name in sorted(p.name for p in (GOLDEN / f"v{version}").iterdir() if p.is_dir()):
            if name in PRESETS or name.endswith("-chunks"):
                root = folder / f"v{version}-{name}"
                shutil.copytree(GOLDEN / f"v{version}" / name, root / "features")
                seeds.append(StoreSeed(root.name, root, version))
    for seed in seeds:
        expected = read_expected(seed.root / "features")
        _write_labels(seed.root, expected["ids"])
        with open(seed.expected_path, "wb") as f:
            pickle.dump(expected, f)
    return seeds


def read_expected(features: Path) -> dict[str, Any]:
    """What an undamaged store reads: ``{"ids", "videos": {vid: {"arrays", "transcript", "notes"}}, "info"}``."""
    import warnings

    import zarr

    from herostore.info import store_info
    from herostore.read import open_reader

    reader = open_reader(features)
    ids = reader.video_ids()
    videos = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        group = zarr.open_group(str(features), mode="r")
    for vid in ids:
        record = reader.read(vid)
        for key, array in record.arrays.items():
            reference = np.asarray(group[vid][key][...])
            if reference.dtype != array.dtype or reference.tobytes() != array.tobytes():
                raise AssertionError(f"{features}: {vid}/{key} reads differently through zarr-python")
        videos[vid] = {"arrays": record.arrays, "transcript": record.transcript, "notes": record.notes}
    return {"ids": ids, "videos": videos, "info": info_summary(store_info(features))}


def info_summary(info: dict[str, Any]) -> dict[str, Any]:
    """What ``store_info`` says about the store's content (not its bytes on disk, which a mutation may change)."""
    return {"videos": info["videos"], "unreadable": list(info["unreadable"]),
            "lengths": {key: m["length"] for key, m in info["modalities"].items()},
            "counts": {key: m["videos"] for key, m in info["modalities"].items()}}


def load_expected(path: str | Path, cache: dict[str, Any] = {}) -> dict[str, Any]:  # noqa: B006 - per process
    key = str(path)
    if key not in cache:
        with open(path, "rb") as f:
            cache[key] = pickle.load(f)
    return cache[key]
