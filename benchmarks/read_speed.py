"""How fast each reader hands over samples, warm page cache, one process.

Builds N spec-shaped samples (video_mae [1568, 1024], clip [257, 1408], hubert [200, 1024],
bert [32, 768], random normal float32: a worst case for compression) as a spec npy folder
and as herostore stores in the ``float16`` and ``raw`` presets, then prints samples/s for:

- npy through ``NpyReader`` (safe unpickler) and through plain ``np.load(allow_pickle=True).item()``;
- ``ZarrReader`` fast and ``fast=False`` (zarr-python) on each store;
- the floor: the same chunk files read and blosc-decoded, nothing else;
- the fast reader under each numcodecs Blosc thread setting;

for all modalities and for the audio+text subset (hubert, bert). Not a test.

    python benchmarks/read_speed.py            # 100 samples
    python benchmarks/read_speed.py --quick    # 20 samples, fewer repeats
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from herostore import npyfile
from herostore.reader import NpyReader, ZarrReader
from herostore.store import FeatureStore

SHAPES = {"video_mae": (1568, 1024), "clip": (257, 1408), "hubert": (200, 1024), "bert": (32, 768)}
SUBSET = ("hubert", "bert")


def build(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    (root / "npy").mkdir(parents=True)
    stores = [FeatureStore.create(root / preset, preset) for preset in ("float16", "raw")]
    for i in range(n):
        features = {k: rng.standard_normal(s, dtype=np.float32) for k, s in SHAPES.items()}
        features["transcript"] = f"sample {i}"
        npyfile.save_features(root / "npy" / f"v{i:04d}.npy", features)
        for store in stores:
            store.write_video(f"v{i:04d}", features)


class Bench:
    """Cases timed in interleaved rounds (best round kept), so drifting machine load hits all alike."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.cases: list[tuple[str, str, Callable[[], object], Callable[[], None] | None]] = []

    def add(self, group: str, name: str, fn: Callable[[], object], setup: Callable[[], None] | None = None) -> None:
        self.cases.append((group, name, fn, setup))

    def run(self, rounds: int) -> list[tuple[str, str, float, float]]:
        """(group, case, samples per wall second, samples per CPU second of this process)."""
        best = [float("inf")] * len(self.cases)
        best_cpu = [float("inf")] * len(self.cases)
        for r in range(rounds + 1):  # round 0 warms the page cache and the readers
            for i, (_, _, fn, setup) in enumerate(self.cases):
                if setup is not None:
                    setup()
                start, start_cpu = time.perf_counter(), time.process_time()
                fn()
                if r:
                    best[i] = min(best[i], time.perf_counter() - start)
                    best_cpu[i] = min(best_cpu[i], time.process_time() - start_cpu)
        return [
            (g, name, self.n / t, self.n / c)
            for (g, name, _, _), t, c in zip(self.cases, best, best_cpu)
        ]


def chunk_files(store: Path, ids: list[str], keys) -> list[list[str]]:
    return [
        [str(p) for key in keys for p in sorted((store / vid / key / "c").rglob("*")) if p.is_file()]
        for vid in ids
    ]


def floor(files: list[list[str]], codec) -> None:
    """Read every chunk file in one read() and decode it; what any reader must at least do."""
    for sample in files:
        for path in sample:
            fd = os.open(path, os.O_RDONLY)
            try:
                data = os.read(fd, os.fstat(fd).st_size)
            finally:
                os.close(fd)
            if codec is not None:
                codec.decode(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100, help="samples (default 100)")
    parser.add_argument("--reps", type=int, default=5, help="timed rounds, best kept (default 5)")
    parser.add_argument("--quick", action="store_true", help="20 samples, 2 passes")
    parser.add_argument("--dir", type=Path, help="reuse/keep the data here instead of a temp dir")
    args = parser.parse_args()
    n, reps = (20, 2) if args.quick else (args.n, args.reps)
    warnings.filterwarnings("ignore")  # zarr's consolidated-metadata warning

    import numcodecs
    from numcodecs import blosc

    with tempfile.TemporaryDirectory() as tmp:
        root = args.dir or Path(tmp)
        if not (root / "npy").is_dir():
            print(f"building {n} samples in {root} ...", flush=True)
            build(root, n)
        npy_files = sorted((root / "npy").glob("*.npy"))[:n]
        ids = [p.stem for p in npy_files]
        n = len(ids)
        print(f"{n} samples, {os.cpu_count()} cpus, numcodecs blosc use_threads={blosc.use_threads} "
              f"nthreads={blosc.get_nthreads()} unless stated; warm, best of {reps} interleaved rounds\n")

        def run(reader, modalities=None) -> Callable[[], None]:
            def go() -> None:
                for v in ids:  # each sample is dropped before the next, as a training loop does
                    reader.read(v, modalities)
            return go

        def npy_plain(keys=None) -> Callable[[], None]:
            def go() -> None:
                for p in npy_files:
                    d = np.load(p, allow_pickle=True).item()
                    if keys:
                        d = {k: d[k] for k in keys}
            return go

        bench = Bench(n)
        default_threads = (blosc.use_threads, blosc.get_nthreads())

        def threads(use_threads, nthreads) -> Callable[[], None]:
            def setup() -> None:
                blosc.use_threads = use_threads
                blosc.set_nthreads(nthreads)
            return setup

        reset = threads(*default_threads)
        for label, subset in (("all modalities", None), ("hubert+bert", SUBSET)):
            bench.add(label, "npy: np.load(allow_pickle=True).item()", npy_plain(subset), reset)
            bench.add(label, "npy: NpyReader", run(NpyReader(root / "npy"), subset), reset)
            for preset in ("float16", "raw"):
                keys = subset or tuple(SHAPES)
                codec = numcodecs.Blosc() if preset == "float16" else None
                files = chunk_files(root / preset, ids, keys)
                what = "read + decode" if codec else "read"
                bench.add(label, f"{preset}: floor (chunk files {what}, nothing else)",
                          lambda files=files, codec=codec: floor(files, codec), reset)
                fast = ZarrReader(root / preset)
                bench.add(label, f"{preset}: ZarrReader fast", run(fast, subset), reset)
                if preset == "raw":

                    def copied(fast=fast, subset=subset) -> None:
                        for v in ids:
                            [np.array(a) for a in fast.read(v, subset).arrays.values()]

                    bench.add(label, "raw: ZarrReader fast + np.array copy of each array", copied, reset)
                    bench.add(label, "raw: ZarrReader fast, zero_copy=False",
                              run(ZarrReader(root / preset, zero_copy=False), subset), reset)
                if preset == "float16" and subset is None:
                    for use_threads, nthreads in ((False, 1), (True, 1), (True, 2)):
                        bench.add(label, f"float16: ZarrReader fast, use_threads={use_threads} nthreads={nthreads}",
                                  run(fast, subset), threads(use_threads, nthreads))
                bench.add(label, f"{preset}: ZarrReader fast=False (zarr-python)",
                          run(ZarrReader(root / preset, fast=False), subset), reset)
        rows = bench.run(reps)
        reset()

        width = max(len(r[1]) for r in rows)
        print(f"{'':15s} {'':{width}s} {'wall':>8s} {'cpu':>8s}")
        for label, name, rate, cpu_rate in rows:
            print(f"{label:15s} {name:{width}s} {rate:8.0f} {cpu_rate:8.0f}")
        print("\nwall: samples per second; cpu: samples per CPU-second of this process (steadier on a busy "
              "machine; with blosc threads it adds up the threads' time)")


if __name__ == "__main__":
    main()
