"""One engine for bulk work over videos: import, export, extraction, statistics, packing, verification.

- ``session``: where tasks run: this process, a local cluster of processes, or an existing dask cluster
  (``open_session``); every worker must see the data at the same path or URL (``Session.check_paths``);
- ``engine``: ``run_tasks``: batching measured per run, a few tasks in flight per worker, the one error policy
  (a failing video is that video's failure, a lost worker's task runs again, a video that kills its worker is
  found and reported failed with its file named), results handed to a collector as they come;
- ``progress``: the one progress display (videos/s, ETA, failures so far);
- ``report``: ``Outcome``, ``TaskResult``, ``JobReport``, ``guarded``.

``map_videos(func, items, ...)`` is the per-video form most commands use. dask is imported only when a run
needs it, so ``import herostore.bulk`` stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import Any

from .engine import TASK_SECONDS, RunFacts, Task, batch_size, run_tasks
from .progress import Progress
from .report import COMPLETED_DURING_RUN, Collector, JobReport, Outcome, TaskResult, guarded
from .session import Session, default_workers, open_session, worker_index

__all__ = ["COMPLETED_DURING_RUN", "TASK_SECONDS", "Collector", "JobReport", "Outcome", "Progress", "RunFacts",
           "Session", "Task", "TaskResult", "batch_size", "default_workers", "guarded", "map_videos",
           "open_session", "run_tasks", "worker_index"]


def map_videos(
    func: Callable[..., Outcome],
    items: Sequence[tuple[Any, ...]],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    desc: str = "videos",
    describe: Callable[[tuple[Any, ...]], str] | None = None,
    complete: Collection[str] | None = None,
    item_seconds: float = 0.05,
    batch: int | None = None,
    check_paths: Sequence[str] = (),
) -> JobReport:
    """Run ``guarded(func, *item)`` for every item (items start with the video id); the outcomes in a ``JobReport``.

    Inline for one worker, else on a local cluster of ``workers`` processes (default: the CPUs, at most 8; a run
    estimated at under ``SMALL_RUN_S`` stays inline unless ``workers`` is given) or on the cluster at ``scheduler``. ``func`` and the items must pickle (a module-level function, or a
    ``functools.partial`` of one). ``describe(item)``: what a failure names when the video's worker process dies
    on it (default: the item's second element when it is a path, else the video id). ``complete``: ids already
    complete in the output, reported skipped without running. ``item_seconds``: a guess of one item's work, for
    the first batches. ``check_paths``: paths every worker must see (checked before any work is sent).
    """
    import time

    start = time.perf_counter()
    report = JobReport()
    with open_session(workers, scheduler, items=len(items), estimate_s=len(items) * item_seconds) as session:
        session.check_paths(check_paths)
        try:
            facts = run_tasks(session, partial(_each, func), items, report,
                              describe=_naming(describe), desc=desc, progress=progress, complete=complete,
                              item_seconds=item_seconds, batch=batch)
        finally:
            report.seconds = time.perf_counter() - start
    report.workers, report.workers_lost = facts.workers, facts.workers_lost
    return report


def _each(func: Callable[..., Outcome], items: list[tuple[Any, ...]],
          tick: Callable[[Outcome], None] | None) -> TaskResult:
    """The task of ``map_videos``: ``guarded(func, *item)`` for each item."""
    outcomes = []
    for item in items:
        outcome = guarded(func, *item)
        outcomes.append(outcome)
        if tick is not None:
            tick(outcome)
    return TaskResult(outcomes)


def _naming(describe: Callable[[tuple[Any, ...]], str] | None) -> Callable[[tuple[Any, ...]], tuple[str, str]]:
    if describe is not None:
        return lambda item: (item[0], describe(item))
    return _default_naming


def _default_naming(item: tuple[Any, ...]) -> tuple[str, str]:
    second = item[1] if len(item) > 1 else None
    if isinstance(second, str) and ("/" in second or second.endswith(".npy")):
        return item[0], second
    return item[0], f"video {item[0]!r}"
