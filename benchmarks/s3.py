"""Training from object storage: samples/s from a local S3 server, requests and bytes per sample, and a projection
to a real object store.

    python -m benchmarks.s3 --quick     # smoke run: tiny arrays, random data, one epoch (seconds)
    python -m benchmarks.s3 --full      # the numbers: spec-sized arrays of trained-network data (a few minutes)

Every format is written to one bucket of the local S3 server (``herostore.testing.s3``: moto's, on 127.0.0.1) and
read back through ``HeroDataset(s3://...)`` in a ``DataLoader`` (2 workers, herostore's ``collate``); epochs of the
formats are interleaved, best of N after a warm-up epoch. The server's request log gives requests and bytes per
sample. Writes ``s3.md`` and ``s3.json`` into ``--out``. Method and reading of the numbers: docs/benchmarks.md.

Formats are entries of ``FORMATS``: the spec's ``.npy`` folder, the default-preset directory store (also read by
zarr-python) and the same store packed (``herostore pack``: zip shards and an index, one ranged GET per sample),
in shards of the default size and in 16 MB shards: the local server builds a whole object for every ranged GET
(``server_baseline`` measures what that costs), which a real object store does not, so small shards show the
packed reads without that cost.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from . import data as bdata

EMOTIONS = ["neutral", "angry", "happy", "sad", "worried", "surprise"]
LATENCIES_MS = (20.0, 50.0)  # first-byte latency of a real object store (same region)
CONNECTION_MB_S = 100.0  # throughput of one connection to it
TARGET_SAMPLES_S = 1000.0  # what one GPU eats


@dataclass
class Config:
    mode: str
    videos: int
    kind: str  # "trained" or "random" (benchmarks.data)
    shapes: bdata.Shapes
    pool_tokens: int
    epochs: int
    batch_size: int
    workers: int

    @classmethod
    def quick(cls) -> Config:
        return cls("quick", 6, "random", bdata.QUICK_SHAPES, 0, 1, 2, 2)

    @classmethod
    def full(cls) -> Config:
        return cls("full", 48, "trained", bdata.FULL_SHAPES, 8192, 7, 8, 2)


@dataclass(frozen=True)
class S3Format:
    """A feature format on object storage: how it is put there from the local ``.npy`` dataset, and its reads."""

    key: str
    label: str
    phases: int  # rounds of requests a sample waits for, one after the other (0: every request is a round)
    put: Callable[[Path, str, dict[str, Any]], None] | None  # (local npy dataset root, root URL, options)
    local: Callable[[Path, Path], Path]  # (local npy dataset root, workdir) -> a local dataset root, same format
    fast: bool = True  # herostore's reader, or zarr-python (the reference)
    reuse: str | None = None  # read the data another format put (``put`` is then None)


def _put_files(root: Path, url: str, options: dict[str, Any]) -> None:
    """Upload every file of a local dataset root as is."""
    from herostore import urls

    for path in sorted(root.rglob("*")):
        if path.is_file():
            urls.write_bytes(f"{url}/{path.relative_to(root).as_posix()}", path.read_bytes(), options)


def _put_store(npy_root: Path, url: str, options: dict[str, Any]) -> None:
    from herostore.convert import import_npy

    report = import_npy(npy_root, url, workers=1, progress=False, storage_options=options)
    if not report.ok:
        raise RuntimeError(f"import to {url} failed: {report.summary()}")


def _local_store(npy_root: Path, workdir: Path) -> Path:
    from herostore.convert import import_npy

    root = workdir / "store-local"
    import_npy(npy_root, root, workers=1, progress=False)  # resumes: a second call finds every video there
    return root


def _local_packed(npy_root: Path, workdir: Path, shard_size: int | None = None) -> Path:
    from herostore.pack import DEFAULT_SHARD_SIZE, pack

    root = workdir / f"packed-local-{shard_size or 'default'}"
    if not (root / "features").exists():
        report = pack(_local_store(npy_root, workdir), root, shard_size=shard_size or DEFAULT_SHARD_SIZE, workers=1,
                      progress=False)
        if not report.ok:
            raise RuntimeError(f"pack to {root} failed: {report.summary()}")
    return root


def _put_packed(npy_root: Path, url: str, options: dict[str, Any], shard_size: int | None = None) -> None:
    _put_files(_local_packed(npy_root, npy_root.parent, shard_size), url, options)


SMALL_SHARDS = 16_000_000


FORMATS = [
    S3Format("npy", "`.npy` folder (baseline)", 1, _put_files, lambda npy_root, _: npy_root),
    S3Format("store", "directory store, default preset", 2, _put_store, _local_store),
    S3Format("zarr", "directory store, read by zarr-python", 0, None, _local_store, fast=False, reuse="store"),
    S3Format("packed", "packed dataset, default preset, default shards (2 GB)", 1, _put_packed, _local_packed),
    S3Format("packed-16m", "packed dataset, default preset, 16 MB shards", 1,
             partial(_put_packed, shard_size=SMALL_SHARDS), partial(_local_packed, shard_size=SMALL_SHARDS)),
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def write_npy_dataset(cfg: Config, root: Path, workdir: Path) -> dict[str, Any]:
    """The spec dataset all formats are made from; returns its sources' facts."""
    from herostore import npyfile

    pool = bdata.minilm_pool(cfg.pool_tokens, cache_dir=workdir / "cache") if cfg.kind == "trained" else None
    (root / "features").mkdir(parents=True, exist_ok=True)
    labels, total = [], 0
    for i, (vid, features) in enumerate(bdata.videos(cfg.videos, cfg.kind, cfg.shapes, pool)):
        npyfile.save_features(root / "features" / f"{vid}.npy", features)
        labels.append({"video_id": vid, "emotion": EMOTIONS[i % len(EMOTIONS)]})
        total += bdata.nbytes(features)
    (root / "labels.json").write_text(json.dumps(labels), "utf-8")
    (root / "classes.json").write_text(json.dumps(EMOTIONS), "utf-8")
    return {"videos": cfg.videos, "float32_mb": total / 1e6}


def server_baseline(server: Any, bucket: str) -> dict[str, float]:
    """The local server's own cost: round trip of a 1 KB GET, throughput of one 32 MB GET (one connection), and a
    4 MB ranged GET of a 32 MB object against a whole 4 MB object (the server builds the whole object for a range)."""
    fs = server.filesystem()
    fs.pipe({f"{bucket}/probe/small": b"x" * 1024, f"{bucket}/probe/large": os.urandom(32 * 2**20),
             f"{bucket}/probe/medium": os.urandom(4 * 2**20)})
    ranged, whole = [], []
    for _ in range(5):
        start = time.perf_counter()
        fs.cat_file(f"{bucket}/probe/large", start=0, end=4 * 2**20)
        ranged.append(time.perf_counter() - start)
        start = time.perf_counter()
        fs.cat_file(f"{bucket}/probe/medium")
        whole.append(time.perf_counter() - start)
    small = []
    for _ in range(30):
        start = time.perf_counter()
        fs.cat_file(f"{bucket}/probe/small", max_concurrency=1)
        small.append(time.perf_counter() - start)
    large = []
    for _ in range(3):
        start = time.perf_counter()
        fs.cat_file(f"{bucket}/probe/large", max_concurrency=1)
        large.append(time.perf_counter() - start)
    fs.rm([f"{bucket}/probe/small", f"{bucket}/probe/large", f"{bucket}/probe/medium"])
    return {"get_1kb_ms_median": 1000 * float(np.median(small)), "get_32mb_mb_s_best": 32 * 2**20 / 1e6 / min(large),
            "range_4mb_of_32mb_ms_best": 1000 * min(ranged), "get_4mb_ms_best": 1000 * min(whole)}


def requests_per_sample(server: Any, url: str, ids: Sequence[str], options: dict[str, Any], fast: bool,
                        phases: int) -> dict[str, float]:
    """GETs and bytes the server sends per sample (all modalities), averaged over ``ids``; other requests counted.

    ``critical_mb`` is what a sample waits to receive when every request has its own connection: the largest
    response of each round (``phases`` 1: the one GET; 2: the first GET, then the largest of the rest sent
    together; 0: every GET in turn).
    """
    from herostore.read import open_reader

    reader = open_reader(f"{url}/features", storage_options=options, fast=fast)
    reader.video_ids()  # opening: a packed dataset's index is read here once, not per sample
    requests, other, sent, critical = [], 0, [], []
    for vid in ids:
        server.reset_log()
        reader.read(vid)
        sizes = [r.bytes_out for r in server.log() if r.method == "GET"]
        other += sum(r.method != "GET" for r in server.log())
        requests.append(len(sizes))
        sent.append(sum(sizes))
        critical.append(max(sizes) if phases == 1 else sizes[0] + max(sizes[1:], default=0) if phases == 2
                        else sum(sizes))
    return {"requests": float(np.mean(requests)), "requests_max": int(max(requests)), "other_requests": other,
            "mb": float(np.mean(sent)) / 1e6, "critical_mb": float(np.mean(critical)) / 1e6}


def cpu_per_sample(root: Path, repeats: int, fast: bool) -> float:
    """Seconds per sample of ``HeroDataset`` over a local copy, in one process, warm: decoding and copies."""
    from herostore.dataset import HeroDataset

    dataset = HeroDataset(root / "features", root / "labels.json", classes=EMOTIONS, fast=fast)
    times = []
    for _ in range(1 + repeats):
        start = time.perf_counter()
        for i in range(len(dataset)):
            dataset[i]
        times.append((time.perf_counter() - start) / len(dataset))
    return min(times[1:])


def loader_epochs(cfg: Config, urls_by_format: dict[str, str], options: dict[str, Any]) -> dict[str, list[float]]:
    """Seconds per epoch of each format's DataLoader, epochs interleaved across formats, after a warm-up epoch."""
    from torch.utils.data import DataLoader

    from herostore.dataset import HeroDataset, collate

    loaders = {}
    fast = {fmt.key: fmt.fast for fmt in FORMATS}
    for key, url in urls_by_format.items():
        dataset = HeroDataset(f"{url}/features", f"{url}/labels.json", classes=EMOTIONS, storage_options=options,
                              fast=fast[key])
        loaders[key] = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=cfg.workers, collate_fn=collate,
                                  persistent_workers=True, timeout=600)
    times: dict[str, list[float]] = {key: [] for key in loaders}
    for epoch in range(1 + cfg.epochs):
        for key, loader in loaders.items():
            start = time.perf_counter()
            n = sum(len(batch["label"]) for batch in loader)
            if n != cfg.videos:
                raise RuntimeError(f"{key}: the DataLoader gave {n} samples, expected {cfg.videos}")
            if epoch:
                times[key].append(time.perf_counter() - start)
    del loaders
    return times


def verify(urls_by_format: dict[str, str], local_roots: dict[str, Path], ids: Sequence[str],
           options: dict[str, Any]) -> None:
    """Every format read from the bucket equals the same format read from its local copy, bit for bit."""
    from herostore.read import open_reader

    for key, url in urls_by_format.items():
        remote, here = open_reader(f"{url}/features", storage_options=options), open_reader(local_roots[key] / "features")
        for vid in ids:
            a, b = remote.read(vid), here.read(vid)
            if a.arrays.keys() != b.arrays.keys() or not all(np.array_equal(a.arrays[k], b.arrays[k])
                                                             for k in a.arrays):
                raise RuntimeError(f"{key}: video {vid!r} read from the bucket differs from the local copy")


def project(requests: float, phases: float, mb: float, critical_mb: float, cpu_s: float) -> list[dict[str, float]]:
    """A real object store: ``phases`` round trips of first-byte latency, the critical bytes (a round's objects
    travel in parallel, one connection each) at ``CONNECTION_MB_S``, plus the measured CPU time per sample.
    A DataLoader worker has one sample in flight, so it delivers ``1 / t`` samples/s."""
    out = []
    for latency_ms in LATENCIES_MS:
        t = phases * latency_ms / 1e3 + critical_mb / CONNECTION_MB_S + cpu_s
        out.append({"latency_ms": latency_ms, "sample_ms": 1e3 * t, "per_worker_samples_s": 1 / t,
                    "workers_for_target": math.ceil(TARGET_SAMPLES_S * t),
                    "cores_for_target": TARGET_SAMPLES_S * cpu_s,
                    "gets_per_s_at_target": TARGET_SAMPLES_S * requests,
                    "mb_s_at_target": TARGET_SAMPLES_S * mb})
    return out


def run(cfg: Config, workdir: Path, server: Any | None = None) -> dict[str, Any]:
    """Write every format to a bucket, measure, project; ``server`` is a started ``LocalS3Server`` or None."""
    from herostore.presets import DEFAULT_PRESET
    from herostore.testing.s3 import LocalS3Server

    start_run = time.perf_counter()
    own = server is None
    if own:
        server = LocalS3Server().start()
    try:
        bucket = server.create_bucket()
        options = server.storage_options()
        results: dict[str, Any] = {"mode": cfg.mode, "config": {**asdict(cfg), "shapes": asdict(cfg.shapes)},
                                   "default_preset": DEFAULT_PRESET, "machine": _machine(),
                                   "model": {"latencies_ms": LATENCIES_MS, "connection_mb_s": CONNECTION_MB_S,
                                             "target_samples_s": TARGET_SAMPLES_S}}
        log(f"[{cfg.mode}] {cfg.videos} videos of {cfg.kind} data")
        npy_root = workdir / "npy"
        results["data"] = write_npy_dataset(cfg, npy_root, workdir)
        results["server"] = server_baseline(server, bucket)
        ids = [bdata.video_id(i) for i in range(cfg.videos)]
        urls_by_format, local_roots, formats = {}, {}, {}
        for fmt in FORMATS:
            url = f"s3://{bucket}/{fmt.reuse or fmt.key}"
            start = time.perf_counter()
            if fmt.put is not None:
                fmt.put(npy_root, url, options)
            put_s = time.perf_counter() - start
            urls_by_format[fmt.key] = url
            local_roots[fmt.key] = local_roots[fmt.reuse] if fmt.reuse else fmt.local(npy_root, workdir)
            per_sample = requests_per_sample(server, url, ids, options, fmt.fast, fmt.phases)
            cpu_s = cpu_per_sample(local_roots[fmt.key], repeats=2 if cfg.mode == "full" else 1, fast=fmt.fast)
            phases = fmt.phases or per_sample["requests"]
            formats[fmt.key] = {"label": fmt.label, "phases": phases, "put_s": put_s, **per_sample,
                                "cpu_ms_per_sample": 1e3 * cpu_s,
                                "projection": project(per_sample["requests"], phases, per_sample["mb"],
                                                      per_sample["critical_mb"], cpu_s)}
            log(f"  {fmt.key}: put in {put_s:.1f} s, {per_sample['requests']:.2f} GETs and "
                f"{per_sample['mb']:.2f} MB per sample, {1e3 * cpu_s:.2f} ms CPU per sample")
        verify(urls_by_format, local_roots, ids, options)
        log(f"  DataLoader({cfg.workers} workers, batch {cfg.batch_size}): {cfg.epochs} epochs each, interleaved")
        for key, times in loader_epochs(cfg, urls_by_format, options).items():
            best = min(times)
            formats[key].update(epochs_s=times, samples_s=cfg.videos / best,
                                spread=(max(times) - best) / best if len(times) > 1 else 0.0)
            log(f"  {key}: {formats[key]['samples_s']:.1f} samples/s (spread {formats[key]['spread']:.0%})")
        base = formats["npy"]
        for entry in formats.values():
            entry["vs_npy"] = entry["samples_s"] / base["samples_s"]
            # epochs of the formats alternate, so epoch i of each ran under about the same load
            entry["vs_npy_paired"] = float(np.median(np.divide(base["epochs_s"], entry["epochs_s"])))
        results["formats"] = formats
        results["seconds"] = time.perf_counter() - start_run
        results["machine"]["load_avg_end"] = os.getloadavg()
        server.remove_bucket(bucket)
        return results
    finally:
        if own:
            server.stop()


def _machine() -> dict[str, Any]:
    import fsspec
    import s3fs
    import torch

    import herostore

    return {"cpus": bdata.cpu_count(), "python": platform.python_version(), "load_avg_start": os.getloadavg(),
            "versions": {"herostore": herostore.__version__, "fsspec": fsspec.__version__, "s3fs": s3fs.__version__,
                         "torch": torch.__version__}}


def markdown(r: dict[str, Any], command: str) -> str:
    f = r["formats"]
    c, d = r["config"], r["data"]
    setup = (f"`{command}`: {d['videos']} videos of {c['kind']} data ({d['float32_mb']:.0f} MB as float32), local S3 "
             f"server on 127.0.0.1 (1 KB GET {r['server']['get_1kb_ms_median']:.1f} ms, one connection "
             f"{r['server']['get_32mb_mb_s_best']:.0f} MB/s; 4 MB ranged out of a 32 MB object "
             f"{r['server']['range_4mb_of_32mb_ms_best']:.1f} ms, a whole 4 MB object "
             f"{r['server']['get_4mb_ms_best']:.1f} ms), DataLoader({c['workers']} workers, batch "
             f"{c['batch_size']}), best of {c['epochs']} interleaved epochs after a warm-up (spread: (slowest - "
             f"best) / best; paired median: the median over epochs of the ratio to the `.npy` epoch run beside it); "
             f"{r['machine']['cpus']} CPUs shared with the server (load average "
             f"{r['machine']['load_avg_start'][0]:.1f} at the start, {r['machine']['load_avg_end'][0]:.1f} at the end).")
    header = ("| format | GETs / sample | request rounds | MB / sample | CPU ms / sample | samples/s | vs `.npy` "
              "| spread | vs `.npy`, paired median |")
    lines = [f"# Training from object storage ({r['mode']} run)", "", setup, "", header,
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for e in f.values():
        lines.append(f"| {e['label']} | {e['requests']:.2f} | {e['phases']:.3g} | {e['mb']:.2f} | "
                     f"{e['cpu_ms_per_sample']:.2f} | {e['samples_s']:.1f} | {e['vs_npy']:.2f}x | {e['spread']:.0%} | "
                     f"{e['vs_npy_paired']:.2f}x |")
    m = r["model"]
    latencies = " / ".join(f"{x:g}" for x in m["latencies_ms"])
    model = (f"Projection to an object store with {latencies} ms first-byte latency and {m['connection_mb_s']:g} "
             f"MB/s per connection (a round's requests in parallel), one sample in flight per worker, for "
             f"{m['target_samples_s']:g} samples/s:")
    lines += ["", model, "", "| format | latency | ms / sample | samples/s per worker | workers | CPU cores | GET/s | MB/s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for e in f.values():
        for p in e["projection"]:
            lines.append(f"| {e['label']} | {p['latency_ms']:g} ms | {p['sample_ms']:.1f} | "
                         f"{p['per_worker_samples_s']:.1f} | {p['workers_for_target']} | {p['cores_for_target']:.1f} | "
                         f"{p['gets_per_s_at_target']:.0f} | {p['mb_s_at_target']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.s3", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true", help="smoke run: tiny arrays, random data, one epoch")
    mode.add_argument("--full", action="store_true", help="the numbers: spec-sized arrays of trained-network data")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results",
                        help="where s3.md and s3.json go (default benchmarks/results)")
    parser.add_argument("--videos", type=int, default=None, help="override the number of videos")
    parser.add_argument("--epochs", type=int, default=None, help="override the number of timed epochs")
    args = parser.parse_args(argv)
    cfg = Config.quick() if args.quick else Config.full()
    cfg.videos = args.videos or cfg.videos
    cfg.epochs = args.epochs or cfg.epochs
    command = "python -m benchmarks.s3 " + " ".join(argv if argv is not None else sys.argv[1:])
    workdir = Path(tempfile.mkdtemp(prefix="herostore-s3-bench-"))
    try:
        results = run(cfg, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["command"] = command
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "s3.json").write_text(json.dumps(results, indent=1, default=float))
    (args.out / "s3.md").write_text(markdown(results, command))
    log(f"[{cfg.mode}] done in {results['seconds']:.0f} s; results in {args.out}")
    return results


if __name__ == "__main__":
    main()
