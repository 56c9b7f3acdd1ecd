"""Per-modality feature statistics over a whole store, kept in its root attributes for normalisation.

The mean and standard deviation of every feature dimension over all rows of all videos are a streaming reduction
over the blocks of ``herostore.lazy.to_dask`` (runs of whole videos, ``BLOCK_BYTES`` each), run by the bulk
engine (``herostore.bulk``) in this process or on a cluster: each task reads one block through herostore's reader
and reduces it in float64 in slices of ``SLICE_VALUES`` values to (count, mean, sum of squared deviations);
those merge pairwise (Chan et al.'s update, exact in float64 whatever the order), so a worker holds one block and
one slice at a time and nothing grows with the store.

Rows holding NaN or an infinity are left out, counted and named per modality (``skipped_rows``,
``skipped_videos`` and the first ids in the result, printed by ``herostore stats``); ``nonfinite="error"``
refuses instead, naming the modality and the videos. Either way the stored statistics are finite (JSON has no
NaN). A video that cannot be read fails the whole computation, naming it. The store may be a URL
(``storage_options`` for fsspec); a remote store's root document is replaced with one PUT and has no lock, so run
one ``stats`` at a time on it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from .bulk import Outcome, TaskResult, open_session, run_tasks
from .errors import ArgumentError, HerostoreError, StoreError
from .lazy import BLOCK_BYTES, plan_blocks, read_block, scan_videos
from .locations import resolve_features
from .store import FeatureStore

__all__ = ["Moments", "block_moments", "compute_stats"]

SLICE_VALUES = 2**21  # values converted to float64 at a time (16 MB)
NAMED_VIDEOS = 10  # videos with non-finite rows named in the stored statistics and the messages
BYTES_PER_S = 50e6  # stored bytes one process reduces per second (~100 MiB/s on two workers, docs/benchmarks.md)


@dataclass
class Moments:
    """Count, mean and sum of squared deviations from the mean of some rows, per dimension, in float64."""

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, width: int) -> Moments:
        return cls(0, np.zeros(width), np.zeros(width))

    @classmethod
    def of(cls, rows: np.ndarray) -> Moments:
        rows = np.asarray(rows, dtype=np.float64)
        if rows.shape[0] == 0:
            return cls.empty(rows.shape[1])
        mean = rows.mean(axis=0)
        return cls(rows.shape[0], mean, np.square(rows - mean).sum(axis=0))

    def merge(self, other: Moments) -> Moments:
        """The moments of both sets of rows together (Chan, Golub and LeVeque's pairwise update)."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        m2 = self.m2 + other.m2 + np.square(delta) * (self.count * other.count / count)
        return Moments(count, mean, m2)

    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.count)


def block_moments(block: np.ndarray, rows: Sequence[int]) -> tuple[Moments, list[int]]:
    """The moments of a block's finite rows, and how many rows of each of its videos (``rows`` each) were not."""
    width = block.shape[1]
    step = max(1, SLICE_VALUES // max(1, width))
    total = Moments.empty(width)
    bad_positions = []
    for start in range(0, block.shape[0], step):
        part = block[start : start + step].astype(np.float64)
        finite = np.isfinite(part).all(axis=1)
        if not finite.all():
            bad_positions.append(np.flatnonzero(~finite) + start)
            part = part[finite]
        total = total.merge(Moments.of(part))
    bad = [0] * len(rows)
    if bad_positions:
        ends = np.cumsum(rows)
        owners = np.searchsorted(ends, np.concatenate(bad_positions), side="right")
        for owner, count in zip(*np.unique(owners, return_counts=True)):
            bad[int(owner)] = int(count)
    return total, bad


def compute_stats(
    path: str | os.PathLike,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    nonfinite: str = "skip",
    block_bytes: int = BLOCK_BYTES,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Compute per-dimension mean/std of each modality and record them in the store; return them.

    Per modality: ``count`` (rows used), ``mean``, ``std`` (population), ``skipped_rows`` and ``skipped_videos``
    (rows left out for NaN/Inf, and in how many videos) and ``skipped_ids`` (the first of those videos).
    """
    if nonfinite not in ("skip", "error"):
        raise ArgumentError(f"nonfinite={nonfinite!r}: expected 'skip' or 'error'")
    store = FeatureStore(resolve_features(path, storage_options), storage_options=storage_options)
    table = scan_videos(store.reader())
    stats: dict[str, dict[str, Any]] = {}
    stored = sum(int(table.rows[m].sum()) * table.width[m] * table.dtype[m].itemsize for m in table.modalities())
    with open_session(workers, scheduler, items=len(table.video_ids), estimate_s=stored / BYTES_PER_S) as session:
        session.check_paths([store.path] if getattr(store.location, "path", None) else [])
        for modality in table.modalities():
            rows = table.rows[modality]
            blocks = plan_blocks(rows, table.width[modality] * table.dtype[modality].itemsize, block_bytes)
            items = [(table.video_ids[i], int(rows[i])) for i in range(len(rows))]
            task = partial(_block_task, reader=table.reader, modality=modality, width=table.width[modality])
            totals = _Totals(table.width[modality])
            run_tasks(session, task, items, totals, describe=lambda item, m=modality: (
                item[0], f"{store.name}: video {item[0]!r}, modality {m!r}"), desc=f"stats {modality}",
                progress=progress, batches=[items[a:b] for a, b in blocks])
            entry = totals.finish(store.name, modality, nonfinite)
            if entry is not None:
                stats[modality] = entry
    store.update_attrs(stats=stats)
    return stats


def _block_task(items: list[tuple[str, int]], tick: Any, *, reader: Any, modality: str, width: int) -> TaskResult:
    """The engine's task: one block of videos read and reduced; a video that cannot be read is named."""
    ids, rows = [vid for vid, _ in items], [n for _, n in items]
    try:
        moments, bad = block_moments(read_block(reader, modality, ids, rows, width), rows)
    except HerostoreError:
        return TaskResult([_read_alone(reader, modality, vid, n, width) for vid, n in items], {"failed": True})
    outcomes = [Outcome(vid, "done", value=n_bad) for vid, n_bad in zip(ids, bad)]
    return TaskResult(outcomes, {"moments": moments})


def _read_alone(reader: Any, modality: str, video_id: str, rows: int, width: int) -> Outcome:
    try:
        read_block(reader, modality, [video_id], [rows], width)
    except HerostoreError as exc:
        return Outcome(video_id, "failed", str(exc))
    return Outcome(video_id, "done", value=0)


class _Totals:
    """The engine's collector for one modality: merged moments, non-finite rows per video, failures."""

    def __init__(self, width: int):
        self.moments = Moments.empty(width)
        self.bad: dict[str, int] = {}
        self.failed: dict[str, str] = {}
        self.incomplete = False

    def add(self, outcome: Outcome) -> None:
        if outcome.status == "failed":
            self.failed[outcome.video_id] = outcome.detail
        elif outcome.value:
            self.bad[outcome.video_id] = int(outcome.value)

    def add_extra(self, extra: dict[str, Any], worker: str) -> None:
        if "moments" in extra:
            self.moments = self.moments.merge(extra["moments"])
        else:
            self.incomplete = True

    def finish(self, store: str, modality: str, nonfinite: str) -> dict[str, Any] | None:
        if self.failed:
            vid, reason = min(self.failed.items())
            raise StoreError(f"{store}: {len(self.failed)} video(s) unreadable for {modality!r}, first {vid}: "
                             f"{reason}")
        named = sorted(self.bad)[:NAMED_VIDEOS]
        skipped = sum(self.bad.values())
        if skipped and nonfinite == "error":
            raise StoreError(f"{store}: modality {modality!r} has {skipped} row(s) with NaN or Inf in "
                             f"{len(self.bad)} video(s): {', '.join(named)}{' ...' if len(self.bad) > len(named) else ''}")
        if self.moments.count == 0:
            return None
        return {"count": int(self.moments.count), "mean": self.moments.mean.tolist(),
                "std": self.moments.std().tolist(), "skipped_rows": skipped, "skipped_videos": len(self.bad),
                "skipped_ids": named}
