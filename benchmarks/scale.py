"""How a herostore store's cost grows with the number of videos.

``build(path, n)`` makes a store of ``n`` small videos in the default preset: ``TEMPLATES`` distinct videos are
written with ``FeatureStore.write_video`` and every other video directory is a clone of one of them under a new
id: its chunks hard-linked, its document sealed again under the new id. The format keeps no per-store index (a video is its own directory with its own metadata), so the
result is what writing ``n`` videos would give, without paying ``n`` zarr-python writes.

``probe`` runs in a fresh interpreter (``python -m benchmarks.scale PATH N READS``) so its memory is that of a
process that opens the store and reads from it: import time, ``open_reader`` + the first read, RSS, the files
opened by that, per-sample read time over random videos (warm), and the time and memory to list every id.
``compare_reads`` measures the per-sample read time of all sizes side by side in one process, in alternating
blocks, which is what the size-to-size comparison uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

TEMPLATES = 16
SMALL = {"video_mae": (8, 1024), "clip": (4, 1408), "hubert": (10, 1024), "bert": (6, 768)}
REPO = Path(__file__).resolve().parents[1]


def scale_id(i: int) -> str:
    return f"v{i:07d}"


def build(path: Path, n: int, preset: str | None = None) -> float:
    """Make the store; returns seconds taken."""
    from herostore.layout import FORMAT_NAME, seal_video
    from herostore.presets import DEFAULT_PRESET
    from herostore.store import FeatureStore

    start = time.perf_counter()
    store = FeatureStore.create(path, preset or DEFAULT_PRESET)
    rng = np.random.default_rng(7)
    for i in range(min(TEMPLATES, n)):
        features: dict[str, Any] = {k: rng.standard_normal(s, dtype=np.float32) for k, s in SMALL.items()}
        features["transcript"] = f"template {i}"
        store.write_video(scale_id(i), features)
    templates = [path / scale_id(i) for i in range(min(TEMPLATES, n))]
    layouts = []
    for t in templates:
        dirs = sorted(str(p.relative_to(t)) for p in t.rglob("*") if p.is_dir())
        files = sorted(str(p.relative_to(t)) for p in t.rglob("*") if p.is_file())
        layouts.append((t, dirs, files))
    for i in range(len(templates), n):
        src, dirs, files = layouts[i % len(layouts)]
        dst = path / scale_id(i)
        os.mkdir(dst)
        for d in dirs:
            os.mkdir(dst / d)
        for f in files:
            if f == "zarr.json":
                document = json.loads((src / f).read_bytes())
                chunks = document["attributes"][FORMAT_NAME]["chunks"]
                (dst / f).write_bytes(seal_video(document, scale_id(i), chunks))
            else:
                os.link(src / f, dst / f)
    return time.perf_counter() - start


def ensure(path: Path, n: int) -> float:
    """Build the store unless a complete one is already there (kept in the work folder's cache between runs)."""
    marker = path.with_name(path.name + ".complete")
    if marker.is_file() and path.is_dir():
        return 0.0
    if path.exists():
        subprocess.run(["rm", "-rf", str(path)], check=True)
    seconds = build(path, n)
    marker.write_text(f"{n} videos, built by benchmarks.scale\n")
    return seconds


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def probe(path: str, n: int, reads: int) -> dict[str, Any]:
    rss_start = _rss_mb()
    t0 = time.perf_counter()
    from herostore.locations import beneath
    from herostore.read import open_reader

    t_import = time.perf_counter() - t0
    rss_import = _rss_mb()
    opened: list[str] = []  # every file opened beneath the store, the root document included
    real_open = beneath.open_beneath

    def counting_open(root: int, p: str) -> int:
        opened.append(p)
        return real_open(root, p)

    beneath.open_beneath = counting_open
    first = scale_id(n // 2)
    t0 = time.perf_counter()
    reader = open_reader(path)
    t_open = time.perf_counter() - t0
    record = reader.read(first)
    t_open_read = time.perf_counter() - t0
    beneath.open_beneath = real_open
    rss_open = _rss_mb()
    assert record.arrays, "the first read returned no arrays"

    rng = np.random.default_rng(0)
    ids = [scale_id(int(i)) for i in rng.integers(0, n, reads)]
    for vid in ids:  # warm the page cache and dentries for these videos
        reader.read(vid)
    times = []
    for vid in ids:
        t0 = time.perf_counter()
        reader.read(vid)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    listed = len(reader.video_ids())
    t_list = time.perf_counter() - t0
    return {
        "videos": n,
        "import_s": t_import,
        "open_s": t_open,
        "open_read_s": t_open_read,
        "files_opened_by_open_and_first_read": len(opened),
        "metadata_files_opened": sum(p.endswith("zarr.json") for p in opened),
        "rss_start_mb": rss_start,
        "rss_after_import_mb": rss_import,
        "rss_after_open_read_mb": rss_open,
        "per_sample_ms_median": float(np.median(times)) * 1e3,
        "per_sample_ms_mean": float(np.mean(times)) * 1e3,
        "reads": reads,
        "list_ids_s": t_list,
        "listed": listed,
        "rss_after_list_mb": _rss_mb(),
    }


def compare_reads(stores: dict[int, str], reads: int, block: int = 25) -> dict[int, dict[str, Any]]:
    """Per-sample read time of every store measured in one process, in alternating blocks of ``block`` reads
    of random videos, so that drifting machine load hits every store alike (warm cache, after a warm-up pass)."""
    from herostore.read import open_reader

    rng = np.random.default_rng(1)
    readers = {n: open_reader(path) for n, path in stores.items()}
    plans = {n: [scale_id(int(i)) for i in rng.integers(0, n, reads)] for n in stores}
    for n, ids in plans.items():
        for vid in ids:
            readers[n].read(vid)
    times: dict[int, list[float]] = {n: [] for n in stores}
    for start in range(0, reads, block):
        for n, ids in plans.items():
            for vid in ids[start:start + block]:
                t0 = time.perf_counter()
                readers[n].read(vid)
                times[n].append(time.perf_counter() - t0)
    return {n: {"per_sample_ms_median": float(np.median(t)) * 1e3, "per_sample_ms_mean": float(np.mean(t)) * 1e3,
                "reads": len(t)} for n, t in times.items()}


def _run_module(*args: str) -> Any:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-m", "benchmarks.scale", *args],
                         capture_output=True, text=True, cwd=REPO, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _probe_once(path: Path, n: int, reads: int) -> dict[str, Any]:
    return _run_module(str(path), str(n), str(reads))


def run_probes(stores: dict[int, Path], reads: int, rounds: int) -> dict[int, dict[str, Any]]:
    """``probe`` of every store in fresh interpreters, ``rounds`` times, the sizes alternating so that a noisy
    moment hits them alike. Times are the best over rounds; the first round's open + read is kept too (the one
    with the coldest dentry cache)."""
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in stores}
    for _ in range(rounds):
        for n, path in stores.items():
            runs[n].append(_probe_once(path, n, reads))
    compared = _run_module("--compare", str(reads * rounds), *(f"{n}={path}" for n, path in stores.items()))
    out = {}
    for n, rs in runs.items():
        best = dict(rs[0])
        for key in ("open_read_s", "open_s", "list_ids_s", "import_s"):
            best[key] = min(r[key] for r in rs)
        best["open_read_s_first_run"] = rs[0]["open_read_s"]
        best["per_sample_ms_median_fresh_processes"] = [r["per_sample_ms_median"] for r in rs]
        best.update(compared[str(n)])  # the per-sample times measured side by side in one process
        best["rounds"] = rounds
        out[n] = best
    return out


def project(small: dict[str, Any], large: dict[str, Any], target: int) -> dict[str, float]:
    """Linear extrapolation through the two measured sizes (constant costs stay constant)."""
    n1, n2 = small["videos"], large["videos"]
    out = {}
    for key in ("open_read_s", "per_sample_ms_median", "rss_after_open_read_mb", "list_ids_s", "rss_after_list_mb"):
        slope = (large[key] - small[key]) / (n2 - n1)
        out[key] = large[key] + max(slope, 0.0) * (target - n2)
    # a lookup in an ext4 directory index (htree) grows with log(n), not n
    slope = (large["per_sample_ms_median"] - small["per_sample_ms_median"]) / np.log(n2 / n1)
    out["per_sample_ms_median_log_model"] = large["per_sample_ms_median"] + max(slope, 0.0) * np.log(target / n2)
    return out


if __name__ == "__main__":
    if sys.argv[1] == "--compare":  # --compare READS N=PATH N=PATH ...
        pairs = dict(arg.split("=", 1) for arg in sys.argv[3:])
        print(json.dumps(compare_reads({int(n): p for n, p in pairs.items()}, int(sys.argv[2]))))
    else:
        print(json.dumps(probe(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
