"""The loader benchmark: herostore's ``Loader`` and ``DataLoader`` paths against the copy limit and the ``.npy`` folder.

    python -m benchmarks.loader --quick          # smoke run (tiny arrays, seconds)
    python -m benchmarks.loader --full           # the numbers (spec-sized arrays, several minutes on 2 cores)

Writes ``loader.md`` and ``loader.json`` into ``--out`` (default ``benchmarks/results``). Data: the trained-network
activations of ``benchmarks/data.py`` (MiniLM hidden states), in the spec's ``.npy`` folder and the default store.
Method and the meaning of each row: ``docs/benchmarks.md``, section "Loading batches".
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import data as bdata
from .formats import AUDIO_TEXT, HerostoreFormat, NpyFolder
from .loader_report import markdown, targets

PAGE = 4096
FRESH_BYTES = 16 << 20  # what the caller allocates and frees between samples in the fresh-memory case
EMOTIONS = ["neutral", "angry", "happy", "sad", "worried", "surprise"]


@dataclass
class Config:
    mode: str
    videos: int
    pool_tokens: int
    shapes: bdata.Shapes
    rounds: int  # passes of every measurement, interleaved; best of these and their spread are reported
    epochs_per_pass: int
    batch_sizes: tuple[int, ...]
    workers: tuple[int, ...]
    memory_epochs: int

    @classmethod
    def quick(cls) -> Config:
        return cls("quick", 8, 512, bdata.QUICK_SHAPES, 1, 1, (4,), (0, 2), 3)

    @classmethod
    def full(cls) -> Config:
        return cls("full", 48, 8192, bdata.FULL_SHAPES, 5, 3, (8, 32), (0, 1, 2), 20)


# -- what every consumer does with a batch --------------------------------------------------------------------


def touch(batch: dict[str, Any]) -> int:
    """Read one byte of every page of every tensor of the batch (so the consumer maps and faults in all of it, as
    a training step would); returns the bytes delivered."""
    import torch

    total = 0
    for value in batch.values():
        if isinstance(value, torch.Tensor):
            flat = value.reshape(-1).view(torch.uint8)
            int(flat[::PAGE].sum())
            total += flat.numel()
    return total


def fresh_memory() -> None:
    """What a caller that allocates between samples can do to the heap: a 16 MB buffer allocated and freed, and the
    heap's free memory returned to the kernel (``malloc_trim``, which glibc also does by itself once enough is
    free at the top of the heap). The buffer is not written, so the caller evicts nothing from the CPU caches."""
    junk = np.empty(FRESH_BYTES, np.uint8)
    del junk
    _LIBC.malloc_trim(0)


_LIBC = ctypes.CDLL("libc.so.6")


# -- the measurements ---------------------------------------------------------------------------------------


def summary(runs: list[tuple]) -> dict[str, Any]:
    """Best samples/s and MB/s of several passes ``(seconds, samples, bytes[, cpu seconds])``, every pass's rate,
    their spread, and the least CPU time per sample (all threads and worker processes: unlike the rates, it hardly
    depends on what else runs on the machine)."""
    rates = [run[1] / run[0] for run in runs]
    s, n, b = runs[max(range(len(runs)), key=lambda i: rates[i])][:3]
    out = {"samples_per_s": n / s, "mb_per_s": b / s / 1e6, "rates": rates,
           "spread": (max(rates) - min(rates)) / max(rates), "passes": len(runs)}
    if all(len(run) > 3 for run in runs):
        out["cpu_us_per_sample"] = min(run[3] / run[1] for run in runs) * 1e6
    return out


def with_cpu(one_pass: Callable[[], tuple[float, int, int]]) -> tuple[float, int, int, float]:
    """``one_pass()`` and the CPU seconds it took in this process and its children (DataLoader workers)."""
    before = cpu_seconds()
    seconds, samples, nbytes = one_pass()
    return seconds, samples, nbytes, cpu_seconds() - before


def cpu_seconds() -> float:
    """CPU time of this process and its children, every thread, in ns resolution (``/proc/*/task/*/schedstat``)."""
    import psutil

    total = 0
    for pid in [os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))]:
        try:
            for task in os.scandir(f"/proc/{pid}/task"):
                with open(f"{task.path}/schedstat") as f:
                    total += int(f.read().split()[0])
        except OSError:  # a process or thread that just ended
            continue
    return total / 1e9


class Plans:
    """Every video's chunk files and where their rows go, parsed once (not timed): what the copy limit reads."""

    def __init__(self, store: Path, ids: Sequence[str], modalities: Sequence[str]):
        from herostore.read import ZarrReader

        reader = ZarrReader(store)
        self.files: dict[str, list[tuple[str, str, int, int]]] = {}  # vid -> (modality, path, first byte, bytes)
        self.row_shape: dict[str, tuple[int, ...]] = {}
        self.row_bytes: dict[str, int] = {}
        self.max_rows: dict[str, int] = {}
        for vid in ids:
            meta = reader.video_meta(vid)
            entries = []
            for m in modalities:
                if m not in meta.arrays:
                    continue
                plan = reader.plan(meta, m)
                if plan.encoding.codec is not None:
                    raise ValueError(f"{store}: the copy limit is for uncompressed stores, {m!r} is compressed")
                self.row_shape[m], self.row_bytes[m] = plan.shape[1:], plan.row_bytes
                self.max_rows[m] = max(self.max_rows.get(m, 1), plan.shape[0])
                for i in range(plan.n_chunks):
                    rows = min(plan.chunk_rows, plan.shape[0] - i * plan.chunk_rows)
                    entries.append((m, str(store / vid / plan.chunk_key(i)), i * plan.chunk_bytes,
                                    rows * plan.row_bytes))
            self.files[vid] = entries


def copy_limit(plans: Plans, batches: list[list[str]], threads: int, ring: int) -> Callable:
    """The Loader with nothing but the copies: the stored bytes of each batch's chunks copied from the page cache
    (``preadv``) into the rows of a ring of reused batch buffers on the loader's threads, ``ring - 1`` batches ahead,
    and handed in order to the same consumer (``touch``)."""
    size = max(len(b) for b in batches)
    buffers = [_views(size, {m: rows * plans.row_bytes[m] for m, rows in plans.max_rows.items()}) for _ in range(ring)]

    def fill(k: int) -> int:
        slot, total = buffers[k % ring], 0
        for j, vid in enumerate(batches[k]):
            for m, path, start, nbytes in plans.files[vid]:
                fd = os.open(path, os.O_RDONLY)
                try:
                    total += os.preadv(fd, [slot[m][j, start : start + nbytes]], 0)
                finally:
                    os.close(fd)
        return total

    pool = ThreadPoolExecutor(threads)

    def one_pass() -> tuple[float, int, int]:
        import torch

        start = time.perf_counter()
        pending = [pool.submit(fill, k) for k in range(min(ring - 1, len(batches)))]
        total = 0
        for k in range(len(batches)):
            total += pending[k].result()
            if k + ring - 1 < len(batches):
                pending.append(pool.submit(fill, k + ring - 1))
            touch({m: torch.from_numpy(v[: len(batches[k])]) for m, v in buffers[k % ring].items()})
        return time.perf_counter() - start, sum(map(len, batches)), total

    return one_pass


def _views(size: int, row_bytes: dict[str, int]) -> dict[str, np.ndarray]:
    """``[size, row_bytes]`` byte arrays carved from one buffer of the kind the Loader's ring uses."""
    import torch

    from herostore.loader import ring_buffer

    storage = ring_buffer(size * sum(row_bytes.values()))
    out, offset = {}, 0
    for m, n in row_bytes.items():
        out[m] = torch.empty(0, dtype=torch.uint8).set_(storage, offset, (size, n)).numpy()
        offset += size * n
    for view in out.values():
        view.fill(0)  # mapped now, not during the first pass
    return out


def npy_load_loop(folder: Path, ids: Sequence[str], modalities: Sequence[str], fresh: bool) -> Callable:
    """``np.load(allow_pickle=True).item()`` of each file, the way the spec's files are read today."""

    def one_pass() -> tuple[float, int, int]:
        seconds, total = 0.0, 0
        for vid in ids:
            if fresh:
                fresh_memory()
            start = time.perf_counter()
            d = np.load(folder / f"{vid}.npy", allow_pickle=True).item()
            total += sum(d[m].nbytes for m in modalities if m in d)
            seconds += time.perf_counter() - start
            del d
        return seconds, len(ids), total

    return one_pass


def reader_loop(store: Path, ids: Sequence[str], modalities: Sequence[str], into: bool, fresh: bool) -> Callable:
    """One thread reading one sample after another: ``read_into`` reused buffers (``into``) or ``read`` (new arrays).

    With ``fresh`` the caller allocates and frees between samples (``fresh_memory``, not timed)."""
    from herostore.read import ZarrReader

    reader = ZarrReader(store, threads=1)
    plans = Plans(store, ids, modalities)
    buffers = {m: np.zeros((plans.max_rows[m],) + plans.row_shape[m], np.float16) for m in plans.row_shape}

    def one_pass() -> tuple[float, int, int]:
        seconds, total = 0.0, 0
        for vid in ids:
            if fresh:
                fresh_memory()
            start = time.perf_counter()
            if into:
                meta = reader.video_meta(vid)
                chosen = {m: reader.plan(meta, m) for m in modalities if m in meta.arrays}
                dests = {m: buffers[m][: p.shape[0]] for m, p in chosen.items()}
                reader.read_into(vid, dests, plans=chosen)
                total += sum(d.nbytes for d in dests.values())
            else:
                record = reader.read(vid, modalities)
                total += sum(a.nbytes for a in record.arrays.values())
                del record
            seconds += time.perf_counter() - start
        return seconds, len(ids), total

    return one_pass


def build_loop(root: Path, ann: Path, modalities: Sequence[str], batch_size: int, memory: str) -> Callable:
    """One thread building every batch (``HeroDataset.batch``) into ``memory``: "ring" (two reused slots, as the
    Loader's), "fresh" (new ordinary memory per batch) or "shared" (a new shared-memory segment per batch, as a
    DataLoader worker does); the batch is touched, then dropped. Where a DataLoader's time goes, in one process."""
    from herostore import HeroDataset
    from herostore.batching import new_tensors, shared_tensors
    from herostore.loader import _Bound, _Slot

    ds = HeroDataset(root, ann, modalities=list(modalities), classes=EMOTIONS)
    batches = [list(range(i, min(i + batch_size, len(ds)))) for i in range(0, len(ds), batch_size)]
    bound = _Bound(batch_size)
    slots = [_Slot(False, bound), _Slot(False, bound)]

    def one_pass() -> tuple[float, int, int]:
        start, total = time.perf_counter(), 0
        for k, indices in enumerate(batches):
            allocate = {"ring": slots[k % 2].allocate, "fresh": new_tensors, "shared": shared_tensors}[memory]
            batch = ds.batch(indices, allocate)
            total += touch(batch)
            del batch
        return time.perf_counter() - start, len(ds), total

    return one_pass


def epochs(loader: Any, n_epochs: int, expected: int) -> tuple[float, int, int]:
    """Seconds, samples and bytes of ``n_epochs`` epochs of ``loader``, touching every batch."""
    samples = total = 0
    start = time.perf_counter()
    for _ in range(n_epochs):
        for batch in loader:
            samples += len(batch["label"])
            total += touch(batch)
    seconds = time.perf_counter() - start
    if samples != expected * n_epochs:
        raise RuntimeError(f"{loader!r} gave {samples} samples in {n_epochs} epochs, expected {expected} each")
    return seconds, samples, total


def make_loader(kind: str, root: Path, ann: Path, modalities: Sequence[str], batch_size: int, workers: int = 0):
    """``herostore.Loader`` (kind "loader"), ``DataLoader(HeroDataset, collate_fn=collate)`` (kind "dataloader"),
    or the same DataLoader on the previous path, each sample made on its own and then collated (kind "samples": the
    dataset wrapped in a ``ConcatDataset``, which asks for samples one by one); shuffled with seed 0 on every side."""
    import torch
    from torch.utils.data import ConcatDataset, DataLoader

    from herostore import HeroDataset, Loader, collate

    ds = HeroDataset(root, ann, modalities=list(modalities), classes=EMOTIONS)
    if kind == "loader":
        return Loader(ds, batch_size, shuffle=True, seed=0), len(ds)
    return DataLoader(ds if kind == "dataloader" else ConcatDataset([ds]), batch_size=batch_size, shuffle=True, num_workers=workers, collate_fn=collate,
                      persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0),
                      timeout=300 if workers else 0), len(ds)


def close(loader: Any) -> None:
    if hasattr(loader, "close"):
        loader.close()
    del loader
    gc.collect()


def memory_mb() -> dict[str, float]:
    """RSS of this process and its children, their shared memory (``RssShmem``) and the system's ``Shmem``."""
    import psutil

    me = psutil.Process()
    procs = [me] + me.children(recursive=True)
    rss = shm = 0
    for p in procs:
        try:
            status = Path(f"/proc/{p.pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss += int(fields.get("VmRSS", "0 kB").split()[0])
        shm += int(fields.get("RssShmem", "0 kB").split()[0])
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return {"rss_mb": rss / 1024, "rss_shmem_mb": shm / 1024,
            "system_shmem_mb": int(meminfo["Shmem"].split()[0]) / 1024, "processes": len(procs)}


def memory_run(kind: str, root: Path, ann: Path, batch_size: int, workers: int, n_epochs: int) -> dict[str, Any]:
    """Memory after each of ``n_epochs`` epochs (its batches dropped) and its peak (read while each batch is held,
    the consumer touching every batch), in a fresh process so that nothing else the benchmark did counts."""
    code = ("import json, sys; from pathlib import Path; from benchmarks.loader import _memory_epochs; "
            f"print(json.dumps(_memory_epochs({kind!r}, Path({str(root)!r}), Path({str(ann)!r}), {batch_size}, "
            f"{workers}, {n_epochs})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).resolve().parent.parent)
    if done.returncode:
        raise RuntimeError(f"memory run {kind} {root.name} failed:\n{done.stderr[-3000:]}")
    return {"epochs": json.loads(done.stdout.splitlines()[-1])}


def _memory_epochs(kind: str, root: Path, ann: Path, batch_size: int, workers: int, n_epochs: int) -> list[dict]:
    from herostore.schema import ARRAY_KEYS

    loader, _n = make_loader(kind, root, ann, ARRAY_KEYS, batch_size, workers)
    out = []
    try:
        for _ in range(n_epochs):
            peak: dict[str, float] = {}
            for batch in loader:  # read while the batch is held, every batch: the epoch's peak
                touch(batch)
                peak = {k: max(v, peak.get(k, 0)) for k, v in memory_mb().items()}
            del batch
            gc.collect()
            out.append({"after": memory_mb(), "peak": peak})  # after: what the loader keeps between epochs
    finally:
        close(loader)
    return out


# -- the run ----------------------------------------------------------------------------------------------------


def prepare(cfg: Config, workdir: Path) -> tuple[Path, Path, Path, list[str]]:
    pool = bdata.minilm_pool(cfg.pool_tokens, cache_dir=workdir / "cache")
    root = workdir / "data"
    shutil.rmtree(root, ignore_errors=True)
    npy, store = NpyFolder(root), HerostoreFormat(root, _default_preset())
    npy.write(bdata.videos(cfg.videos, "trained", cfg.shapes, pool))
    store.write(bdata.videos(cfg.videos, "trained", cfg.shapes, pool))
    ids = [bdata.video_id(i) for i in range(cfg.videos)]
    ann = root / "labels.json"
    ann.write_text(json.dumps([{"video_id": v, "emotion": EMOTIONS[i % len(EMOTIONS)]} for i, v in enumerate(ids)]))
    return npy.path, store.path, ann, ids


def _default_preset() -> str:
    from herostore.presets import DEFAULT_PRESET

    return DEFAULT_PRESET


def run(cfg: Config, workdir: Path) -> dict[str, Any]:
    import torch

    from herostore.read import default_threads
    from herostore.schema import ARRAY_KEYS

    t0 = time.perf_counter()
    npy, store, ann, ids = prepare(cfg, workdir)
    threads = default_threads()
    workloads = {"all": tuple(ARRAY_KEYS), "audio_text": AUDIO_TEXT}
    formats = {"npy": npy, "store": store}
    r: dict[str, Any] = {"mode": cfg.mode, "config": {**asdict(cfg), "shapes": asdict(cfg.shapes)},
                         "machine": machine(), "default_preset": _default_preset(), "videos": len(ids),
                         "loader_threads": threads, "data": "trained (MiniLM activations, benchmarks/data.py)"}
    log(f"[{cfg.mode}] {len(ids)} videos written; in-process reads")
    inproc: dict[str, list] = {}
    for _ in range(cfg.rounds):  # interleaved rounds: a noisy moment hits every path alike
        for w, mods in workloads.items():
            for fresh in (False, True):
                tag = "fresh" if fresh else "reused"
                for name, one_pass in ((f"np.load .npy {w} {tag}", npy_load_loop(npy, ids, mods, fresh)),
                                       (f"read_into store {w} {tag}", reader_loop(store, ids, mods, True, fresh)),
                                       (f"read store {w} {tag}", reader_loop(store, ids, mods, False, fresh))):
                    one_pass()  # warm-up
                    inproc.setdefault(name, []).append(with_cpu(one_pass))
    r["in_process"] = {name: summary(runs) for name, runs in inproc.items()}

    log(f"[{cfg.mode}] copy limit, loaders")
    order = np.random.default_rng(0)
    loops: dict[str, list] = {}
    for round_ in range(cfg.rounds):
        for w, mods in workloads.items():
            for bs in cfg.batch_sizes:
                perm = [ids[i] for i in order.permutation(len(ids))]
                batches = [perm[i : i + bs] for i in range(0, len(perm), bs)]
                limit = copy_limit(Plans(store, ids, mods), batches, threads, threads + 1)
                limit()  # warm-up
                loops.setdefault(f"copy limit store {w} b{bs}", []).append(with_cpu(limit))
                for fmt, root in formats.items():
                    paths = [("loader", 0)] + [("dataloader", k) for k in cfg.workers]
                    if bs == cfg.batch_sizes[0]:
                        paths.append(("samples", max(cfg.workers)))
                    for kind, workers in paths:
                        name = f"{kind}{'' if kind == 'loader' else f'({workers})'} {fmt} {w} b{bs}"
                        loader, n = make_loader(kind, root, ann, mods, bs, workers)
                        try:
                            epochs(loader, 1, n)  # warm-up: workers started, buffers grown
                            loops.setdefault(name, []).append(
                                with_cpu(lambda: epochs(loader, cfg.epochs_per_pass, n)))  # noqa: B023
                        finally:
                            close(loader)
        log(f"  round {round_ + 1}/{cfg.rounds} done")
    r["loops"] = {name: summary(runs) for name, runs in loops.items()}

    log(f"[{cfg.mode}] where the time goes: one thread building batches into reused, fresh or shared memory")
    builds: dict[str, list] = {}
    bs = cfg.batch_sizes[0]
    for _ in range(cfg.rounds):
        for w, mods in workloads.items():
            for fmt, root in formats.items():
                for memory in ("ring", "fresh", "shared"):
                    one_pass = build_loop(root, ann, mods, bs, memory)
                    one_pass()
                    builds.setdefault(f"build {memory} {fmt} {w} b{bs}", []).append(with_cpu(one_pass))
    r["builds"] = {name: summary(runs) for name, runs in builds.items()}

    log(f"[{cfg.mode}] memory over {cfg.memory_epochs} epochs")
    r["memory"] = {f"{kind}{'' if kind == 'loader' else f'({k})'} {fmt} all b{bs}":
                   memory_run(kind, root, ann, bs, k, cfg.memory_epochs)
                   for kind, k in (("loader", 0), ("dataloader", max(cfg.workers)))
                   for fmt, root in formats.items()}
    r["torch_threads"] = torch.get_num_threads()
    r["seconds"] = time.perf_counter() - t0
    r["targets"] = targets(r)
    return r


def machine() -> dict[str, Any]:
    import platform

    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpus": bdata.cpu_count(), "cpu": cpu, "kernel": platform.release(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "load_avg_start": os.getloadavg()}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loader", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true", help="smoke run: tiny arrays, one pass each")
    mode.add_argument("--full", action="store_true", help="the numbers: spec-sized arrays, interleaved rounds")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results",
                        help="where loader.md and loader.json go (default benchmarks/results)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    cfg = Config.quick() if args.quick else Config.full()
    command = "python -m benchmarks.loader " + " ".join(argv if argv is not None else sys.argv[1:])
    tmp = tempfile.mkdtemp(prefix="herostore-loader-") if args.workdir is None else None
    workdir = Path(tmp) if tmp else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = run(cfg, workdir)
    finally:
        shutil.rmtree(workdir / "data", ignore_errors=True)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    results["command"] = command
    results["machine"]["load_avg_end"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loader.json").write_text(json.dumps(results, indent=1, default=float))
    (args.out / "loader.md").write_text(markdown(results))
    log(f"[{cfg.mode}] done in {results['seconds']:.0f} s; results in {args.out}")
    for line in bdata.target_lines(results["targets"]):
        log(line)
    return results


if __name__ == "__main__":
    main()
