"""Packed datasets in the benchmark: the format, and what only a packed dataset needs measured.

- ``PackedFormat``: the default preset's store packed with ``herostore pack``, read with ``open_reader`` like a
  store (its read paths, cold/warm/DataLoader rows and bytes come from ``run.py`` with every other format);
- ``inodes_per_video``: files and folders a format needs per video;
- ``remote_requests``: requests and bytes per sample from an fsspec filesystem (``memory://``, every call counted
  by a wrapper) for the packed dataset, the directory store and the ``.npy`` folder, and what that projects to on
  a real object store;
- ``pack_throughput``: MB/s of stored bytes packed from a warm page cache, in one process and on 2 dask workers;
- ``scale``: open a packed dataset of many small videos and read one sample in a fresh process (time, RSS), and
  the per-sample time of a large and a small packed dataset side by side;
- ``targets`` and ``section``: the targets of the packed format and the part of results.md about it.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from herostore.presets import get_preset

from . import scale as bscale
from .formats import Format

PACKED_KEY = "hs-float16-packed"
SCALE_SIZES = {"quick": (20, 200), "full": (1_000, 100_000)}


class PackedFormat(Format):
    """A store of ``source`` (a herostore format written before this one) packed into one dataset."""

    family = "herostore packed"

    def __init__(self, root: Path, source: Format, shard_size: int | None = None):
        self.source = source
        self.preset = get_preset(source.preset.name)
        self.key = f"{source.key}-packed"
        self.shard_size = shard_size
        super().__init__(root)
        self.dataset_root = self.path
        self.path = self.path / "features"
        self.precision = source.precision
        self.compressor = f"{source.compressor}; zip shards (stored), one range per video"

    def write(self, videos):
        from herostore.pack import DEFAULT_SHARD_SIZE, pack

        for _ in videos:  # the source format holds these videos already
            pass
        report = pack(self.source.path, self.dataset_root, shard_size=self.shard_size or DEFAULT_SHARD_SIZE,
                      workers=1, progress=False)
        if not report.ok:
            raise RuntimeError(report.summary("shards"))

    def expected(self, array):
        return self.preset.prepare(array)[0]


def inodes_per_video(path: Path, videos: int) -> float:
    """Files and folders under ``path`` (itself included), per video."""
    count = 1 + sum(len(dirs) + len(files) for _, dirs, files in os.walk(path))
    return count / videos


# -- object storage: requests per sample --------------------------------------------------------------------------


@contextlib.contextmanager
def counted_requests() -> Iterator[list[int]]:
    """Count the requests made through fsspec's memory filesystem: each outermost call is one, a ``cat`` of n
    paths is n (what an object store would receive), calls made inside another are not counted again."""
    from fsspec.implementations.memory import MemoryFileSystem

    counter = [0]
    depth = threading.local()
    saved = {}
    for name in ("cat_file", "cat", "open", "info", "ls", "find", "exists", "isfile", "isdir"):
        real = getattr(MemoryFileSystem, name)
        saved[name] = real

        def wrapper(self, path, *args, _real=real, _name=name, **kwargs):
            outer = getattr(depth, "n", 0) == 0
            if outer:
                counter[0] += len(path) if _name == "cat" and isinstance(path, list) else 1
            depth.n = getattr(depth, "n", 0) + 1
            try:
                return _real(self, path, *args, **kwargs)
            finally:
                depth.n -= 1

        setattr(MemoryFileSystem, name, wrapper)
    try:
        yield counter
    finally:
        for name, real in saved.items():
            setattr(MemoryFileSystem, name, real)


def remote_requests(npy: Path, store: Path, packed: Path, ids: Sequence[str]) -> dict[str, Any]:
    """Requests and bytes per sample (all modalities) from ``memory://`` for the three layouts."""
    import fsspec

    from herostore.read import open_reader
    from herostore.schema import ARRAY_KEYS

    fs = fsspec.filesystem("memory")
    prefix = "/herostore-bench"
    for name, folder in (("npy", npy), ("store", store), ("packed", packed)):
        fs.put(str(folder), f"{prefix}/{name}", recursive=True)
    out: dict[str, Any] = {}
    try:
        readers = {"packed": open_reader(f"memory://{prefix}/packed"),  # opened (and listed) before counting
                   "directory": open_reader(f"memory://{prefix}/store")}
        for name, reader in readers.items():
            reader.video_ids()  # opening a packed dataset reads its index on first use
            with counted_requests() as counter:
                fetched = sum(sum(a.nbytes for a in reader.read(vid, ARRAY_KEYS).arrays.values()) for vid in ids)
            stored = (sum(fs.size(p) for p in fs.find(f"{prefix}/store")) if name == "directory" else
                      sum(fs.size(p) for p in fs.find(f"{prefix}/packed") if p.endswith(".zip")))
            out[name] = {"requests_per_sample": counter[0] / len(ids), "bytes_per_sample": stored / len(ids),
                         "array_bytes_per_sample": fetched / len(ids),
                         "how": "ZarrReader over the URL (open_reader), reader opened before counting"}
        with counted_requests() as counter:
            for vid in ids:
                np.load(io.BytesIO(fs.cat_file(f"{prefix}/npy/{vid}.npy")), allow_pickle=True).item()
        out["npy"] = {"requests_per_sample": counter[0] / len(ids),
                      "bytes_per_sample": sum(fs.size(f"{prefix}/npy/{vid}.npy") for vid in ids) / len(ids),
                      "how": "one GET of the whole object, then np.load (one request by construction)"}
    finally:
        fs.rm(prefix, recursive=True)
    out["projection"] = project(out)
    return out


def project(measured: dict[str, Any], bandwidth: float = 100e6, rate: float = 1000.0) -> dict[str, Any]:
    """Seconds per sample on an object store with a first-byte latency and one connection's bandwidth, and the
    concurrent requests (workers x connections) it takes to deliver ``rate`` samples/s.

    Packed and ``.npy``: one request per sample. Directory store: the video's document first, then its chunk
    objects concurrently (``RemoteDirectory`` fetches them together), so two latencies and the bytes over the
    connections in parallel (counted here as one connection's bandwidth: an upper bound on the time).
    """
    out = {}
    for latency in (0.020, 0.050):
        row = {}
        for name, m in measured.items():
            rounds = 1 if name in ("packed", "npy") else 2
            seconds = rounds * latency + m["bytes_per_sample"] / bandwidth
            row[name] = {"seconds_per_sample": seconds, "concurrent_requests_for_rate": rate * seconds}
        out[f"{int(latency * 1000)}ms"] = row
    return {"bandwidth_bytes_per_s": bandwidth, "rate": rate, "latencies": out}


# -- cold reads in shuffled order ------------------------------------------------------------------------------


def cold_shuffled(paths: Sequence[Any], ids: Sequence[str], repeats: int, read_pass: Any) -> dict[str, Any]:
    """Cold reads of all modalities with the videos in a shuffled order (a new order every round, the same for
    every read path), as a training epoch reads them; ``run.py``'s cold pass reads them in id order, which is
    also the order of a packed dataset's shards and of the HDF5 file, so the disk's readahead helps those two."""
    from herostore.schema import ARRAY_KEYS

    rng = np.random.default_rng(11)
    seconds: dict[str, list[float]] = {p.name: [] for p in paths}
    for _ in range(repeats):
        order = [ids[i] for i in rng.permutation(len(ids))]
        for p in paths:
            seconds[p.name].append(read_pass(p, order, ARRAY_KEYS, True)[0])
    return {name: {"seconds": s, "samples_per_s": len(ids) / min(s),
                   "median_samples_per_s": len(ids) / float(np.median(s))} for name, s in seconds.items()}


def cold_fetch(packed: Path, npy: Path, ids: Sequence[str], rounds: int, evict: Any) -> dict[str, Any]:
    """Raw cold reads in a shuffled order, nothing decoded: each video's range of the shard fetched four ways (one
    read; ``POSIX_FADV_WILLNEED`` then one read; sequential 1 MiB reads; sequential 256 KiB reads, what the reader
    does), and each ``.npy`` file read whole in 256 KiB pieces. Samples/s, best of ``rounds`` (a new order each)."""
    from herostore.locations.packed import PackedDataset

    dataset = PackedDataset(packed)
    ranges = {vid: dataset.index().find(vid) for vid in ids}
    buffer = memoryview(bytearray(max(length for _, _, length in ranges.values())))

    def pieces(fd: int, offset: int, length: int, step: int) -> None:
        for at in range(0, length, step):
            os.preadv(fd, [buffer[at : min(at + step, length)]], offset + at)

    def announced(fd: int, offset: int, length: int) -> None:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
        os.preadv(fd, [buffer[:length]], offset)

    ways = {"one read": lambda fd, o, n: os.preadv(fd, [buffer[:n]], o), "announced, one read": announced,
            "1 MiB pieces": lambda fd, o, n: pieces(fd, o, n, 1 << 20),
            "256 KiB pieces": lambda fd, o, n: pieces(fd, o, n, 256 << 10)}
    shards = [packed / name for name, _ in dataset.manifest.shards]
    files = {vid: npy / f"{vid}.npy" for vid in ids}
    rng = np.random.default_rng(12)
    rates: dict[str, list[float]] = {name: [] for name in [*ways, "npy files, 256 KiB pieces"]}
    for _ in range(rounds):
        order = [ids[i] for i in rng.permutation(len(ids))]
        for name, way in ways.items():
            evict(shards)
            fds = [os.open(shard, os.O_RDONLY) for shard in shards]
            start = time.perf_counter()
            for vid in order:
                shard, offset, length = ranges[vid]
                way(fds[shard], offset, length)
            rates[name].append(len(ids) / (time.perf_counter() - start))
            for fd in fds:
                os.close(fd)
        evict(list(files.values()))
        start = time.perf_counter()
        for vid in order:
            fd = os.open(files[vid], os.O_RDONLY)
            while os.readv(fd, [buffer[: 256 << 10]]):
                pass
            os.close(fd)
        rates["npy files, 256 KiB pieces"].append(len(ids) / (time.perf_counter() - start))
    return {name: {"samples_per_s": max(r), "median_samples_per_s": float(np.median(r))} for name, r in rates.items()}


# -- warm reads, packed vs directory store ------------------------------------------------------------------------


def warm_pair(store: Path, packed: Path, ids: Sequence[str], rounds: int) -> dict[str, Any]:
    """Warm reads of all modalities, the directory store and the packed dataset in alternating passes (a noisy
    moment hits both alike): ``kept``, readers open for the whole run (a training loop); ``fresh``, a reader
    opened (not timed) for every pass. Samples/s best of ``rounds``, the median, and the median of the
    per-round ratios packed / directory."""
    from herostore.read import open_reader
    from herostore.schema import ARRAY_KEYS

    paths = {"directory": store, "packed": packed}
    kept = {name: open_reader(path) for name, path in paths.items()}

    def one_pass(reader) -> float:
        start = time.perf_counter()
        for vid in ids:
            reader.read(vid, ARRAY_KEYS)
        return len(ids) / (time.perf_counter() - start)

    for reader in kept.values():
        one_pass(reader)
    rates: dict[str, dict[str, list[float]]] = {name: {"kept": [], "fresh": []} for name in paths}
    for _ in range(rounds):
        for name, path in paths.items():
            rates[name]["kept"].append(one_pass(kept[name]))
            rates[name]["fresh"].append(one_pass(open_reader(path)))
    out: dict[str, Any] = {"rounds": rounds}
    for mode in ("kept", "fresh"):
        d, p = rates["directory"][mode], rates["packed"][mode]
        out[mode] = {"directory": {"best": max(d), "median": float(np.median(d))},
                     "packed": {"best": max(p), "median": float(np.median(p))},
                     "ratio_best": max(p) / max(d), "ratio_median_of_rounds": float(np.median(np.divide(p, d))),
                     "ratio_spread": [float(min(np.divide(p, d))), float(max(np.divide(p, d)))]}
    return out


# -- pack throughput ---------------------------------------------------------------------------------------------


def pack_throughput(store: Path, workdir: Path, repeats: int, dask: bool, shard_size: int | None = None
                    ) -> dict[str, Any]:
    """MB/s of stored bytes packed (source files in the page cache, output fsynced), best of ``repeats``.

    ``inline``: one process; ``dask-2``: 2 worker processes of a dask cluster started beforehand (the steady state
    of a long run); ``dask-2-end-to-end``: ``workers=2`` as the command runs it, cluster start-up included.
    """
    from herostore.pack import pack

    stored = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    shard_size = shard_size or max(1, stored // 5)  # several shards, so that 2 workers share them
    for p in store.rglob("*"):  # warm: every source byte in the page cache
        if p.is_file():
            p.read_bytes()
    runs: dict[str, list[float]] = {"inline": []}
    cluster = client = None
    if dask:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        client = Client(cluster)
        runs.update({"dask-2": [], "dask-2-end-to-end": []})
    target = workdir / "pack-throughput"
    options = {"inline": {"workers": 1}, "dask-2": {"scheduler": cluster.scheduler_address if cluster else None},
               "dask-2-end-to-end": {"workers": 2}}
    try:
        for _ in range(repeats):
            for mode, seconds in runs.items():
                shutil.rmtree(target, ignore_errors=True)
                start = time.perf_counter()
                report = pack(store, target, shard_size=shard_size, progress=False, **options[mode])
                seconds.append(time.perf_counter() - start)
                if not report.ok:
                    raise RuntimeError(report.summary("shards"))
    finally:
        shutil.rmtree(target, ignore_errors=True)
        if client is not None:
            client.close()
            cluster.close()
    shards = -(-stored // shard_size)
    return {"stored_bytes": stored, "shard_size": shard_size, "shards_about": shards,
            **{mode: {"seconds": t, "best_mb_per_s": stored / min(t) / 1e6,
                      "spread_mb_per_s": [stored / max(t) / 1e6, stored / min(t) / 1e6]} for mode, t in runs.items()}}


# -- scale -------------------------------------------------------------------------------------------------------


def ensure_packed(cache: Path, n: int) -> tuple[Path, float]:
    """A packed dataset of ``n`` small videos (``scale.build`` clones, then ``pack``), kept in the cache."""
    from herostore.pack import pack

    packed = cache / f"packed-scale-{n}"
    marker = packed.with_name(packed.name + ".complete")
    source = cache / f"packed-scale-source-{n}"
    if marker.is_file() and (packed / "features").is_dir():
        if source.exists():  # a removal cut short
            subprocess.run(["rm", "-rf", str(source)], check=True)
        return packed / "features", 0.0
    for old in (packed, source):
        if old.exists():
            subprocess.run(["rm", "-rf", str(old)], check=True)
    start = time.perf_counter()
    bscale.build(source, n)
    if not pack(source, packed, workers=1, progress=False).ok:
        raise RuntimeError(f"packing the {n}-video scale store failed")
    seconds = time.perf_counter() - start
    marker.write_text(f"{n} small videos, packed by benchmarks.packed\n")
    subprocess.run(["rm", "-rf", str(source)], check=True)  # millions of inodes: not kept
    return packed / "features", seconds


def scale(cache: Path, mode: str, reads: int) -> dict[str, Any]:
    sizes = SCALE_SIZES[mode]
    built = {n: ensure_packed(cache, n) for n in sizes}
    probes = bscale.run_probes({n: path for n, (path, _) in built.items()}, reads, rounds=5 if mode == "full" else 1)
    return {str(n): {"build_s": built[n][1], **{k: v for k, v in probes[n].items()
                                                 if not k.startswith(("files_opened", "metadata_files"))}}
            for n in sizes}


# -- targets and report ------------------------------------------------------------------------------------------


def _ratio(r: dict[str, Any], path: str, workload: str, base: str) -> float:
    t = r["timings"]
    return t[path][workload]["samples_per_s"] / t[base][workload]["samples_per_s"]


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    p = r["packed"]
    fast = f"{PACKED_KEY} fast"
    small, large = (p["scale"][str(n)] for n in SCALE_SIZES[r["mode"]])
    rows = [
        ("cold, all modalities: packed default vs .npy", _ratio(r, fast, "cold_all", "npy"), ">=", 2.0, "trained"),
        ("cold, all modalities: packed default vs HDF5 float16", _ratio(r, fast, "cold_all", "hdf5-float16"), ">=",
         1.0, "trained"),
        ("cold, all modalities, shuffled order: packed default vs .npy",
         p["cold_shuffled"][fast]["samples_per_s"] / p["cold_shuffled"]["npy"]["samples_per_s"], ">=", 2.0,
         "trained"),
        ("cold, all modalities, shuffled order: packed default vs HDF5 float16",
         p["cold_shuffled"][fast]["samples_per_s"] / p["cold_shuffled"]["hdf5-float16"]["samples_per_s"], ">=", 1.0,
         "trained"),
        ("warm, all modalities: packed vs directory store (alternating passes, readers kept)",
         p["warm_pair"]["kept"]["ratio_best"], ">=", 1.0, "trained"),
        ("requests per sample from object storage, packed", p["requests"]["packed"]["requests_per_sample"], "<=",
         1.0, "trained"),
        (f"open a {large['videos']}-video packed dataset + read one sample, seconds", large["open_read_s_first_run"],
         "<=", 1.0, "small"),
        (f"open a {large['videos']}-video packed dataset + read one sample, RSS MB", large["rss_after_open_read_mb"],
         "<=", 300, "small"),
        (f"per-sample read time, packed {large['videos']} vs {small['videos']} videos",
         large["per_sample_ms_median"] / small["per_sample_ms_median"], "<=", 1.2, "small"),
    ]
    if "dask-2" in p["throughput"]:
        rows.append(("pack throughput, warm, 2 dask workers, MB/s of stored bytes",
                     p["throughput"]["dask-2"]["best_mb_per_s"], ">=", 500, "trained"))
    return [{"target": name, "value": value, "op": op, "limit": limit, "data": data, "note": "",
             "met": bool(value <= limit if op == "<=" else value >= limit)} for name, value, op, limit, data in rows]


def section(r: dict[str, Any]) -> list[str]:
    p = r["packed"]
    t = r["timings"]
    fast = f"{PACKED_KEY} fast"
    lines = ["", "## Packed dataset (`herostore pack`, default preset)", "",
             ("Side by side in the runs above (trained data): the packed dataset, the directory store it was packed "
             "from, the `.npy` folder and contiguous HDF5 float16; cold reads also in a shuffled order, the same for "
             "every read path, new each round (best of the rounds, and the median)."), "",
             ("| read path | warm all /s | cold all, id order /s | x .npy | cold all, shuffled /s (median) | x .npy "
             "| DataLoader /s | inodes per video |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    shuffled = p["cold_shuffled"]
    for name, key in (("npy", "npy"), ("hs-float16 fast", "hs-float16"), ("hdf5-float16", "hdf5-float16"),
                      (fast, PACKED_KEY)):
        row = t[name]
        lines.append(f"| {name} | {row['warm_all']['samples_per_s']:,.0f} | {row['cold_all']['samples_per_s']:,.0f} "
                     f"| {_ratio(r, name, 'cold_all', 'npy'):.2f}x | {shuffled[name]['samples_per_s']:,.0f} "
                     f"({shuffled[name]['median_samples_per_s']:,.0f}) | "
                     f"{shuffled[name]['samples_per_s'] / shuffled['npy']['samples_per_s']:.2f}x | "
                     f"{row.get('dataloader', {}).get('samples_per_s', float('nan')):,.0f} | "
                     f"{p['inodes_per_video'][key]:.3f} |")
    lines += ["", ("Cold, shuffled, raw reads (nothing decoded) of each video's range of the shard, and of each `.npy` "
              "file, samples/s best (median):"), "", "| how | samples/s |", "|---|---:|"]
    for name, m in p["cold_fetch"].items():
        lines.append(f"| {name} | {m['samples_per_s']:,.0f} ({m['median_samples_per_s']:,.0f}) |")
    w = p["warm_pair"]
    lines += ["", (f"Warm, all modalities, the directory store and the packed dataset in alternating passes "
              f"({w['rounds']} rounds; samples/s best / median; packed ÷ directory: best ÷ best, median of the "
              "per-round ratios [lowest, highest]):"), "",
              "| readers | directory | packed | ratio best | ratio median [spread] |", "|---|---:|---:|---:|---:|"]
    for mode, label in (("kept", "kept open (a training loop)"), ("fresh", "opened for every pass")):
        m = w[mode]
        lo, hi = m["ratio_spread"]
        lines.append(f"| {label} | {m['directory']['best']:,.0f} / {m['directory']['median']:,.0f} | "
                     f"{m['packed']['best']:,.0f} / {m['packed']['median']:,.0f} | {m['ratio_best']:.2f}x | "
                     f"{m['ratio_median_of_rounds']:.2f}x [{lo:.2f}, {hi:.2f}] |")
    lines += ["", "Requests and bytes per sample (all modalities) from `memory://`, every fsspec call counted:", "",
              "| layout | requests/sample | stored bytes/sample | how |", "|---|---:|---:|---|"]
    for name in ("packed", "directory", "npy"):
        m = p["requests"][name]
        lines.append(f"| {name} | {m['requests_per_sample']:.2f} | {m['bytes_per_sample'] / 1e6:.2f} MB | {m['how']} |")
    pj = p["requests"]["projection"]
    lines += ["", (f"Projection to an object store ({pj['bandwidth_bytes_per_s'] / 1e6:.0f} MB/s per connection): "
              f"seconds per sample and concurrent requests needed for {pj['rate']:,.0f} samples/s:"), "",
              "| first-byte latency | " + " | ".join(pj["latencies"]["20ms"]) + " |",
              "|---|" + "---:|" * len(pj["latencies"]["20ms"])]
    for latency, row in pj["latencies"].items():
        lines.append(f"| {latency} | " + " | ".join(f"{v['seconds_per_sample'] * 1000:.0f} ms, "
                                                    f"{v['concurrent_requests_for_rate']:.0f}" for v in row.values())
                     + " |")
    th = p["throughput"]
    lines += ["", (f"`pack` throughput, warm, {th['stored_bytes'] / 1e6:.0f} MB of stored bytes, shards of "
              f"{th['shard_size'] / 1e6:.0f} MB (best, [worst, best] MB/s):"), ""]
    for mode in ("inline", "dask-2", "dask-2-end-to-end"):
        if mode in th:
            lo, hi = th[mode]["spread_mb_per_s"]
            lines.append(f"- {mode}: {th[mode]['best_mb_per_s']:,.0f} MB/s [{lo:,.0f}, {hi:,.0f}]")
    lines += ["", "Scale (small videos, a fresh process per probe; per-sample median side by side in one process):",
              "", "| videos | open + first read s | RSS after open+read MB | per-sample ms | list all ids s |",
              "|---:|---:|---:|---:|---:|"]
    for n, v in p["scale"].items():
        lines.append(f"| {int(n):,} | {v['open_read_s_first_run']:.4f} | {v['rss_after_open_read_mb']:.0f} | "
                     f"{v['per_sample_ms_median']:.3f} | {v['list_ids_s']:.3f} |")
    return lines
