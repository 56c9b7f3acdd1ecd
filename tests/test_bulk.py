"""The bulk engine (``herostore.bulk``) and the lazy dataset (``herostore.to_dask``).

Engine: batching, each item's outcome exactly once, the error policy (a failing video, a task that fails as a
whole, a ``HerostoreError`` that stops the run), ids complete before the run, the progress line, sessions. Runs on
a cluster use an in-process one here (quick); ``test_cluster.py`` runs separate scheduler and worker processes and
kills them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from functools import partial

import numpy as np
import pytest

from herostore import FeatureStore
from herostore.bulk import (
    COMPLETED_DURING_RUN,
    JobReport,
    Outcome,
    Session,
    TaskResult,
    batch_size,
    map_videos,
    open_session,
    run_tasks,
    worker_index,
)
from herostore.bulk import engine as engine_module
from herostore.bulk import progress as progress_module
from herostore.bulk import session as session_module
from herostore.errors import ArgumentError, ClusterError, ExtractionError
from herostore.testing.features import sample_features


@pytest.fixture(scope="module")
def cluster():
    """An in-process cluster of two single-threaded workers (tasks see this module's functions)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as local:
        yield local.scheduler_address


class Tasks:
    """A collector that also counts tasks and the workers they ran on."""

    def __init__(self):
        self.outcomes: list[Outcome] = []
        self.tasks = 0
        self.workers: set[str] = set()

    def add(self, outcome):
        self.outcomes.append(outcome)

    def add_extra(self, extra, worker):
        self.tasks += 1
        self.workers.add(worker)

    def ids(self):
        return sorted(o.video_id for o in self.outcomes)


def _item(item):
    return item[0], f"/data/{item[0]}.npy"


def _each(items, tick, *, fail_with=None, bad="bad"):
    if fail_with is not None and any(item[0] == bad for item in items):
        raise fail_with
    outcomes = [Outcome(item[0], "done") for item in items]
    for outcome in outcomes:
        if tick:
            tick(outcome)
    return TaskResult(outcomes)


# ---------------------------------------------------------------------------------------------------- batching


def test_batch_size_is_about_task_seconds_of_work_and_shrinks_at_the_end():
    assert batch_size(0.05, 10_000, 2) == round(engine_module.TASK_SECONDS / 0.05)
    assert batch_size(1e-7, 10**7, 2) == engine_module.MAX_BATCH  # no-op items: the cap
    assert batch_size(0.001, 10, 2) == 3  # 10 left over 2 workers x 2 slots
    assert batch_size(10.0, 1000, 2) == 1  # slow items: one per task
    assert batch_size(10.0, 1000, 2, min_batch=8) == 8  # ... unless a task must hold a model batch
    assert batch_size(0.0, 5, 1) == 3


def test_a_cluster_run_reports_every_item_once_in_few_tasks(cluster):
    items = [(f"v{i:05d}",) for i in range(5000)]
    into = Tasks()
    with open_session(scheduler=cluster) as session:
        facts = run_tasks(session, _each, items, into, describe=_item, progress=False, item_seconds=1e-4)
    assert into.ids() == [i[0] for i in items]
    assert into.tasks < 100 and len(into.workers) == 2  # batched, and spread over both workers
    assert (facts.workers, facts.workers_lost) == (2, 0)


def test_fixed_batches_run_as_given(cluster):
    items = [(f"v{i}",) for i in range(10)]
    for where in (None, cluster):
        into = Tasks()
        with open_session(workers=1, scheduler=where) as session:
            run_tasks(session, _each, items, into, describe=_item, progress=False,
                      batches=[items[:3], items[3:4], items[4:]])
        assert into.tasks == 3 and into.ids() == [i[0] for i in items]


# ------------------------------------------------------------------------------------------------ error policy


def test_a_task_that_fails_as_a_whole_is_run_one_item_per_task_and_only_the_culprit_fails(cluster):
    items = [(f"v{i}",) for i in range(30)] + [("bad",)]
    into = Tasks()
    with open_session(scheduler=cluster) as session:
        run_tasks(session, partial(_each, fail_with=MemoryError("boom")), items, into, describe=_item,
                  progress=False, item_seconds=1e-4)
    assert into.ids() == sorted(i[0] for i in items)
    failed = {o.video_id: o.detail for o in into.outcomes if o.status == "failed"}
    assert failed == {"bad": "/data/bad.npy: its task failed (MemoryError: boom)"}


def test_a_herostore_error_from_a_task_stops_the_run(cluster):
    items = [(f"v{i}",) for i in range(20)] + [("bad",)]
    with open_session(scheduler=cluster) as session, pytest.raises(ExtractionError, match="no model"):
        run_tasks(session, partial(_each, fail_with=ExtractionError("no model")), items, Tasks(), describe=_item,
                  progress=False)
    with open_session(workers=1) as session, pytest.raises(ExtractionError, match="no model"):  # in this process
        run_tasks(session, partial(_each, fail_with=ExtractionError("no model")), items, Tasks(), describe=_item,
                  progress=False)
    # raised by the per-video function of map_videos, it is that video's failure
    assert map_videos(_raises_herostore_error, [("a",)], workers=1, progress=False).failed == {"a": "no model"}


def _raises_herostore_error(video_id):
    raise ExtractionError("no model")


CANCELLED: list[str] = []


def _cancels_itself(items, tick, *, times):
    """A task the scheduler loses: it cancels its own key (its first ``times`` runs)."""
    from distributed import Future, get_client, get_worker

    if len(CANCELLED) < times:
        key = get_worker().get_current_task()
        CANCELLED.append(key)
        get_client().cancel([Future(key)], force=True)
        import time

        time.sleep(0.5)  # the cancellation reaches the submitting client first
    return TaskResult([Outcome(item[0], "done") for item in items])


def test_a_task_the_scheduler_loses_is_run_again_a_few_times(cluster):
    items = [("a",), ("b",)]
    for times, expected in ((1, {"a": "done", "b": "done"}), (100, {"a": "failed", "b": "failed"})):
        CANCELLED.clear()
        into = Tasks()
        with open_session(scheduler=cluster) as session:
            run_tasks(session, partial(_cancels_itself, times=times), items, into, describe=_item, progress=False,
                      batch=2)
        assert {o.video_id: o.status for o in into.outcomes} == expected
    assert into.outcomes[0].detail == "/data/a.npy: its task was lost by the scheduler 4 times (cancelled, or its " \
                                      "result lost)"


def test_a_task_owes_one_outcome_per_item():
    def sloppy(items, tick):
        first = Outcome(items[0][0], "done")
        return TaskResult([first, first, Outcome(items[0][0], "done"), Outcome("stranger", "done")])

    into = Tasks()
    with open_session(workers=1) as session:
        run_tasks(session, sloppy, [("a",), ("a",), ("b",)], into, describe=_item, progress=False)
    assert [(o.video_id, o.status) for o in into.outcomes] == [("a", "done"), ("a", "done"), ("b", "failed")]
    assert into.outcomes[2].detail == "its task returned no outcome for it"


def test_complete_ids_are_skipped_unrun_and_a_video_found_complete_counts_as_written(tmp_path):
    ran = []

    def convert(video_id):
        ran.append(video_id)
        return Outcome(video_id, "skipped" if video_id == "b" else "written")

    report = map_videos(convert, [("a",), ("b",), ("c",)], workers=1, progress=False, complete={"a", "x"})
    assert ran == ["b", "c"]
    assert (report.skipped, sorted(report.written)) == (["a"], ["b", "c"])
    assert [o.detail for o in report.outcomes if o.video_id == "b"] == [COMPLETED_DURING_RUN]
    assert "1 of the written videos were completed during this run" in report.summary()
    without = map_videos(convert, [("b",)], workers=1, progress=False)  # no `complete`: taken as it comes
    assert without.skipped == ["b"]


# ---------------------------------------------------------------------------------------------------- sessions


def test_sessions_check_their_arguments_and_the_workers_view(cluster, tmp_path, monkeypatch):
    with pytest.raises(ArgumentError, match="workers=0"):
        map_videos(_done, [("a",)], workers=0, progress=False)
    with open_session(workers=1) as session:
        assert session.inline and session.describe() == "this process" and session.worker_count() == 1
        session.check_paths(["/nowhere"])  # nothing to check in this process
    with open_session(scheduler=cluster) as session:
        assert session.worker_count() == 2 and not session.inline
        session.check_paths([tmp_path, "s3://bucket/store"])
        with pytest.raises(ClusterError, match=r"worker tcp://127\.0\.0\.1:\d+ of the dask cluster at .*: cannot "
                                               r"see /nowhere/at/all; every worker must see the data at the same"):
            session.check_paths(["/nowhere/at/all"])
    monkeypatch.setattr(session_module, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(ClusterError, match=r"cannot reach the dask scheduler at tcp://127\.0\.0\.1:9"):
        map_videos(_done, [("a",)], scheduler="tcp://127.0.0.1:9", progress=False)


def test_a_short_run_stays_in_this_process_unless_workers_are_asked_for(monkeypatch):
    opened = []  # local clusters asked for (a stand-in runs them here)
    monkeypatch.setattr(session_module, "_local_cluster", lambda workers: opened.append(workers) or Session())
    report = map_videos(_done, [("a",), ("b",)], progress=False, item_seconds=1.0)  # ~2 s of work
    assert len(report.ids("done")) == 2 and opened == []
    map_videos(_done, [("a",), ("b",)], workers=2, progress=False, item_seconds=1.0)  # asked for
    map_videos(_done, [("a",), ("b",)], progress=False, item_seconds=session_module.SMALL_RUN_S)  # a longer run
    assert opened == [2, session_module.default_workers()]


def test_a_cluster_without_workers_stops_the_run(monkeypatch):
    from distributed import LocalCluster

    monkeypatch.setattr(engine_module, "NO_WORKERS_TIMEOUT_S", 0.5)
    with (LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1",
                       dashboard_address="127.0.0.1:0") as empty,
          pytest.raises(ClusterError, match=r"no worker for 0 s; videos finished so far are complete")):
        map_videos(_done, [("a",), ("b",)], scheduler=empty.scheduler_address, progress=False)


def _done(video_id):
    return Outcome(video_id, "done")


def test_worker_index():
    assert [worker_index(n) for n in (3, "gpu3", "node-1-12", "w0", "alpha")] == [3, 3, 12, 0, None]


# ---------------------------------------------------------------------------------------------------- progress


def test_plain_progress_line_shows_rate_eta_failures_and_workers(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `from tqdm import tqdm` now raises ImportError
    clock = iter([100.0, 102.0, 104.0])
    fake_time = types.SimpleNamespace(perf_counter=lambda: next(clock), strftime=progress_module.time.strftime,
                                      gmtime=progress_module.time.gmtime)
    monkeypatch.setattr(progress_module, "time", fake_time)
    progress = progress_module.Progress(4, True, "extract", where="2 workers")
    assert progress.bar is None
    progress.update(1)  # 1 video in 2 s: 0.50 videos/s, 3 left: 6 s
    progress.update(1, failed=True)  # 2 in 4 s
    progress.close()
    err = capsys.readouterr().err
    assert "\rextract 1/4 videos, 0.50 videos/s, ETA 00:00:06, 0 failed, 2 workers" in err
    assert "\rextract 2/4 videos, 0.50 videos/s, ETA 00:00:04, 1 failed, 2 workers" in err
    assert err.endswith("\n")


def test_report_summary_counts():
    report = JobReport([Outcome("a", "written"), Outcome("b", "skipped"), Outcome("c", "failed", "bad file"),
                        Outcome("d", "done")], seconds=2.0, workers_lost=1)
    text = report.summary()
    assert text.startswith("1 videos written, 1 skipped (already complete), 1 done, 1 failed in 2.0 s (2.0/s)")
    assert "1 worker(s) left the cluster during the run; the tasks they held ran again on the others" in text
    assert "  c: bad file" in text and not report.ok


# -------------------------------------------------------------------------------------------------- to_dask


@pytest.fixture
def lazy_store(tmp_path):
    store = FeatureStore.create(tmp_path / "features", "lossless")
    for i in range(7):
        store.write_video(f"v{i}", sample_features(i, lengths=(3 + i, 2, 10 + 5 * i, 4), au=i % 3 == 0))
    return store


def test_to_dask_is_every_videos_rows_in_blocks_of_whole_videos(lazy_store):
    import herostore

    arrays = herostore.to_dask(lazy_store.path, "hubert", block_bytes=40 * 1024 * 4)
    rows = [lazy_store.read_video(v)["hubert"] for v in lazy_store.video_ids()]
    assert arrays.video_ids == lazy_store.video_ids()
    assert arrays.lengths().tolist() == [len(r) for r in rows] == [10 + 5 * i for i in range(7)]
    assert arrays.data.shape == (sum(len(r) for r in rows), 1024) and arrays.data.dtype == np.float32
    assert len(arrays.data.chunks[0]) == len(arrays.blocks) > 2  # several blocks, each whole videos
    assert [arrays.offsets[b] for b, _ in arrays.blocks] == np.cumsum([0, *arrays.data.chunks[0][:-1]]).tolist()
    np.testing.assert_array_equal(arrays.data.compute(), np.concatenate(rows))
    np.testing.assert_array_equal(arrays.video("v3").compute(), rows[3])
    assert float(arrays.data.sum().compute()) == pytest.approx(float(np.concatenate(rows).sum(dtype=np.float64)))
    au = herostore.to_dask(lazy_store.path, "au", dtype="float64")
    assert au.lengths().tolist() == [3, 0, 0, 6, 0, 0, 9] and au.data.dtype == np.float64
    np.testing.assert_array_equal(au.video(3).compute(), lazy_store.read_video("v3")["au"])


def test_to_dask_of_a_folder_of_npy_files(npy_dataset):
    from herostore import to_dask

    arrays = to_dask(npy_dataset / "features", "bert")
    assert arrays.lengths().tolist() == [7, 8, 9, 10]
    assert arrays.data.compute().shape == (34, 768)


def test_import_herostore_imports_neither_dask_nor_torch():
    code = ("import sys, herostore, herostore.bulk, herostore.convert; from herostore import to_dask; "
            "print(to_dask.__module__, sorted({'dask', 'distributed', 'torch'} & set(sys.modules)))")
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert printed == "herostore.lazy []\n"


def test_to_dask_and_stats_on_object_storage(lazy_store):
    """A store given by URL (fsspec's in-memory filesystem stands in for a bucket): the same rows and statistics."""
    import fsspec

    from herostore import to_dask
    from herostore.stats import compute_stats

    fs = fsspec.filesystem("memory")
    fs.put(str(lazy_store.path), "/herostore-bulk/features", recursive=True)
    url = "memory://herostore-bulk/features"
    try:
        remote = to_dask(url, "clip", block_bytes=2 * 1408 * 4)
        np.testing.assert_array_equal(remote.data.compute(), to_dask(lazy_store.path, "clip").data.compute())
        assert len(remote.blocks) == 7
        here = compute_stats(lazy_store.path, workers=1, progress=False)
        there = compute_stats(url, workers=1, progress=False)
        assert there == here and FeatureStore(url).attrs["stats"] == json.loads(json.dumps(here))
    finally:
        fs.rm("/herostore-bulk", recursive=True)
