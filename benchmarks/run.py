"""herostore benchmarks: the spec's ``.npy`` folder vs herostore presets vs HDF5, LMDB and safetensors.

    python -m benchmarks.run --quick                 # smoke run (tiny arrays, seconds)
    python -m benchmarks.run --full                  # the numbers (a few minutes on 2 cores)
    python -m benchmarks.run --full --out benchmarks/results --workdir /tmp/hsbench

Writes ``results.md`` (tables, targets), ``results.png`` (plot) and ``results.json`` (every measurement) into
``--out``. Method: see ``docs/benchmarks.md``. Every ratio says which data it was measured on: ``trained``
(MiniLM activations) or ``random`` (standard normal).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import data as bdata
from . import packed as bpacked
from . import scale as bscale
from .formats import AUDIO_TEXT, Format, ReadPath, make_formats, make_read_paths, own

EMOTIONS = ["neutral", "angry", "happy", "sad", "worried", "surprise"]


@dataclass
class Config:
    mode: str
    videos: int  # trained-network data, every workload
    random_videos: int  # random data, bytes on disk only
    pool_tokens: int
    shapes: bdata.Shapes
    warm_repeats: int
    cold_repeats: int
    dl_epochs: int
    batch_size: int
    workers: int
    scale_sizes: tuple[int, int]
    scale_reads: int
    verify_every: int  # check every n-th video of every read path against the source

    @classmethod
    def quick(cls) -> Config:
        return cls("quick", 6, 3, 512, bdata.QUICK_SHAPES, 1, 1, 1, 2, 2, (20, 100), 10, 1)

    @classmethod
    def full(cls) -> Config:
        return cls("full", 48, 8, 8192, bdata.FULL_SHAPES, 3, 3, 2, 8, 2, (1000, 20000), 300, 4)


# -- measuring -------------------------------------------------------------------------


def evict(files: Sequence[Path]) -> None:
    """Drop the files' pages from the page cache (``posix_fadvise(DONTNEED)`` after ``sync``)."""
    os.sync()
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def disk_bytes(files: Sequence[Path]) -> dict[str, int]:
    stats = [os.stat(f) for f in files]
    return {"apparent": sum(s.st_size for s in stats), "allocated": sum(s.st_blocks * 512 for s in stats),
            "files": len(stats)}


def read_pass(path: ReadPath, ids: Sequence[str], modalities: Sequence[str], cold: bool) -> tuple[float, int]:
    """Seconds to read every video (reader opened before the clock starts) and the bytes returned."""
    if cold:
        evict(path.fmt.files())
    reader = path.open()
    try:
        total = 0
        start = time.perf_counter()
        for vid in ids:
            arrays, _transcript = reader.read(vid, modalities)
            total += own(arrays)
        return time.perf_counter() - start, total
    finally:
        reader.close()


def raw_read(files: Sequence[Path]) -> float:
    """Seconds to read every byte of the files after evicting them: the cold limit.

    Read in 1 MiB pieces, as a buffered reader does: on the measuring machine one read of a whole multi-MB
    file was up to 2x slower cold than pieces (the kernel pipelines its readahead between pieces).
    """
    evict(files)
    buf = memoryview(bytearray(1 << 20))
    start = time.perf_counter()
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            while os.readv(fd, [buf]):
                pass
        finally:
            os.close(fd)
    return time.perf_counter() - start


PACKED = "default preset's chunk bytes, one file per video (not a store)"


def pack_per_video(store: Path, out: Path) -> list[Path]:
    """The chunk files of every video of ``store`` concatenated into one file per video, written in order.

    Not a format anyone reads: it measures what the cold limit would be if a video's bytes lay in one file.
    """
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for video in sorted(p for p in store.iterdir() if p.is_dir() and not p.name.startswith(".")):
        target = out / video.name
        chunks = sorted(c for c in video.rglob("*") if c.is_file() and c.name != "zarr.json")
        with open(target, "wb") as f:
            f.writelines(chunk.read_bytes() for chunk in chunks)
        files.append(target)
    os.sync()
    return files


def loader_epochs(path: ReadPath, ann: Path, modalities: Sequence[str], cfg: Config) -> list[float]:
    """Seconds per epoch of a DataLoader (``workers`` processes, herostore's padding ``collate``), after a warm-up."""
    from torch.utils.data import DataLoader

    from herostore.dataset import collate

    dataset = path.dataset(ann, EMOTIONS, modalities)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=cfg.workers, collate_fn=collate,
                        persistent_workers=True, timeout=300)
    times = []
    try:
        for epoch in range(1 + cfg.dl_epochs):
            start = time.perf_counter()
            n = 0
            for batch in loader:
                n += len(batch["label"])
            if n != len(dataset):
                raise RuntimeError(f"{path.name}: DataLoader gave {n} samples, expected {len(dataset)}")
            if epoch:
                times.append(time.perf_counter() - start)
    finally:
        del loader
    return times


def verify(path: ReadPath, ids: Sequence[str], sources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Read back videos and compare with the source: exactly equal to the stored precision of the source."""
    reader = path.open()
    worst_abs, worst_rel, problems = 0.0, 0.0, []
    try:
        for vid in ids:
            src = sources[vid]
            arrays, transcript = reader.read(vid, tuple(k for k in src if k != "transcript"))
            expected_keys = {k for k in src if k != "transcript"}
            if set(arrays) != expected_keys:
                problems.append(f"{vid}: keys {sorted(arrays)} != {sorted(expected_keys)}")
            if transcript != src["transcript"]:
                problems.append(f"{vid}: transcript differs")
            for key, got in arrays.items():
                want = path.fmt.expected(src[key])
                if got.shape != want.shape or got.dtype != want.dtype or not np.array_equal(got, want):
                    problems.append(f"{vid}/{key}: {got.dtype}{list(got.shape)} differs from the source stored as "
                                    f"{want.dtype}{list(want.shape)}")
                    continue
                diff = np.abs(got.astype(np.float64) - src[key])
                worst_abs = max(worst_abs, float(diff.max()))
                big = np.abs(src[key]) >= 1e-3
                if big.any():
                    worst_rel = max(worst_rel, float((diff[big] / np.abs(src[key][big])).max()))
    finally:
        reader.close()
    return {"ok": not problems, "checked": len(ids), "max_abs_err": worst_abs, "max_rel_err": worst_rel,
            "problems": problems[:5]}


def best(times: Sequence[float]) -> float:
    return min(times)


def codec_table(pool: np.ndarray, cfg: Config) -> list[dict[str, Any]]:
    """Size and decode speed of candidate codecs on float16 trained-network data (video_mae-like, 512-row chunks).

    Decoded into a reused buffer, so this is the codec alone: no file reads, no allocation.
    """
    from numcodecs import Blosc, blosc

    rng = np.random.default_rng(1)
    rows = 4 * (cfg.shapes.video_mae if isinstance(cfg.shapes.video_mae, int) else cfg.shapes.video_mae[1])
    source = bdata._from_pool(pool, "video_mae", rows, rng)
    half = source.astype(np.float16)
    chunks = [half[i:i + 512] for i in range(0, len(half), 512)]
    codecs = [("lz4", 5, "bitshuffle"), ("lz4", 5, "shuffle"), ("zstd", 1, "bitshuffle"), ("zstd", 3, "bitshuffle"),
              ("zstd", 1, "shuffle"), ("zstd", 9, "shuffle")]
    shuffles = {"shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}
    out = []
    previous = blosc.get_nthreads()
    try:
        for cname, clevel, shuffle in codecs:
            codec = Blosc(cname, clevel, shuffles[shuffle])
            encoded = [codec.encode(c) for c in chunks]
            row = {"codec": f"float16, blosc {cname}-{clevel} {shuffle}",
                   "bytes_vs_fp32": sum(len(e) for e in encoded) / source.nbytes}
            buf = np.empty_like(chunks[0])
            for threads in (1, 2):
                blosc.set_nthreads(threads)
                best_s = float("inf")
                for _ in range(5 if cfg.mode == "full" else 1):
                    start = time.perf_counter()
                    for e, c in zip(encoded, chunks):
                        codec.decode(e, out=buf[: len(c)] if len(c) == len(buf) else None)
                    best_s = min(best_s, time.perf_counter() - start)
                row[f"decode_gb_per_s_{threads}t"] = half.nbytes / best_s / 1e9
            out.append(row)
    finally:
        blosc.set_nthreads(previous)
    start = time.perf_counter()
    for _ in range(5):
        np.copyto(np.empty_like(source), source)
    out.append({"codec": "float32 memcpy into a new array (what np.load does per array)", "bytes_vs_fp32": 1.0,
                "decode_gb_per_s_1t": 5 * source.nbytes / (time.perf_counter() - start) / 1e9})
    return out


# -- the run ---------------------------------------------------------------------------


def machine(workdir: Path) -> dict[str, Any]:
    import h5py
    import lmdb
    import numcodecs
    import psutil
    import safetensors
    import torch
    import zarr

    import herostore

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    best_mount = max((p for p in psutil.disk_partitions(all=True) if str(workdir.resolve()).startswith(p.mountpoint)),
                     key=lambda p: len(p.mountpoint), default=None)
    import hdf5plugin

    plugin = hdf5plugin.version
    return {
        "cpus": bdata.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "disk": {"device": best_mount.device if best_mount else "?", "fstype": best_mount.fstype if best_mount else "?",
                 "size_gib": round(psutil.disk_usage(str(workdir)).total / 2**30)},
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {"herostore": herostore.__version__, "numpy": np.__version__, "zarr": zarr.__version__,
                     "numcodecs": numcodecs.__version__, "h5py": h5py.__version__,
                     "hdf5": h5py.version.hdf5_version, "hdf5plugin": plugin, "lmdb": ".".join(map(str, lmdb.version())),
                     "safetensors": safetensors.__version__, "torch": torch.__version__},
        "blosc_threads": numcodecs.blosc.get_nthreads() if hasattr(numcodecs.blosc, "get_nthreads") else None,
        "load_avg_start": os.getloadavg(),
    }


def write_formats(formats: Sequence[Format], kind: str, cfg: Config, n: int, pool) -> dict[str, float]:
    times = {}
    for fmt in formats:
        start = time.perf_counter()
        fmt.write(bdata.videos(n, kind, cfg.shapes, pool))
        times[fmt.key] = time.perf_counter() - start
        log(f"  wrote {fmt.key:18s} {kind} in {times[fmt.key]:.1f} s")
    return times


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(cfg: Config, workdir: Path) -> dict[str, Any]:
    from herostore.presets import DEFAULT_PRESET
    from herostore.schema import ARRAY_KEYS

    t_run = time.perf_counter()
    results: dict[str, Any] = {"mode": cfg.mode, "config": {**asdict(cfg), "shapes": asdict(cfg.shapes)},
                               "machine": machine(workdir), "default_preset": DEFAULT_PRESET}
    log(f"[{cfg.mode}] MiniLM activations for {cfg.pool_tokens} tokens")
    start = time.perf_counter()
    pool = bdata.minilm_pool(cfg.pool_tokens, cache_dir=workdir / "cache")
    results["pool"] = {"tokens": cfg.pool_tokens, "seconds": time.perf_counter() - start,
                       "max_abs": float(np.abs(pool).max()), "std_per_layer": pool.std(axis=(1, 2)).tolist()}

    results["codecs"] = codec_table(pool, cfg)

    # bytes on disk, random data (written, measured, removed)
    rnd = workdir / "random"
    rnd_formats = make_formats(rnd, candidates=True)
    log(f"[{cfg.mode}] writing {cfg.random_videos} videos of random data")
    write_formats(rnd_formats, "random", cfg, cfg.random_videos, None)
    rnd_raw = sum(bdata.nbytes(f) for _, f in bdata.videos(cfg.random_videos, "random", cfg.shapes, None))
    results["random"] = {"videos": cfg.random_videos, "source_bytes": rnd_raw,
                         "bytes": {f.key: disk_bytes(f.files()) for f in rnd_formats}}
    shutil.rmtree(rnd)

    # trained-network data: every format
    root = workdir / "trained"
    formats = make_formats(root, candidates=True)
    log(f"[{cfg.mode}] writing {cfg.videos} videos of trained-network data")
    write_times = write_formats(formats, "trained", cfg, cfg.videos, pool)
    ids = [bdata.video_id(i) for i in range(cfg.videos)]
    sources = {vid: feats for vid, feats in bdata.videos(cfg.videos, "trained", cfg.shapes, pool)}
    source_bytes = sum(bdata.nbytes(f) for f in sources.values())
    results["trained"] = {"videos": cfg.videos, "source_bytes": source_bytes, "write_s": write_times,
                          "bytes": {f.key: disk_bytes(f.files()) for f in formats},
                          "formats": {f.key: {"family": f.family, "precision": f.precision,
                                              "compressor": f.compressor,
                                              "candidate": getattr(f, "candidate", False)} for f in formats}}
    ann = workdir / "labels.json"
    ann.write_text(json.dumps([{"video_id": vid, "emotion": EMOTIONS[i % len(EMOTIONS)]}
                               for i, vid in enumerate(ids)]))

    paths = make_read_paths(formats)
    results["read_paths"] = {p.name: {"format": p.fmt.key, "how": p.how, "limit": p.limit} for p in paths}

    log(f"[{cfg.mode}] verifying every reader against the source")
    checked = ids[:: cfg.verify_every]
    results["verify"] = {p.name: verify(p, checked, sources) for p in paths}
    bad = {k: v["problems"] for k, v in results["verify"].items() if not v["ok"]}
    if bad:
        raise RuntimeError(f"readers returned data different from the source: {bad}")
    del sources

    workloads = {"warm_all": (ARRAY_KEYS, False), "warm_audio_text": (AUDIO_TEXT, False),
                 "cold_all": (ARRAY_KEYS, True)}
    timings: dict[str, dict[str, Any]] = {p.name: {} for p in paths}
    for workload, (mods, cold) in workloads.items():
        log(f"[{cfg.mode}] {workload}")
        runs = [p for p in paths if not (cold and p.limit)]
        if not cold:
            for p in runs:  # one warm-up pass each, not timed
                read_pass(p, ids, mods, cold=False)
        repeats = cfg.cold_repeats if cold else cfg.warm_repeats
        measured: dict[str, list[float]] = {p.name: [] for p in runs}
        nbytes: dict[str, int] = {}
        for _ in range(repeats):  # interleaved, so that a noisy moment hits every reader alike
            for p in runs:
                seconds, nbytes[p.name] = read_pass(p, ids, mods, cold)
                measured[p.name].append(seconds)
        for p in runs:
            t = best(measured[p.name])
            timings[p.name][workload] = {"seconds": measured[p.name], "best_s": t, "samples_per_s": len(ids) / t,
                                         "decoded_mb_per_s": nbytes[p.name] / t / 1e6, "decoded_bytes": nbytes[p.name]}

    log(f"[{cfg.mode}] cold raw read of every format's files")
    results["raw_read_cold"] = {}
    for fmt in formats:
        files = fmt.files()
        seconds = [raw_read(files) for _ in range(cfg.cold_repeats)]
        t = best(seconds)
        results["raw_read_cold"][fmt.key] = {"seconds": seconds, "best_s": t, "samples_per_s": len(ids) / t,
                                             "disk_mb_per_s": disk_bytes(files)["apparent"] / t / 1e6}
    default = next(f for f in formats if f.key == f"hs-{DEFAULT_PRESET}")
    packed = pack_per_video(default.path, root / PACKED)
    seconds = [raw_read(packed) for _ in range(cfg.cold_repeats)]
    t = best(seconds)
    results["raw_read_cold"][PACKED] = {"seconds": seconds, "best_s": t, "samples_per_s": len(ids) / t,
                                        "disk_mb_per_s": disk_bytes(packed)["apparent"] / t / 1e6, "reader": None}

    log(f"[{cfg.mode}] DataLoader, {cfg.workers} workers, collate")
    for p in paths:
        if p.limit or p.name.endswith(" zarr"):
            continue
        epochs = loader_epochs(p, ann, ARRAY_KEYS, cfg)
        t = best(epochs)
        per_sample_bytes = timings[p.name]["warm_all"]["decoded_bytes"]
        timings[p.name]["dataloader"] = {"seconds": epochs, "best_s": t, "samples_per_s": len(ids) / t,
                                         "decoded_mb_per_s": per_sample_bytes / t / 1e6}
    results["timings"] = timings

    log(f"[{cfg.mode}] packed dataset: inodes, requests per sample from memory://, pack throughput")
    keys = {"npy", f"hs-{DEFAULT_PRESET}", bpacked.PACKED_KEY, "hdf5-float16"}
    by_key = {f.key: f for f in formats}
    results["packed"] = {
        "inodes_per_video": {k: bpacked.inodes_per_video(by_key[k].path, cfg.videos) for k in keys},
        "requests": bpacked.remote_requests(by_key["npy"].path, by_key[f"hs-{DEFAULT_PRESET}"].path,
                                            by_key[bpacked.PACKED_KEY].path, ids),
        "cold_shuffled": bpacked.cold_shuffled([p for p in paths if p.name in ("npy", f"hs-{DEFAULT_PRESET} fast",
                                                                             "hdf5-float16", f"{bpacked.PACKED_KEY} fast")],
                                               ids, 2 * cfg.cold_repeats - 1, read_pass),
        "cold_fetch": bpacked.cold_fetch(by_key[bpacked.PACKED_KEY].path, by_key["npy"].path, ids,
                                         2 * cfg.cold_repeats - 1, evict),
        "warm_pair": bpacked.warm_pair(by_key[f"hs-{DEFAULT_PRESET}"].path, by_key[bpacked.PACKED_KEY].path, ids,
                                       rounds=5 * cfg.warm_repeats),
        "throughput": bpacked.pack_throughput(by_key[f"hs-{DEFAULT_PRESET}"].path, root, 2 * cfg.warm_repeats - 1,
                                              dask=cfg.mode == "full"),
    }
    shutil.rmtree(root)

    log(f"[{cfg.mode}] scale: stores of {cfg.scale_sizes} videos")
    stores = {n: workdir / "cache" / f"scale-{DEFAULT_PRESET}-{n}" for n in cfg.scale_sizes}
    build_s = {n: bscale.ensure(path, n) for n, path in stores.items()}
    probes = bscale.run_probes(stores, cfg.scale_reads, rounds=5 if cfg.mode == "full" else 1)
    results["scale"] = {str(n): {"build_s": build_s[n], **probes[n]} for n in cfg.scale_sizes}
    small, large = (results["scale"][str(n)] for n in cfg.scale_sizes)
    results["scale_projection_1M"] = bscale.project(small, large, 1_000_000)
    log(f"[{cfg.mode}] scale: packed datasets of {bpacked.SCALE_SIZES[cfg.mode]} videos")
    results["packed"]["scale"] = bpacked.scale(workdir / "cache", cfg.mode, cfg.scale_reads)

    results["machine"]["load_avg_end"] = os.getloadavg()
    results["seconds"] = time.perf_counter() - t_run
    results["targets"] = targets(results)
    return results


# -- targets and reports -----------------------------------------------------------------------


def _ratio(results, path: str, workload: str, base: str = "npy") -> float:
    t = results["timings"]
    return t[path][workload]["samples_per_s"] / t[base][workload]["samples_per_s"]


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    d = r["default_preset"]
    hs = f"hs-{d}"
    b = r["trained"]["bytes"]
    out = []

    def add(name: str, value: float, op: str, limit: float, data: str, note: str = ""):
        met = value <= limit if op == "<=" else value >= limit
        out.append({"target": name, "value": value, "op": op, "limit": limit, "met": bool(met), "data": data,
                    "note": note})

    npy_bytes = b["npy"]["apparent"]
    add(f"default preset ({d}) bytes vs .npy", b[hs]["apparent"] / npy_bytes, "<=", 0.50, "trained")
    exact = r["verify"]["hs-lossless fast"]["ok"] and r["verify"]["hs-lossless fast"]["max_abs_err"] == 0
    add("lossless bytes vs .npy (bit-exact: %s)" % ("yes" if exact else "NO"),
        b["hs-lossless"]["apparent"] / npy_bytes if exact else float("inf"), "<=", 0.90, "trained")
    add("warm, all modalities, 1 process: default vs .npy", _ratio(r, f"{hs} fast", "warm_all"), ">=", 1.0, "trained")
    add("warm, audio+text: default vs .npy", _ratio(r, f"{hs} fast", "warm_audio_text"), ">=", 5.0, "trained")
    add("cold, all modalities: default vs .npy", _ratio(r, f"{hs} fast", "cold_all"), ">=", 1.8, "trained")
    add("DataLoader, 2 workers, collate: default vs .npy", _ratio(r, f"{hs} fast", "dataloader"), ">=", 1.0, "trained")
    add(f"fast path vs decode limit ({d}, warm)", _ratio(r, f"{hs} fast", "warm_all", f"{hs} limit"), ">=", 0.8,
        "trained")
    for preset, peer in (("lossless", "hdf5-lossless"), ("float16", "hdf5-float16"),
                         ("lossless", "lmdb-lossless"), ("float16", "lmdb-float16")):
        for workload in ("warm_all", "cold_all"):
            add(f"hs-{preset} vs {peer}, {workload.replace('_all', '')}",
                _ratio(r, f"hs-{preset} fast", workload, peer), ">=", 1.0, "trained")
    large = r["scale"][str(r["config"]["scale_sizes"][1])]
    small = r["scale"][str(r["config"]["scale_sizes"][0])]
    n = large["videos"]
    add(f"open a {n}-video store + read one sample, seconds", large["open_read_s_first_run"], "<=", 1.0, "small")
    add(f"open a {n}-video store + read one sample, RSS MB", large["rss_after_open_read_mb"], "<=", 200, "small")
    add(f"per-sample read time, {n} vs {small['videos']} videos",
        large["per_sample_ms_median"] / small["per_sample_ms_median"], "<=", 1.2, "small")
    return out + bpacked.targets(r)


def _mb(x: float) -> str:
    return f"{x / 1e6:,.1f}"


def _x(x: float) -> str:
    return f"{x:.2f}x"


def markdown(r: dict[str, Any], command: str) -> str:
    m = r["machine"]
    cfg = r["config"]
    tr, rn = r["trained"], r["random"]
    lines = [
        f"# herostore benchmark results ({r['mode']} run)",
        "",
        f"Command: `{command}`  ",
        (f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM, disk {m['disk']['device']} "
        f"({m['disk']['fstype']}, {m['disk']['size_gib']} GiB), Linux {m['kernel']}; "
        f"load average at start {m['load_avg_start'][0]:.2f}, at end {m['load_avg_end'][0]:.2f}  "),
        "Versions: Python " + m["python"] + ", " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + "  ",
        f"Run time: {r['seconds']:.0f} s. Default preset: `{r['default_preset']}`.",
        "",
        f"Data: **trained** = {tr['videos']} videos of MiniLM activations ({_mb(tr['source_bytes'])} MB float32); "
        f"**random** = {rn['videos']} videos of standard normal float32 ({_mb(rn['source_bytes'])} MB), used for "
        "bytes on disk only. Shapes: " + ", ".join(f"{k} {v}" for k, v in cfg["shapes"].items() if k != "au_every")
        + f" (au in every {cfg['shapes']['au_every']}. video).",
        "",
        "## Bytes on disk",
        "",
        "Apparent bytes (sum of `st_size` of every file, metadata included); allocated = `st_blocks * 512`.",
        "",
        ("| format | precision | compressor | trained MB | x .npy (trained) | allocated x .npy (trained) "
        "| random MB | x .npy (random) | files |"),
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    nb, rb = tr["bytes"]["npy"], rn["bytes"]["npy"]
    for key, info in tr["formats"].items():
        b, q = tr["bytes"][key], rn["bytes"][key]
        lines.append(f"| {key}{' (candidate)' if info.get('candidate') else ''} | {info['precision']} | {info['compressor']} | {_mb(b['apparent'])} | "
                     f"{_x(b['apparent'] / nb['apparent'])} | {_x(b['allocated'] / nb['allocated'])} | "
                     f"{_mb(q['apparent'])} | {_x(q['apparent'] / rb['apparent'])} | {b['files']} |")
    reps = f"best of {cfg['warm_repeats']} (warm) / {cfg['cold_repeats']} (cold) / {cfg['dl_epochs']} (DataLoader)"
    lines += [
        "",
        f"## Reading (trained data, {tr['videos']} videos, {reps})",
        "",
        ("samples/s, with the ratio to the `.npy` baseline of the same run; MB/s = bytes of the arrays returned "
        "(float16 presets return float16). `limit` rows are the measured limits, not readers."),
        "",
        ("| read path | warm all: samples/s | x npy | MB/s | warm audio+text: samples/s | x npy "
        "| cold all: samples/s | x npy | MB/s | DataLoader: samples/s | x npy |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    t = r["timings"]

    def cell(path, w, key="samples_per_s"):
        return f"{t[path][w][key]:,.0f}" if w in t[path] else "–"

    def rcell(path, w):
        return _x(_ratio(r, path, w)) if w in t[path] else "–"

    for p in t:
        lines.append(f"| {p} | {cell(p, 'warm_all')} | {rcell(p, 'warm_all')} | "
                     f"{cell(p, 'warm_all', 'decoded_mb_per_s')} | {cell(p, 'warm_audio_text')} | "
                     f"{rcell(p, 'warm_audio_text')} | {cell(p, 'cold_all')} | {rcell(p, 'cold_all')} | "
                     f"{cell(p, 'cold_all', 'decoded_mb_per_s')} | {cell(p, 'dataloader')} | "
                     f"{rcell(p, 'dataloader')} |")
    lines += [
        "",
        "## Cold limit: reading the stored bytes only (files evicted first)",
        "",
        "| format | samples/s | disk MB/s | herostore/peer reader cold ÷ this |",
        "|---|---:|---:|---:|",
    ]
    for key, v in r["raw_read_cold"].items():
        reader = f"{key} fast" if key.startswith("hs-") else key
        frac = f"{t[reader]['cold_all']['samples_per_s'] / v['samples_per_s']:.2f}" if reader in t else "–"
        lines.append(f"| {key} | {v['samples_per_s']:,.0f} | {v['disk_mb_per_s']:,.0f} | {frac} |")
    lines += [
        "",
        "## Codec alone (float16 trained data, video_mae-like, 512-row chunks, decoded into a reused buffer)",
        "",
        "| codec | bytes ÷ float32 | decode GB/s (float16 out), 1 thread | 2 threads | = float32 GB/s, best |",
        "|---|---:|---:|---:|---:|",
    ]
    for c in r["codecs"]:
        one, two = c["decode_gb_per_s_1t"], c.get("decode_gb_per_s_2t")
        fp32 = max(one, two or 0) * (1 if c["bytes_vs_fp32"] == 1.0 else 2)
        lines.append(f"| {c['codec']} | {c['bytes_vs_fp32']:.3f} | {one:.2f} | "
                     f"{'–' if two is None else f'{two:.2f}'} | {fp32:.2f} |")
    s = r["scale"]
    lines += [
        "",
        "## Scale (small videos, default preset, a fresh process per probe)",
        "",
        ("| videos | import s | open + first read s | files opened | RSS after open+read MB | per-sample ms "
        "| list all ids s | RSS after listing MB |"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, v in s.items():
        lines.append(f"| {int(n):,} | {v['import_s']:.3f} | {v['open_read_s_first_run']:.4f} | "
                     f"{v['files_opened_by_open_and_first_read']} | {v['rss_after_open_read_mb']:.0f} | "
                     f"{v['per_sample_ms_median']:.3f} | {v['list_ids_s']:.3f} | {v['rss_after_list_mb']:.0f} |")
    pj = r["scale_projection_1M"]
    lines.append(f"| 1,000,000 (projected) | – | {pj['open_read_s']:.4f} | – | {pj['rss_after_open_read_mb']:.0f} | "
                 f"{pj['per_sample_ms_median']:.3f} (linear), {pj['per_sample_ms_median_log_model']:.3f} (log n) | "
                 f"{pj['list_ids_s']:.2f} | {pj['rss_after_list_mb']:.0f} |")
    lines += ["", "Per-sample times: the median of reads of random videos of both stores measured side by side in "
              "one process, alternating blocks of 25 reads (warm). The medians of each fresh probe process, for "
              "comparison: " + "; ".join(f"{int(n):,}: " + ", ".join(
                  f"{x:.3f}" for x in v["per_sample_ms_median_fresh_processes"]) for n, v in s.items())
              + " ms. Projection: linear through the two sizes (a negative slope counts as flat); per-sample also "
              "with a log(n) model (directory index lookups)."]
    lines += bpacked.section(r)
    lines += ["", "## Targets", "", "| target | data | value | target | met |", "|---|---|---:|---:|---|"]
    for g in r["targets"]:
        lines.append(f"| {g['target']} | {g['data']} | {g['value']:.3g} | {g['op']} {g['limit']:g} | "
                     f"{'met' if g['met'] else '**not met**'} |")
    v = r["verify"]
    lines += ["", "## Read-back check", "",
              ("Every read path returned, for every checked video, exactly the source at its stored precision. "
              "Largest error vs the float32 source:"), "",
              "| read path | videos checked | max abs err | max rel err (|x| >= 1e-3) |", "|---|---:|---:|---:|"]
    for name, c in v.items():
        lines.append(f"| {name} | {c['checked']} | {c['max_abs_err']:.3g} | {c['max_rel_err']:.3g} |")
    return "\n".join(lines) + "\n"


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(15, 6.5), gridspec_kw={"width_ratios": [1, 2]})
    tr, rn = r["trained"]["bytes"], r["random"]["bytes"]
    keys = list(tr)
    y = np.arange(len(keys))
    ax = axes[0]
    ax.barh(y - 0.2, [tr[k]["apparent"] / tr["npy"]["apparent"] for k in keys], 0.4, label="trained (MiniLM)")
    ax.barh(y + 0.2, [rn[k]["apparent"] / rn["npy"]["apparent"] for k in keys], 0.4, label="random normal")
    ax.set_yticks(y, keys)
    ax.invert_yaxis()
    ax.axvline(1, color="k", lw=0.8)
    ax.set_xlabel("bytes on disk ÷ .npy folder")
    ax.set_title("Size")
    ax.legend(loc="lower right")

    ax = axes[1]
    t = r["timings"]
    names = [p for p in t if not p.endswith(" limit")]
    workloads = [("warm_all", "warm, all"), ("warm_audio_text", "warm, audio+text"), ("cold_all", "cold, all"),
                 ("dataloader", "DataLoader 2 workers")]
    y = np.arange(len(names))
    h = 0.8 / len(workloads)
    for i, (w, label) in enumerate(workloads):
        vals = [_ratio(r, p, w) if w in t[p] else np.nan for p in names]
        ax.barh(y - 0.4 + h * (i + 0.5), vals, h, label=label)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1, color="k", lw=0.8)
    ax.set_xlabel("samples/s ÷ .npy baseline (log scale; trained data)")
    ax.set_title(f"Read speed, {r['trained']['videos']} videos, {r['machine']['cpus']} CPUs")
    ax.legend(loc="lower right")
    fig.suptitle(f"herostore benchmarks ({r['mode']} run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true", help="smoke run: tiny arrays, one pass each")
    mode.add_argument("--full", action="store_true", help="the numbers: spec-sized arrays, repeated passes")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results",
                        help="where results.md/.png/.json go (default benchmarks/results)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="scratch folder for the data (default: a temporary folder, removed after)")
    parser.add_argument("--videos", type=int, default=None, help="override the number of trained-data videos")
    args = parser.parse_args(argv)
    cfg = Config.quick() if args.quick else Config.full()
    if args.videos:
        cfg.videos = args.videos
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
    tmp = None
    if args.workdir is None:
        tmp = tempfile.mkdtemp(prefix="herostore-bench-")
        workdir = Path(tmp)
    else:
        workdir = args.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        for sub in ("trained", "random"):
            shutil.rmtree(workdir / sub, ignore_errors=True)
    try:
        results = run(cfg, workdir)
    finally:
        if tmp:  # rm is several times faster than shutil.rmtree on the 20k-video scale store
            subprocess.run(["rm", "-rf", tmp], check=False)
    args.out.mkdir(parents=True, exist_ok=True)
    results["command"] = command
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    (args.out / "results.md").write_text(markdown(results, command))
    plot(results, args.out / "results.png")
    log(f"[{cfg.mode}] done in {results['seconds']:.0f} s; results in {args.out}")
    for line in bdata.target_lines(results["targets"]):
        log(line)
    return results


if __name__ == "__main__":
    main()
