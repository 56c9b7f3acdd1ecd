"""The bulk engine at scale and under failure, on real scheduler and worker processes.

    python -m benchmarks.cluster scheduler          # 1,000,000 no-op videos: scheduler RSS and time (~1 min)
    python -m benchmarks.cluster overhead           # what one task costs the scheduler and the client
    python -m benchmarks.cluster lost-worker        # import-npy and extract, one of two workers SIGKILLed mid-run
    python -m benchmarks.cluster stats-memory       # stats peak RSS per worker on stores up to --gib GiB
    python -m benchmarks.cluster import-scaling     # import-npy throughput, 2 workers vs 1, interleaved
    python -m benchmarks.cluster scan               # to_dask's metadata scan, per video
    python -m benchmarks.cluster all --out benchmarks/results/cluster.json
    python -m benchmarks.cluster all --quick        # every part at a tiny size (a smoke run)

Clusters are ``herostore.testing.cluster.DaskProcesses``: ``dask scheduler`` and ``dask worker --nthreads 1``
processes on 127.0.0.1 (with nannies). Memory is the resident set size (RSS) of each process, sampled every
0.1 s with psutil; the peak is reported. Data: random normal features (compression and decode costs of trained
activations differ; memory and counts do not depend on the values). ``--workdir`` keeps the generated data.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Self

import numpy as np

from herostore.bulk import map_videos
from herostore.testing.cluster import DaskProcesses, no_op

GIB = 2**30


class PeakRSS:
    """The peak RSS of some processes, sampled in a background thread."""

    def __init__(self, pids: dict[str, int], every: float = 0.1):
        import psutil

        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak = dict.fromkeys(pids, 0)
        self.every, self.done = every, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.is_set():
            for name, proc in self.procs.items():
                with contextlib.suppress(Exception):  # a killed process has no RSS any more
                    self.peak[name] = max(self.peak[name], proc.memory_info().rss)
            self.done.wait(self.every)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    def mib(self) -> dict[str, float]:
        return {name: round(rss / 2**20, 1) for name, rss in self.peak.items()}


def worker_pids(cluster: DaskProcesses) -> dict[str, int]:
    return {name: info["pid"] for name, info in cluster.workers().items()}


# ------------------------------------------------------------------------------------------------ the scheduler


def scheduler(workdir: Path, videos: int) -> dict[str, Any]:
    """``videos`` no-op videos through ``map_videos`` on a scheduler process and two workers; then the same with
    a fixed 100 videos per task (``videos / 100`` tasks), the load the scheduler would carry without batching."""
    items = [(f"video_{i:08d}", f"/data/features/video_{i:08d}.npy") for i in range(videos)]
    out: dict[str, Any] = {"videos": videos}
    with DaskProcesses(workdir / "dask-scheduler", workers=2) as cluster:
        for label, batch in (("adaptive", None), ("100 per task", 100)):
            pids = {"scheduler": cluster.procs["scheduler"].pid, "client": os.getpid(), **worker_pids(cluster)}
            tasks = _count_tasks()
            start = time.perf_counter()
            with PeakRSS(pids) as rss, tasks:
                report = map_videos(no_op, items, scheduler=cluster.address, progress=False, batch=batch)
            wall = time.perf_counter() - start
            counts = Counter(o.video_id for o in report.outcomes)
            out[label] = {"wall_s": round(wall, 2), "videos_per_s": round(videos / wall), "tasks": tasks.count,
                          "peak_rss_mib": rss.mib(), "outcomes": len(report.outcomes),
                          "every_video_once": len(counts) == videos and max(counts.values()) == 1}
    return out


class _count_tasks:
    """Counts the engine's task submissions (``client.submit`` calls) while active."""

    def __enter__(self) -> Self:
        from distributed import Client

        self.count, self.original = 0, Client.submit

        def submit(client: Any, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return self.original(client, *args, **kwargs)

        Client.submit = submit
        return self

    def __exit__(self, *exc: object) -> None:
        from distributed import Client

        Client.submit = self.original


def overhead(workdir: Path, tasks: int) -> dict[str, Any]:
    """One-video no-op tasks, one per task: the engine's, the scheduler's and the transport's cost per task."""
    items = [(f"v{i:06d}",) for i in range(tasks)]
    with DaskProcesses(workdir / "dask-overhead", workers=2) as cluster:
        map_videos(no_op, items[:200], scheduler=cluster.address, progress=False, batch=1)  # warm up
        start = time.perf_counter()
        map_videos(no_op, items, scheduler=cluster.address, progress=False, batch=1)
        wall = time.perf_counter() - start
    from herostore.bulk import TASK_SECONDS

    per_task = wall / tasks
    return {"tasks": tasks, "wall_s": round(wall, 2), "ms_per_task": round(1000 * per_task, 2),
            "share_of_a_task_seconds_task": round(per_task / TASK_SECONDS, 5), "task_seconds": TASK_SECONDS}


# ------------------------------------------------------------------------------------------------- lost worker


def _in_thread(run: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = run()
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, box


def _complete(store: Path) -> int:
    return sum(1 for p in store.iterdir() if (p / "zarr.json").is_file()) if store.is_dir() else 0


def lost_worker(workdir: Path, videos: int, clips: int) -> dict[str, Any]:
    """import-npy and extract with one of two workers killed (SIGKILL, with its nanny) once a quarter of the
    videos are written and while it runs a task; then every video is checked: present once, whole, equal to the
    source (bit-exact for import; to the float16 preset's precision against a run in this process for extract)."""
    from herostore.convert import import_npy
    from herostore.extract import ModelConfig, RunSettings, run_extraction
    from herostore.npyfile import load_features, save_features
    from herostore.store import FeatureStore
    from herostore.testing import build_tiny_models, sample_features, write_clip

    out: dict[str, Any] = {}
    source = workdir / "lost-npy" / "features"
    source.mkdir(parents=True, exist_ok=True)
    for i in range(videos):
        path = source / f"v{i:04d}.npy"
        if not path.exists():
            save_features(path, sample_features(i, lengths=(400, 257, 150, 30)))
    models = build_tiny_models(workdir / "tiny-models", languages=("en",))
    clip_dir = workdir / "lost-clips"
    clip_dir.mkdir(exist_ok=True)
    for i in range(clips):
        if not (clip_dir / f"c{i:03d}.mp4").exists():
            write_clip(clip_dir / f"c{i:03d}.mp4", seconds=1.0, freq=220 + 20 * i, seed=i)
    with DaskProcesses(workdir / "dask-lost", workers=2) as cluster:
        target = workdir / "lost-out"
        shutil.rmtree(target, ignore_errors=True)
        store = target / "features"
        thread, box = _in_thread(lambda: import_npy(source.parent, target, preset="lossless",
                                                    scheduler=cluster.address, progress=False))
        killed = cluster.kill_when("w0", lambda: _complete(store) >= videos // 4, thread.is_alive)
        done_at_kill = _complete(store)
        thread.join()
        report = box["result"]
        written = FeatureStore(store)
        wrong = 0
        for i in range(videos):
            want = load_features(source / f"v{i:04d}.npy")
            got = written.read_video(f"v{i:04d}")
            wrong += any(not np.array_equal(got[k], want.arrays[k]) for k in want.arrays)
        counts = Counter(o.video_id for o in report.outcomes)
        out["import-npy"] = {"videos": videos, "killed_mid_run": killed, "complete_when_killed": done_at_kill,
                             "written": len(report.written), "failed": len(report.failed),
                             "completed_by_the_lost_worker": sum(o.detail.startswith("completed during")
                                                                 for o in report.outcomes),
                             "in_store": len(written.video_ids()), "wrong": wrong,
                             "duplicates": sum(c - 1 for c in counts.values()),
                             "stray_folders": len(written.stray_folders()), "wall_s": round(report.seconds, 1)}
        cluster.start_worker("w0")
        cluster.wait_for_workers(2)
        features = workdir / "lost-extract"
        shutil.rmtree(features, ignore_errors=True)
        config = ModelConfig(model_dir=str(models), device="cpu")
        thread, box = _in_thread(lambda: run_extraction(clip_dir, features, models=config,
                                                        settings=RunSettings(scheduler=cluster.address,
                                                                             progress=False)))
        killed = cluster.kill_when("w0", lambda: _complete(features) >= clips // 4, thread.is_alive)
        done_at_kill = _complete(features)
        thread.join()
        if "error" in box:
            raise box["error"]
        report = box["result"]
    reference = run_extraction(clip_dir, workdir / "lost-extract-reference", models=config,
                               settings=RunSettings(progress=False))
    got, want = FeatureStore(features), FeatureStore(workdir / "lost-extract-reference")
    wrong = 0
    for vid in reference.written + reference.skipped:
        a, b = got.read_video(vid), want.read_video(vid)
        wrong += any(not np.allclose(a[k].astype(np.float32), b[k].astype(np.float32), rtol=2e-3, atol=1e-5)
                     for k in ("video_mae", "clip", "hubert", "bert"))
    counts = Counter(report.written + report.skipped + list(report.failed))
    out["extract"] = {"videos": clips, "killed_mid_run": killed, "complete_when_killed": done_at_kill,
                      "written": len(report.written), "failed": len(report.failed),
                      "completed_by_the_lost_worker": len(report.completed_elsewhere),
                      "in_store": len(got.video_ids()), "wrong": wrong,
                      "duplicates": sum(c - 1 for c in counts.values()),
                      "stray_folders": len(got.stray_folders()), "wall_s": round(report.elapsed, 1)}
    return out


# ------------------------------------------------------------------------------------------------ stats memory

BIG = {"video_mae": (1568, 1024), "clip": (257, 1408), "hubert": (200, 1024), "bert": (30, 768)}


def _grow_store(path: Path, videos: int) -> int:
    """A float16 store of ``videos`` spec-shaped random videos (added to what is there); its bytes on disk."""
    from herostore.store import FeatureStore

    store = FeatureStore.create(path, "float16")
    have = set(store.video_ids())
    rng = np.random.default_rng(len(have))
    for i in range(videos):
        vid = f"v{i:05d}"
        if vid in have:
            continue
        features: dict[str, Any] = {k: (rng.standard_normal(shape, dtype=np.float32) + i % 7)
                                    for k, shape in BIG.items()}
        features["transcript"] = ""
        store.write_video(vid, features)
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _numpy_two_pass(path: Path, modality: str) -> tuple[np.ndarray, np.ndarray, int]:
    """numpy's mean and std over every row, in float64, in two passes of a video at a time (too large at once)."""
    from herostore.store import FeatureStore

    store = FeatureStore(path)
    ids = store.video_ids()
    total, count = None, 0
    for vid in ids:
        rows = store.read_video(vid, [modality])[modality].astype(np.float64)
        total = rows.sum(axis=0) if total is None else total + rows.sum(axis=0)
        count += len(rows)
    mean = total / count
    squares = None
    for vid in ids:
        rows = store.read_video(vid, [modality])[modality].astype(np.float64) - mean
        part = np.square(rows).sum(axis=0)
        squares = part if squares is None else squares + part
    return mean, np.sqrt(squares / count), count


def stats_memory(workdir: Path, gib: float, steps: int = 3) -> dict[str, Any]:
    """``herostore stats`` on two worker processes over stores of growing size (``steps`` sizes up to ``gib``):
    the peak RSS of each worker, and the largest store's statistics against numpy."""
    from herostore.stats import compute_stats

    per_video = sum(int(np.prod(s)) for s in BIG.values()) * 2
    total_videos = max(steps, int(gib * GIB / per_video))
    path = workdir / "stats-store"
    sizes = []
    with DaskProcesses(workdir / "dask-stats", workers=2) as cluster:
        for step in range(1, steps + 1):
            videos = total_videos * step // steps
            start = time.perf_counter()
            on_disk = _grow_store(path, videos)
            build_s = time.perf_counter() - start
            pids = {**worker_pids(cluster), "client": os.getpid()}
            start = time.perf_counter()
            with PeakRSS(pids) as rss:
                stats = compute_stats(path, scheduler=cluster.address, progress=False)
            wall = time.perf_counter() - start
            peaks = rss.mib()
            sizes.append({"videos": videos, "store_gib": round(on_disk / GIB, 2), "build_s": round(build_s, 1),
                          "stats_s": round(wall, 1), "mib_per_s": round(on_disk / 2**20 / wall, 1),
                          "peak_rss_mib": peaks,
                          "worker_peak_mib": max(v for k, v in peaks.items() if k != "client")})
    checks = {}
    for modality in BIG:
        mean, std, count = _numpy_two_pass(path, modality)
        got = stats[modality]
        checks[modality] = {
            "count_equal": got["count"] == count,
            "max_rel_mean": float(np.max(np.abs(np.asarray(got["mean"]) - mean) / np.abs(mean))),
            "max_rel_std": float(np.max(np.abs(np.asarray(got["std"]) - std) / std)),
        }
    import psutil

    return {"sizes": sizes, "vs_numpy": checks, "ram_gib": round(psutil.virtual_memory().total / GIB, 1)}


def scan(workdir: Path, videos: int) -> dict[str, Any]:
    """What ``to_dask`` costs before any data is read: every video's metadata, on a store of ``videos`` small
    videos (``benchmarks.scale.build``: hard-linked copies of a few written ones), warm, best of 3."""
    from benchmarks.scale import build
    from herostore import to_dask

    path = workdir / f"scan-{videos}"
    if not path.exists():
        build(path, videos)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        arrays = to_dask(path, "hubert")
        times.append(time.perf_counter() - start)
    return {"videos": videos, "seconds": [round(t, 2) for t in times],
            "ms_per_video_best": round(1000 * min(times) / videos, 3), "blocks": len(arrays.blocks)}


# ---------------------------------------------------------------------------------------------- import scaling


def import_scaling(workdir: Path, videos: int, repeats: int) -> dict[str, Any]:
    """import-npy of ``videos`` spec-shaped videos, interleaved, ``repeats`` times each way: ``--workers 1`` (this
    process) against ``--workers 2`` (a local cluster, started inside the timing as a user's run starts it), and a
    running cluster of 1 worker process against one of 2 (started before the timing: the steady state). Also the
    CPU time per video of the one-process run (this process's user + system time), against its wall time."""
    import psutil

    from herostore.convert import import_npy
    from herostore.npyfile import save_features
    from herostore.testing import sample_features

    source = workdir / "scaling-npy" / "features"
    source.mkdir(parents=True, exist_ok=True)
    for i in range(videos):
        path = source / f"v{i:04d}.npy"
        if not path.exists():
            save_features(path, sample_features(i, lengths=(1568, 257, 200, 30)))
    for path in source.iterdir():  # into the page cache: every run reads warm
        path.read_bytes()
    runs: dict[str, list[float]] = {"--workers 1": [], "--workers 2": [], "running, 1 worker": [],
                                    "running, 2 workers": []}
    cpu_share = []
    with DaskProcesses(workdir / "dask-one", workers=1) as one, DaskProcesses(workdir / "dask-two", workers=2) as two:
        ways = {"--workers 1": {"workers": 1}, "--workers 2": {"workers": 2},
                "running, 1 worker": {"scheduler": one.address}, "running, 2 workers": {"scheduler": two.address}}
        for _ in range(repeats):
            for label, where in ways.items():
                target = workdir / "scaling-out"
                shutil.rmtree(target, ignore_errors=True)
                before, start = psutil.Process().cpu_times(), time.perf_counter()
                report = import_npy(source.parent, target, progress=False, **where)
                wall = time.perf_counter() - start
                runs[label].append(wall)
                if label == "--workers 1":
                    after = psutil.Process().cpu_times()
                    cpu_share.append((after.user - before.user + after.system - before.system) / wall)
                assert len(report.written) == videos, report.summary()
    best = {label: min(times) for label, times in runs.items()}
    return {"videos": videos, "mb": round(sum(p.stat().st_size for p in source.iterdir()) / 1e6),
            "repeats": repeats, "wall_s": {k: [round(t, 2) for t in v] for k, v in runs.items()},
            "best_videos_per_s": {k: round(videos / t, 2) for k, t in best.items()},
            "speedup_local_best": round(best["--workers 1"] / best["--workers 2"], 2),
            "speedup_running_best": round(best["running, 1 worker"] / best["running, 2 workers"], 2),
            "spread": {k: round(max(v) / min(v) - 1, 2) for k, v in runs.items()},
            "one_process_cpu_per_wall": [round(c, 2) for c in cpu_share],
            "load_average": [round(x, 1) for x in os.getloadavg()]}


# ---------------------------------------------------------------------------------------------------- command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["scheduler", "overhead", "lost-worker", "stats-memory", "import-scaling",
                                         "scan", "all"])
    parser.add_argument("--quick", action="store_true", help="every part at a tiny size")
    parser.add_argument("--videos", type=int, help="scheduler: no-op videos (default 1,000,000)")
    parser.add_argument("--gib", type=float, default=6.5, help="stats-memory: the largest store (default 6.5 GiB)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="where data goes (default: a temporary folder, removed)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="herostore-cluster-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    quick = args.quick
    parts = {
        "scheduler": partial(scheduler, workdir, args.videos or (20_000 if quick else 1_000_000)),
        "overhead": partial(overhead, workdir, 200 if quick else 2000),
        "lost-worker": partial(lost_worker, workdir, 16 if quick else 120, 4 if quick else 12),
        "stats-memory": partial(stats_memory, workdir, 0.05 if quick else args.gib, 2 if quick else 3),
        "import-scaling": partial(import_scaling, workdir, 4 if quick else 48, 1 if quick else args.repeats),
        "scan": partial(scan, workdir, 200 if quick else 20_000),
    }
    chosen = list(parts) if args.part == "all" else [args.part]
    result: dict[str, Any] = {
        "command": "python -m benchmarks.cluster " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    try:
        for name in chosen:
            start = time.perf_counter()
            result[name] = parts[name]()
            result[name]["part_s"] = round(time.perf_counter() - start, 1)
            print(f"{name}: {json.dumps(result[name])}", flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
