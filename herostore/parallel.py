"""Dataset-wide parallel work over videos with dask.

``map_videos`` runs a picklable per-video function over many items: inline for one
worker, on a ``distributed.LocalCluster`` of processes for several, or on an existing
dask cluster given its scheduler address. A function that raises does not stop the
run: its error becomes that item's result. Progress shows videos/s and an ETA.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import HerostoreError


@dataclass
class Outcome:
    """What happened to one video."""

    video_id: str
    status: str  # "written", "skipped", "done" or "failed"
    detail: str = ""
    notes: list[str] = field(default_factory=list)
    value: Any = None


@dataclass
class JobReport:
    """The outcomes of a run over many videos."""

    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def ids(self, status: str) -> list[str]:
        return [o.video_id for o in self.outcomes if o.status == status]

    @property
    def written(self) -> list[str]:
        return self.ids("written")

    @property
    def skipped(self) -> list[str]:
        return self.ids("skipped")

    @property
    def failed(self) -> dict[str, str]:
        return {o.video_id: o.detail for o in self.outcomes if o.status == "failed"}

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self, what: str = "videos") -> str:
        rate = len(self.outcomes) / self.seconds if self.seconds > 0 else 0.0
        lines = [
            (
                f"{len(self.written)} {what} written, {len(self.skipped)} skipped (already complete), "
                f"{len(self.failed)} failed in {self.seconds:.1f} s ({rate:.1f}/s)"
            )
        ]
        noted = [o for o in self.outcomes if o.notes]
        if noted:
            count = sum(len(o.notes) for o in noted)
            lines.append(f"{count} deviation(s) from the spec in {len(noted)} {what} (kept faithfully):")
            lines += [f"  {note}" for o in noted[:20] for note in o.notes]
            if len(noted) > 20:
                lines.append(f"  ... and {len(noted) - 20} more {what}")
        if self.failed:
            lines.append("failed:")
            lines += [f"  {vid}: {reason}" for vid, reason in sorted(self.failed.items())]
        return "\n".join(lines)


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def guarded(func: Callable[..., Outcome], video_id: str, *args: Any) -> Outcome:
    """Run ``func`` for one video; any ``Exception`` becomes that video's failed outcome.

    One bad video (an unexpected ``KeyError`` from edited metadata, a ``TypeError`` from odd data) must not stop
    a run over a million; ``KeyboardInterrupt`` and ``SystemExit`` are not ``Exception`` and still propagate.
    Herostore's own errors already name the file and key; others are prefixed with their type.
    """
    try:
        return func(video_id, *args)
    except HerostoreError as exc:
        return Outcome(video_id, "failed", str(exc))
    except Exception as exc:  # noqa: BLE001 - see the docstring
        return Outcome(video_id, "failed", f"{type(exc).__name__}: {exc}")


def map_videos(
    func: Callable[..., Outcome],
    items: Sequence[tuple[Any, ...]],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    desc: str = "videos",
) -> JobReport:
    """Run ``guarded(func, *item)`` for every item; items start with the video id."""
    workers = default_workers() if workers is None else max(1, workers)
    start = time.perf_counter()
    if scheduler is None and (workers == 1 or len(items) <= 1):
        results: Iterable[Outcome] = (guarded(func, *item) for item in items)
        outcomes = list(_progress(results, len(items), progress, desc))
    else:
        outcomes = list(_progress(_distributed(func, items, workers, scheduler), len(items), progress, desc))
    return JobReport(outcomes, time.perf_counter() - start)


def _distributed(func: Callable[..., Outcome], items: Sequence[tuple[Any, ...]], workers: int, scheduler: str | None):
    from distributed import Client, LocalCluster, as_completed

    if scheduler is not None:
        client = Client(scheduler)
        cluster = None
    else:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        )
        client = Client(cluster)
    try:
        columns = list(zip(*items))
        futures = client.map(guarded, [func] * len(items), *columns, pure=False)
        for future in as_completed(futures):
            yield future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _progress(outcomes: Iterable[Outcome], total: int, enabled: bool, desc: str) -> Iterator[Outcome]:
    if not enabled or total == 0:
        yield from outcomes
        return
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        with tqdm(total=total, desc=desc, unit="video", file=sys.stderr, dynamic_ncols=True) as bar:
            for outcome in outcomes:
                bar.update(1)
                if outcome.status == "failed":
                    bar.set_postfix_str(f"failed: {outcome.video_id}")
                yield outcome
        return
    start = time.perf_counter()
    for done, outcome in enumerate(outcomes, 1):
        elapsed = time.perf_counter() - start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        print(f"\r{desc}: {done}/{total} {rate:.1f} videos/s ETA {eta:.0f} s", end="", file=sys.stderr)
        yield outcome
    print(file=sys.stderr)
