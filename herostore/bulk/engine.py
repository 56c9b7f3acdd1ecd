"""Running a task over many videos on a session: batching, the error policy, lost workers, crashes, progress.

A *task* is ``task(batch, tick) -> TaskResult``: it works through a list of items and returns one ``Outcome`` per
item (``tick``, when given, is called with each outcome as it is made: runs in this process show progress per
video with it; on a cluster it is None). The engine

- cuts the items into batches of about ``TASK_SECONDS`` of work each, measured: the first batches are sized from
  the caller's estimate of seconds per item, later ones from what finished tasks took on their workers; batches
  shrink towards the end so every worker finishes at about the same time. Only ``IN_FLIGHT_PER_WORKER`` tasks per
  worker are submitted at a time, so the scheduler holds a few dozen tasks however many videos there are;
- reports each item's outcome once: a failing video is that video's failure (the task says so); a task lost with
  its worker is run again by dask; a task that keeps killing its worker (a crash in native code, ``os._exit``,
  running out of memory; dask's ``KilledWorker``) is run again one item per task, and the item that still kills
  its worker is reported failed, naming its file. A ``HerostoreError`` raised by a task as a whole (a model that
  does not load) stops the run;
- treats a video that a task finds complete although it was not when the run started (``complete``) as written
  by this run (``COMPLETED_DURING_RUN``): an earlier attempt of its task wrote it before its worker was lost.
"""

from __future__ import annotations

import itertools
import math
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import Any

from ..errors import ClusterError, HerostoreError
from .progress import Progress
from .report import COMPLETED_DURING_RUN, Collector, Outcome, TaskResult
from .session import Session

__all__ = ["IN_FLIGHT_PER_WORKER", "MAX_BATCH", "NO_WORKERS_TIMEOUT_S", "TASK_SECONDS", "RunFacts", "Task",
           "batch_size", "run_tasks"]

Task = Callable[[list[Any], Callable[[Outcome], None] | None], TaskResult]
Describe = Callable[[Any], tuple[str, str]]  # item -> (video id, what to name when it fails: its file)

# Measured with benchmarks/cluster.py (docs/benchmarks.md): a one-video task costs about 12 ms from submission to
# result on 2 busy cores (scheduler, transport, worker), so 2 s of work per task keeps that cost under 1%, while
# a lost worker loses at most ~2 s of work per task it held and the progress display moves every few seconds.
TASK_SECONDS = 2.0
MAX_BATCH = 10_000  # items per task, at most (the items and outcomes of a task travel in one message)
IN_FLIGHT_PER_WORKER = 2  # tasks submitted per worker at a time: one running, one queued behind it
NO_WORKERS_TIMEOUT_S = 300.0  # a cluster without any worker for this long stops the run
_LOSSES = 3  # a task the scheduler loses (not its worker dying) is submitted again this many times
_WAIT_S = 0.5  # the longest wait for a task before the workers are looked at again
_WORKERS_EVERY_S = 2.0


@dataclass(frozen=True)
class RunFacts:
    """How a run went, apart from its outcomes."""

    workers: int  # worker processes at the start (1: this process)
    workers_lost: int  # workers that left the cluster during the run; their tasks ran again elsewhere


def batch_size(estimate: float, remaining: int, workers: int, *, min_batch: int = 1) -> int:
    """Items in the next task: about ``TASK_SECONDS`` of work at ``estimate`` seconds per item, at most
    ``MAX_BATCH``, and no more than an even share of what remains over the workers' task slots."""
    size = MAX_BATCH if estimate <= 0 else int(min(MAX_BATCH, max(1.0, round(TASK_SECONDS / estimate))))
    share = math.ceil(remaining / (IN_FLIGHT_PER_WORKER * max(1, workers)))
    return max(1, min_batch, min(size, share))


def run_tasks(session: Session, task: Task, items: Sequence[Any], into: Collector, *, describe: Describe,
              desc: str = "videos", progress: bool = True, complete: Collection[str] | None = None,
              item_seconds: float = 0.05, min_batch: int = 1, batch: int | None = None,
              batches: Sequence[Sequence[Any]] | None = None,
              resources: dict[str, float] | None = None) -> RunFacts:
    """Run ``task`` over ``items`` on ``session``; every item's outcome goes to ``into.add`` exactly once.

    ``complete``: ids already complete when the run started; their items are reported skipped without running
    (see the module doc). ``item_seconds``: the caller's estimate of one item's work, for the first batches;
    ``batch``: a fixed batch size instead; ``batches``: the batches themselves (e.g. blocks of rows). ``resources``:
    dask resources each task needs (e.g. ``{"GPU": 1}``). Returns how many workers ran it and how many were lost.
    """
    todo = list(items)
    if complete is not None:
        done = set(complete)
        keep = []
        for item in todo:
            video_id = describe(item)[0]
            if video_id in done:
                into.add(Outcome(video_id, "skipped"))
            else:
                keep.append(item)
        todo = keep
    plan = [list(b) for b in batches] if batches is not None else None
    total = sum(len(b) for b in plan) if plan is not None else len(todo)
    where = "this process" if session.inline else f"{session.worker_count()} workers"
    bar = Progress(total, progress, desc, where=where)
    runner = (_Inline if session.inline else _OnCluster)(session, task, into, describe, bar, complete is not None)
    try:
        runner.run(todo, plan, item_seconds, min_batch, batch, resources)
    finally:
        bar.close()
    return RunFacts(runner.workers, runner.lost)


class _Deliver:
    """Hands outcomes to the collector: once per item, counted in the progress display."""

    def __init__(self, session: Session, task: Task, into: Collector, describe: Describe, bar: Progress,
                 reclassify: bool):
        self.session, self.task, self.into, self.describe, self.bar = session, task, into, describe, bar
        self.reclassify = reclassify
        self.workers, self.lost = session.worker_count(), 0

    def outcome(self, outcome: Outcome) -> None:
        if self.reclassify and outcome.status == "skipped":
            outcome = Outcome(outcome.video_id, "written", COMPLETED_DURING_RUN, outcome.notes, outcome.value)
        self.into.add(outcome)
        self.bar.update(1, failed=outcome.status == "failed")

    def ledger(self, items: list[Any]) -> _Ledger:
        return _Ledger(self, items)


class _Ledger:
    """The outcomes one task owes: one per item; an outcome for anything else is dropped."""

    def __init__(self, deliver: _Deliver, items: list[Any]):
        self.deliver = deliver
        self.owed = Counter(deliver.describe(item)[0] for item in items)
        self.given: set[int] = set()

    def give(self, outcome: Outcome) -> None:
        if id(outcome) in self.given or self.owed[outcome.video_id] <= 0:
            return
        self.owed[outcome.video_id] -= 1
        self.given.add(id(outcome))
        self.deliver.outcome(outcome)

    def close(self, result: TaskResult) -> None:
        """The task's returned outcomes not yet given; an item left without one fails."""
        for outcome in result.outcomes:
            self.give(outcome)
        for video_id, missing in self.owed.items():
            for _ in range(missing):
                self.deliver.outcome(Outcome(video_id, "failed", "its task returned no outcome for it"))
        self.deliver.into.add_extra(result.extra, result.worker)


class _Inline(_Deliver):
    """Tasks in this process, one after another; outcomes are delivered as the task makes them (``tick``)."""

    def run(self, todo: list[Any], plan: list[list[Any]] | None, item_seconds: float, min_batch: int,
            batch: int | None, resources: Any) -> None:
        if plan is None:
            plan = [todo[i : i + batch] for i in range(0, len(todo), batch)] if batch else [todo]
        for items in plan:
            if items:
                ledger = self.ledger(items)
                ledger.close(self.task(items, ledger.give))


class _OnCluster(_Deliver):
    """Tasks on a dask cluster, a few per worker in flight; see the module doc.

    A task the scheduler gives up on (its worker died ``allowed-failures + 1`` times while it was assigned there)
    sends its items to quarantine: they run one per task, each alone on the cluster (nothing else of this run in
    flight), so a worker that dies then died of that item and nothing else; only then is the item failed. The
    other tasks of the run wait while quarantined items run (a couple of seconds of work per given-up task).
    """

    def run(self, todo: list[Any], plan: list[list[Any]] | None, item_seconds: float, min_batch: int,
            batch: int | None, resources: dict[str, float] | None) -> None:
        from distributed import wait

        client = self.session.client
        self.resources = resources
        self.tag = f"herostore-{self.bar.desc}-{uuid.uuid4().hex[:8]}"
        self.counter = itertools.count()
        self.in_flight: dict[str, tuple[Any, list[Any], bool]] = {}  # key -> (future, items, alone)
        self.quarantine: deque[Any] = deque()
        self.requeued: deque[list[Any]] = deque()  # tasks the scheduler lost: submitted again
        self.losses: Counter[str] = Counter()  # video id -> times its task was lost by the scheduler
        queue: deque[list[Any]] = deque(plan or [])
        position = 0
        estimate, measured = item_seconds, False
        workers = self._watch_workers(first=True)
        try:
            while True:
                while self.quarantine and not self.in_flight:
                    self._submit(client, [self.quarantine.popleft()], alone=True)
                while not self.quarantine and len(self.in_flight) < IN_FLIGHT_PER_WORKER * max(1, workers) + 1:
                    if self.requeued:
                        items = self.requeued.popleft()
                    elif plan is not None and queue:
                        items = queue.popleft()
                    elif plan is None and position < len(todo):
                        size = batch or batch_size(estimate, len(todo) - position, workers, min_batch=min_batch)
                        items = todo[position : position + size]
                        position += size
                    else:
                        break
                    self._submit(client, items, alone=False)
                if not self.in_flight:
                    return
                try:
                    finished = wait([f for f, _, _ in self.in_flight.values()], timeout=_WAIT_S,
                                    return_when="FIRST_COMPLETED").done
                except TimeoutError:
                    finished = set()
                except CancelledError:  # wait() raises when a future was cancelled: settle every one that ended
                    finished = {f for f, _, _ in self.in_flight.values() if f.status != "pending"}
                workers = self._watch_workers()
                for future in finished:
                    result = self._settle(future)
                    if result is not None and result.outcomes:
                        per_item = result.seconds / len(result.outcomes)
                        estimate = 0.5 * estimate + 0.5 * per_item if measured else per_item
                        measured = True
        except BaseException:
            client.cancel([future for future, _, _ in self.in_flight.values()])
            raise

    def _submit(self, client: Any, items: list[Any], *, alone: bool) -> None:
        key = f"{self.tag}-{next(self.counter)}{'-alone' if alone else ''}"
        future = client.submit(_execute, self.task, items, key=key, pure=False, resources=self.resources)
        self.in_flight[key] = (future, items, alone)

    def _settle(self, future: Any) -> TaskResult | None:
        """Deliver a finished task's outcomes, or decide what happens to its items; the result, if any."""
        from distributed import KilledWorker

        _, items, alone = self.in_flight.pop(future.key)
        status = future.status
        exc = future.exception() if status == "error" else None
        if status == "finished":
            try:
                result = future.result()
            except CancelledError:  # its result was lost on the way: run it again
                status = "lost"
            except Exception as error:  # noqa: BLE001 - lost, run again and failed there: as any failed task
                exc = error
            else:
                future.release()
                self.ledger(items).close(result)
                return result
        future.release()
        if isinstance(exc, HerostoreError):
            raise exc
        if exc is None:  # cancelled or lost by the scheduler (not by the task): run it again, a few times
            again = []
            for item in items:
                video_id, name = self.describe(item)
                self.losses[video_id] += 1
                if self.losses[video_id] <= _LOSSES:
                    again.append(item)
                else:
                    self.outcome(Outcome(video_id, "failed", f"{name}: its task was lost by the scheduler "
                                                             f"{self.losses[video_id]} times (cancelled, or its "
                                                             f"result lost)"))
            if again:
                self.requeued.append(again)
            return None
        if not alone:
            self.quarantine.extend(items)
            return None
        video_id, name = self.describe(items[0])
        if isinstance(exc, KilledWorker):
            tries = getattr(exc, "allowed_failures", 0) + 1
            detail = (f"{name}: the worker process died while working on it, alone, {tries} time(s) (a crash in "
                      f"native code, os._exit or running out of memory); the other videos went on")
        else:
            detail = f"{name}: its task failed ({type(exc).__name__}: {exc})"
        self.outcome(Outcome(video_id, "failed", detail))
        return None

    def _watch_workers(self, first: bool = False) -> int:
        """The workers now (checked every couple of seconds); counts the ones that left; stops a run that has had
        no worker for ``NO_WORKERS_TIMEOUT_S``."""
        now = time.monotonic()
        if not first and now - self.checked < _WORKERS_EVERY_S:
            return self.count
        self.checked = now
        addresses = set(self.session.workers())
        if first:
            self.seen, self.empty_since = addresses, None
        else:
            self.lost += len(self.seen - addresses)
            self.seen = addresses
        self.count = len(addresses)
        if self.count:
            self.empty_since = None
        elif self.empty_since is None:
            self.empty_since = now
        elif now - self.empty_since > NO_WORKERS_TIMEOUT_S:
            raise ClusterError(f"{self.session.describe()}: no worker for {NO_WORKERS_TIMEOUT_S:.0f} s; videos "
                               f"finished so far are complete, run again (with workers) to resume")
        lost = f", {self.lost} lost" if self.lost else ""
        self.bar.set_where(f"{self.count} workers{lost}")
        return self.count


def _execute(task: Task, items: list[Any]) -> TaskResult:
    """What a worker runs: the task, timed and labelled with the worker's name."""
    start = time.perf_counter()
    result = task(items, None)
    result.seconds = time.perf_counter() - start
    try:
        from distributed import get_worker

        result.worker = str(get_worker().name)
    except (ImportError, ValueError):
        result.worker = ""
    return result
