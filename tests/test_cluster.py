"""Every bulk command on a real dask cluster: a scheduler and two workers started as separate processes
(``dask scheduler``, ``dask worker --nthreads 1`` on 127.0.0.1, ports the system picks, this herostore on their
``PYTHONPATH``), driven through the command line with ``--scheduler``. One worker is killed with SIGKILL (with its
nanny: a lost machine) in the middle of ``import-npy`` and of ``extract``: the run completes, every video is written
once and whole, the counts are right, and a second run writes nothing. A video that kills its worker process is
that video's failure. GPU placement is checked without a GPU (a declared resource, fake device counts and names).

The workers see the store at the same absolute local path as the test (every worker of a real cluster must see the
data at one path or URL: a shared filesystem or object storage).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from herostore import FeatureStore
from herostore.bulk import map_videos, open_session, run_tasks
from herostore.convert import import_npy
from herostore.errors import ExtractionError
from herostore.extract import ExtractOptions, ModelConfig, OutputSpec, RunSettings, run_extraction
from herostore.extract.placement import GPU_RESOURCE, choose_device, task_resources
from herostore.extract.runner import Job
from herostore.layout import SCRATCH_DIR
from herostore.npyfile import load_features, save_features
from herostore.testing import build_tiny_models, sample_features, write_sample_set
from herostore.testing.cluster import DaskProcesses, crash_on, done_task

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 300  # seconds for one command: generous, the machine may be loaded
F16 = {"rtol": 2e-3, "atol": 1e-5}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with DaskProcesses(tmp_path_factory.mktemp("dask"), workers=2) as processes:
        yield processes


@pytest.fixture
def two_workers(cluster):
    """The cluster with its two workers up (a test before may have killed one)."""
    known = cluster.workers()
    for name in ("w0", "w1"):
        if name not in known:
            cluster.start_worker(name)
    cluster.wait_for_workers(2)
    return cluster


def herostore_command(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-m", "herostore", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out, err


def complete_videos(store: Path) -> list[str]:
    if not store.is_dir():
        return []
    return sorted(p.name for p in store.iterdir() if not p.name.startswith(".") and (p / "zarr.json").is_file())


def files_of(store: Path) -> dict[str, tuple[int, int, int]]:
    """Every file of a store but its scratch, with inode, size and modification time: what a re-run must not touch."""
    found = {}
    for path in store.rglob("*"):
        if path.is_file() and SCRATCH_DIR not in path.relative_to(store).parts:
            st = path.stat()
            found[str(path.relative_to(store))] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return found


def left_by_the_dead(store: Path) -> None:
    """A killed worker leaves at most its unpublished scratch (never a half video); nobody holds it."""
    assert FeatureStore(store).stray_folders() == []
    assert FeatureStore(store).clean_scratch(older_than=0) <= 1
    assert not (store / SCRATCH_DIR).exists()


# ------------------------------------------------------------------------------------------------- import-npy


def test_import_npy_survives_a_lost_worker_and_a_rerun_writes_nothing(two_workers, tmp_path):
    features = tmp_path / "npy" / "features"
    features.mkdir(parents=True)
    n = 120
    for i in range(n):
        save_features(features / f"v{i:03d}.npy", sample_features(i, lengths=(300, 257, 100, 20)))
    store = tmp_path / "out" / "features"
    run = herostore_command("import-npy", str(features.parent), str(tmp_path / "out"), "--preset", "lossless",
                            "--scheduler", two_workers.address, "--quiet")
    killed = two_workers.kill_when("w0", lambda: len(complete_videos(store)) >= 1, run)
    code, out, err = finish(run)
    assert killed, f"the run ended before a worker could be killed: {out}"
    assert code == 0, err
    assert out.startswith(f"{n} videos written, 0 skipped (already complete), 0 failed"), out
    assert "worker(s) left the cluster during the run" in out
    assert complete_videos(store) == [f"v{i:03d}" for i in range(n)]
    written = FeatureStore(store)
    for i in range(n):
        source = load_features(features / f"v{i:03d}.npy")
        got = written.read_video(f"v{i:03d}")
        for key in ("video_mae", "clip", "hubert", "bert"):
            np.testing.assert_array_equal(got[key], source.arrays[key])
        assert got["transcript"] == source.transcript
    left_by_the_dead(store)
    before = files_of(store)
    again = import_npy(features.parent, tmp_path / "out", preset="lossless", scheduler=two_workers.address,
                       progress=False)
    assert again.summary().startswith(f"0 videos written, {n} skipped (already complete), 0 failed")
    assert files_of(store) == before


# ------------------------------------------------------------------------------------------------------ stats


def test_stats_on_the_cluster_equal_numpy(two_workers, tmp_path):
    store = FeatureStore.create(tmp_path / "features", "float16")
    for i in range(40):
        store.write_video(f"v{i:02d}", sample_features(i, lengths=(20 + i, 3, 50 + i, 9), au=i % 4 == 0))
    code, out, err = finish(herostore_command("stats", str(store.path), "--scheduler", two_workers.address, "--quiet"))
    assert code == 0, err
    stats = json.loads((store.path / "zarr.json").read_text())["attributes"]["herostore"]["stats"]
    for modality in ("video_mae", "clip", "hubert", "bert", "au"):
        rows = np.concatenate([a for v in store.video_ids() if (a := store.read_video(v).get(modality)) is not None])
        rows = rows.astype(np.float64)
        np.testing.assert_allclose(stats[modality]["mean"], rows.mean(0), rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(stats[modality]["std"], rows.std(0), rtol=1e-6)
        assert stats[modality]["count"] == len(rows)
    assert f"stats recorded in {store.path}" in out


# ---------------------------------------------------------------------------------------------------- extract


@pytest.fixture(scope="module")
def tiny_models_dir(tmp_path_factory) -> Path:
    return build_tiny_models(tmp_path_factory.mktemp("models"), languages=("en",))


def test_extract_survives_a_lost_worker_and_a_rerun_writes_nothing(two_workers, tiny_models_dir, tmp_path):
    clips = write_sample_set(tmp_path / "videos")  # six good clips and three bad files
    good = sorted(name for name in clips if name not in ("corrupt", "not_a_video", "empty"))
    out = tmp_path / "features"
    args = ["extract", "--video_path", str(tmp_path / "videos"), "--output_dir", str(out), "--model-dir",
            str(tiny_models_dir), "--device", "cpu", "--scheduler", two_workers.address, "--quiet"]
    run = herostore_command(*args)
    killed = two_workers.kill_when("w0", lambda: len(complete_videos(out)) >= 1, run)
    code, printed, err = finish(run)
    assert killed, f"the run ended before a worker could be killed: {printed}"
    assert code == 1, err  # the three bad files
    assert "extract done: 6 written, 0 skipped (already complete), 3 failed" in printed, printed
    assert complete_videos(out) == good
    left_by_the_dead(out)
    # two of them extracted again in this process: the same features
    models = ModelConfig(model_dir=str(tiny_models_dir), device="cpu")
    reference = run_extraction([clips["speech_a"], clips["portrait"]], tmp_path / "reference", models=models,
                               settings=RunSettings(progress=False))
    got, want = FeatureStore(out), FeatureStore(tmp_path / "reference")
    for vid in reference.written:
        a, b = got.read_video(vid), want.read_video(vid)
        for key in ("video_mae", "clip", "hubert", "bert"):
            np.testing.assert_allclose(a[key].astype(np.float32), b[key].astype(np.float32), **F16)
        assert a["transcript"] == b["transcript"]
    before = files_of(out)
    again = run_extraction(tmp_path / "videos", out, models=models,
                           settings=RunSettings(scheduler=two_workers.address, progress=False))
    assert (len(again.written), len(again.skipped), len(again.failed)) == (0, 6, 3)
    assert files_of(out) == before


# ----------------------------------------------------------------------------------------- a video that crashes


def test_a_video_that_kills_its_worker_process_is_that_videos_failure(two_workers):
    items = [(f"v{i:02d}", f"/data/v{i:02d}.npy") for i in range(40)]
    report = map_videos(partial(crash_on, bad=frozenset({"v13"}), how="segv"), items,
                        scheduler=two_workers.address, progress=False)
    assert sorted(o.video_id for o in report.outcomes) == [vid for vid, _ in items]  # each once
    assert report.failed == {"v13": "/data/v13.npy: the worker process died while working on it, alone, 2 time(s) "
                                    "(a crash in native code, os._exit or running out of memory); the other videos "
                                    "went on"}
    assert len(report.ids("done")) == 39
    two_workers.wait_for_workers(2)  # the nannies started new worker processes


# ------------------------------------------------------------------------------------------------- GPU workers


def test_gpu_workers_take_every_task_that_asks_for_a_gpu(two_workers, tiny_models_dir, tmp_path):
    """A worker declaring ``GPU=1`` (no GPU behind it: only the resource is checked) gets every task asking for
    one; an extraction there on ``auto`` refuses to fall back to the CPU, naming the worker."""
    two_workers.start_worker("gpu0", resources=f"{GPU_RESOURCE}=1", env={"CUDA_VISIBLE_DEVICES": ""})
    try:
        two_workers.wait_for_workers(3)

        class Seen:
            def __init__(self):
                self.workers, self.ids = set(), []

            def add(self, outcome):
                self.ids.append(outcome.video_id)

            def add_extra(self, extra, worker):
                self.workers.add(worker)

        seen = Seen()
        with open_session(scheduler=two_workers.address) as session:
            resources = task_resources(session.workers(), "auto")
            assert resources == {GPU_RESOURCE: 1}
            run_tasks(session, done_task, [(f"v{i}",) for i in range(30)], seen,
                      describe=lambda item: (item[0], item[0]), progress=False, resources=resources, batch=2)
        assert seen.workers == {"gpu0"} and sorted(seen.ids) == sorted(f"v{i}" for i in range(30))
        clip = write_sample_set(tmp_path / "videos", bad=False)["portrait"]
        code, _, err = finish(herostore_command("extract", "--video_path", str(clip), "--output_dir",
                                                str(tmp_path / "out"), "--model-dir", str(tiny_models_dir),
                                                "--scheduler", two_workers.address, "--quiet"))
    finally:
        two_workers.kill("gpu0")
    assert code == 2 and "error: worker 'gpu0' declares GPU=1 but torch sees no CUDA device" in err, err
    assert complete_videos(tmp_path / "out") == []


def test_the_device_is_chosen_on_each_worker():
    assert choose_device("auto", cuda_count=0) == "cpu"
    assert choose_device("auto", cuda_count=1, gpu_slots=1, worker_name="gpu0") == "cuda"  # pinned by CUDA_VISIBLE
    assert choose_device("auto", cuda_count=4, worker_name="gpu-6") == "cuda:2"  # spread by the number in its name
    assert choose_device("cuda", cuda_count=2, worker_name=3) == "cuda:1"  # local cluster worker 3
    assert choose_device("cuda:1", cuda_count=2, worker_name=0) == "cuda:1"  # as asked
    assert choose_device("cpu", cuda_count=8, gpu_slots=1) == "cpu"
    with pytest.raises(ExtractionError, match=r"worker 'gpu0' declares GPU=1 but torch sees no CUDA device"):
        choose_device("auto", cuda_count=0, gpu_slots=1, worker_name="gpu0")
    with pytest.raises(ExtractionError, match=r"device 'cuda:2' asked for, but torch sees 2 CUDA device"):
        choose_device("cuda:2", cuda_count=2, worker_name="w")
    assert task_resources({"a": {"resources": {}}, "b": {"resources": {"GPU": 1}}}, "auto") == {"GPU": 1}
    assert task_resources({"a": {"resources": {"GPU": 1}}}, "cpu") is None
    assert task_resources({"a": {"resources": {}}}, "cuda") is None


def test_a_job_settles_device_dtype_and_batch_size_on_its_worker(monkeypatch, tmp_path):
    """Submitted from a machine without a GPU, a job asking for ``auto`` runs on the worker's GPU in float16 with
    the GPU batch size (nothing runs on a GPU here: the worker's facts are faked)."""
    from herostore.extract import placement

    monkeypatch.setattr(placement, "worker_facts", lambda: ("gpu3", 1.0, 4))
    job = Job(OutputSpec(tmp_path / "out"), ModelConfig(device="auto"), ExtractOptions(), {})
    assert job.models.device == "cpu"  # settled here, where the run was prepared
    there = job.absolute().on_this_worker()
    assert (there.models.device, there.models.dtype, there.options.batch_size) == ("cuda:3", "float16", 8)
    asked = Job(OutputSpec(tmp_path / "out"), ModelConfig(device="auto", dtype="float32"),
                ExtractOptions(batch_size=2), {}).on_this_worker()
    assert (asked.models.device, asked.models.dtype, asked.options.batch_size) == ("cuda:3", "float32", 2)
