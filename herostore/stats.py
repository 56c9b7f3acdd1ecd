"""Per-modality feature statistics over a whole store, computed in parallel with dask.

The mean and standard deviation of every feature dimension, over all rows of all
videos, are kept in the store's root attributes (``herostore.stats``) so loaders can
normalise with them. The store may be a URL (``storage_options`` for fsspec); a remote store's root document is
replaced with one PUT and has no lock, so run one ``stats`` at a time on it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np

from .errors import StoreError
from .locations import resolve_features
from .parallel import Outcome, map_videos
from .schema import ARRAY_KEYS
from .store import FeatureStore


def compute_stats(
    path: str | os.PathLike,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Compute per-dimension mean/std for each modality and record them in the store."""
    store = FeatureStore(resolve_features(path, storage_options), storage_options=storage_options)
    items = [(vid,) for vid in store.video_ids()]
    report = map_videos(
        partial(_video_sums, location=store.location),
        items,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc="stats",
    )
    if report.failed:
        vid, reason = next(iter(report.failed.items()))
        raise StoreError(f"{store.name}: {len(report.failed)} video(s) unreadable, first {vid}: {reason}")
    totals: dict[str, list[Any]] = {}
    for outcome in report.outcomes:
        for key, (count, total, squares) in outcome.value.items():
            if key not in totals:
                totals[key] = [0, np.zeros_like(total), np.zeros_like(squares)]
            totals[key][0] += count
            totals[key][1] += total
            totals[key][2] += squares
    stats = {}
    for key, (count, total, squares) in totals.items():
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
        stats[key] = {"count": int(count), "mean": mean.astype(np.float32).tolist(),
                      "std": std.astype(np.float32).tolist()}
    store.update_attrs(stats=stats)
    return stats


def _video_sums(video_id: str, *, location: Any) -> Outcome:
    features = FeatureStore(location).read_video(video_id, ARRAY_KEYS)
    sums = {}
    for key, array in features.items():
        if key != "transcript":
            rows = np.asarray(array, dtype=np.float64).reshape(-1, array.shape[-1])
            sums[key] = (rows.shape[0], rows.sum(axis=0), np.square(rows).sum(axis=0))
    return Outcome(video_id, "done", value=sums)
