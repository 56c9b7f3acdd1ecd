"""Where a run's tasks execute: this process, a local cluster of worker processes, or an existing dask cluster.

``open_session(workers, scheduler)`` gives a ``Session``: inline (one worker, no scheduler), a
``distributed.LocalCluster`` of ``workers`` single-threaded processes on 127.0.0.1, or a client of the
scheduler at ``scheduler``. Workers of an existing cluster must import herostore and see every path a run names
at the same path (or URL): ``check_paths`` asks each of them before any work is sent, so a worker that cannot is
one clear error, not a million failed videos. dask is imported only here and in the engine, only when needed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import ArgumentError, ClusterError

__all__ = ["LOCAL_ALLOWED_FAILURES", "Session", "default_workers", "open_session", "worker_index"]

# A task whose worker dies this many times + 1 is given up by the scheduler (``KilledWorker``); the engine then
# runs its videos one per task to find the one that kills workers. 1 (dask's default is 3) finds it after two
# deaths; it applies to the local clusters started here. An existing cluster keeps its scheduler's setting
# (``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=1 dask scheduler`` does the same there).
LOCAL_ALLOWED_FAILURES = 1
CONNECT_TIMEOUT = "30s"  # how long to try reaching a scheduler
# A run expected to take less than this in one process stays in it when the number of workers was not asked for:
# starting a local cluster and its processes' first imports took 3-7 s on 2 busy cores, which made a 5 s import
# slower on two workers than on one (benchmarks/cluster.py import-scaling, docs/benchmarks.md).
SMALL_RUN_S = 10.0


def default_workers() -> int:
    """Worker processes of a local run when none are asked for: the CPUs, at most 8."""
    return max(1, min(os.cpu_count() or 1, 8))


def worker_index(name: Any) -> int | None:
    """The number in a worker's name (``3``, ``"gpu3"``, ``"node-1-3"`` -> 3), or None."""
    if isinstance(name, int):
        return name
    found = re.search(r"(\d+)$", str(name))
    return int(found.group(1)) if found else None


class Session:
    """An open place to run tasks. ``client`` is None when they run in this process."""

    def __init__(self, client: Any = None, cluster: Any = None, scheduler: str | None = None):
        self.client, self.cluster, self.scheduler = client, cluster, scheduler

    @property
    def inline(self) -> bool:
        return self.client is None

    def describe(self) -> str:
        if self.inline:
            return "this process"
        if self.cluster is not None:
            return f"a local cluster of {len(self.cluster.workers)} worker processes"
        return f"the dask cluster at {self.scheduler}"

    def workers(self) -> dict[str, dict[str, Any]]:
        """The cluster's workers now: address -> {"name", "resources", "nthreads"} ({} inline)."""
        if self.inline:
            return {}
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return {address: {"name": w.get("name"), "resources": dict(w.get("resources") or {}),
                          "nthreads": w.get("nthreads", 1)} for address, w in info.items()}

    def worker_count(self) -> int:
        return 1 if self.inline else len(self.workers())

    def check_paths(self, paths: Sequence[str | os.PathLike]) -> None:
        """Every worker imports herostore and sees each local path in ``paths`` (URLs are not checked)."""
        if self.inline:
            return
        from ..locations import is_url

        local = [os.path.abspath(os.fspath(p)) for p in paths if p is not None and not is_url(os.fspath(p))]
        try:
            answers = self.client.run(_probe, local)
        except (ImportError, AttributeError) as exc:
            raise ClusterError(f"{self.describe()}: a worker cannot import herostore ({type(exc).__name__}: {exc}); "
                               f"install the same herostore on every worker") from None
        for address, answer in sorted(answers.items()):
            if answer["missing"]:
                raise ClusterError(f"worker {address} of {self.describe()}: cannot see {answer['missing'][0]}; "
                                   f"every worker must see the data at the same path or URL (a shared filesystem "
                                   f"mounted at one path on every machine, or object storage)")

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()


def _probe(paths: list[str]) -> dict[str, Any]:
    """Runs on each worker: what it sees of ``paths``."""
    from .. import __version__

    return {"version": __version__, "missing": [p for p in paths if not os.path.exists(p)]}


@contextlib.contextmanager
def open_session(workers: int | None = None, scheduler: str | None = None, *, items: int = 2,
                 estimate_s: float | None = None) -> Iterator[Session]:
    """A session for ``items`` pieces of work: the cluster at ``scheduler``; else inline for one worker or one
    item, or when ``workers`` was not given and the work is expected to take under ``SMALL_RUN_S`` in one
    process (``estimate_s``); else a local cluster of ``workers`` processes (default ``default_workers()``)."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ArgumentError(f"workers={workers!r}: expected an int >= 1")
    small = workers is None and estimate_s is not None and estimate_s < SMALL_RUN_S
    workers = default_workers() if workers is None else workers
    if scheduler is None and (workers == 1 or items <= 1 or small):
        yield Session()
        return
    session = _connect(scheduler) if scheduler else _local_cluster(workers)
    try:
        yield session
    finally:
        session.close()


def _connect(scheduler: str) -> Session:
    from distributed import Client

    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the dask scheduler at {scheduler} ({type(exc).__name__}: {exc})") from None
    return Session(client, scheduler=scheduler)


def _local_cluster(workers: int) -> Session:
    import dask
    from distributed import Client, LocalCluster

    # worker-saturation 1.0: a worker is assigned only the task it runs, so a worker that dies takes no queued
    # task's reputation with it (see engine: quarantine)
    with dask.config.set({"distributed.scheduler.allowed-failures": LOCAL_ALLOWED_FAILURES,
                          "distributed.scheduler.worker-saturation": 1.0}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=logging.ERROR)
    try:
        client = Client(cluster)
    except BaseException:
        cluster.close()
        raise
    return Session(client, cluster)
