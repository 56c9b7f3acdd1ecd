"""The cost of checksums (chunk checksums from store format 2, sealed video documents from format 3) on warm reads,
and ``herostore verify``'s throughput.

    python -m benchmarks.checksum --quick        # smoke run (tiny arrays, seconds)
    python -m benchmarks.checksum --full         # the numbers (a few minutes on 2 cores)

Data: spec-shaped videos of random normal data in the default preset (``float16``, uncompressed: the bytes read and
hashed do not depend on the values), written twice: a format-1 store (no checksums, as stores were before format 2)
and a store of the current format (a crc32c after every chunk; each video document sealed with its chunks'
checksums and a digest of itself). Workloads, all modalities of every video, warm page cache:

- **first pass**: a fresh process opens a store and reads every video once: the current format hashes every chunk. Processes
  alternate between the two stores, ``rounds`` of each. Format 1 compares each array's metadata with its own
  ``zarr.json`` on a first read; the current format checks the seal instead.
- **later epochs**: one process opens both stores, reads each once (the current format's checksums are then verified and
  remembered), then alternates passes over the two, ``epochs`` of each.
- **verify**: ``verify_store`` in-process (one core); on 2 worker processes started beforehand (warm: what a
  whole dataset sees once they run), on the store and on one ``verify_scale`` times as large (and the marginal
  rate between the two); and end to end, each run starting its 2 workers.

Best of N with the spread ``(max - min) / min``. Writes ``checksum.md`` and ``checksum.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from herostore.layout import FORMAT_VERSION

from . import data as bdata

PRESET = "float16"
TARGET_LATER = 1.10  # later epochs at most 10% slower than chunks without checksums
TARGET_VERIFY_GBPS = 1.0


@dataclass
class Config:
    mode: str
    videos: int
    shapes: bdata.Shapes
    rounds: int  # fresh processes per format (first pass)
    epochs: int  # later-epoch passes per format
    verify_repeats: int
    verify_scale: int  # the larger verify store holds this many times the videos

    @classmethod
    def quick(cls) -> Config:
        return cls("quick", 4, bdata.QUICK_SHAPES, 1, 2, 1, 2)

    @classmethod
    def full(cls) -> Config:
        return cls("full", 48, bdata.FULL_SHAPES, 9, 15, 3, 4)


def write_store(path: Path, version: int, videos: int, shapes: bdata.Shapes, start: int = 0) -> list[str]:
    """A store of format ``version`` holding ``videos`` random videos (ids from ``start``); returns the ids."""
    from herostore.layout import root_document
    from herostore.locations import open_location
    from herostore.presets import get_preset
    from herostore.store import FeatureStore

    location = open_location(path)
    location.create_root(root_document(get_preset(PRESET), format_version=version), lambda existing: None)
    store = FeatureStore(location)
    if store.info.format_version != version:
        raise RuntimeError(f"{path}: format {store.info.format_version}, expected {version}")
    ids = []
    for i in range(start, start + videos):
        vid = bdata.video_id(i)
        store.write_video(vid, bdata.make_video(i, "random", shapes, None, seed=3))
        ids.append(vid)
    return ids


def stored_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("c/*/*") if p.is_file())


def read_all(reader: Any, ids: Sequence[str]) -> float:
    start = time.perf_counter()
    for vid in ids:
        reader.read(vid)
    return time.perf_counter() - start


def first_pass(path: str) -> dict[str, Any]:
    """In this (fresh) process: open the store, read every video once (the crc32c library is loaded before the
    clock starts: a one-time import, not a cost per chunk)."""
    from herostore.read import open_reader
    from herostore.read.engine import crc32c

    crc32c(b"")
    reader = open_reader(path)
    ids = reader.video_ids()
    return {"seconds": read_all(reader, ids), "videos": len(ids)}


def _first_pass_in_a_fresh_process(path: Path) -> float:
    out = subprocess.run([sys.executable, "-m", "benchmarks.checksum", "--first-pass", str(path)], check=True,
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def summary(times: Sequence[float]) -> dict[str, float]:
    best = min(times)
    return {"best": best, "median": statistics.median(times), "worst": max(times),
            "spread": (max(times) - best) / best if best > 0 else 0.0, "n": len(times)}


def same_data(a: Path, b: Path, ids: Sequence[str]) -> bool:
    from herostore.read import open_reader

    ra, rb = open_reader(a), open_reader(b)
    for vid in ids:
        x, y = ra.read(vid), rb.read(vid)
        if x.arrays.keys() != y.arrays.keys():
            return False
        if any(x.arrays[k].tobytes() != y.arrays[k].tobytes() for k in x.arrays):
            return False
    return True


def hashing_alone(path: Path) -> dict[str, float]:
    """crc32c over every chunk's payload already in memory: what hashing costs by itself."""
    from herostore.read.engine import crc32c

    payloads = [p.read_bytes()[:-4] for p in sorted(path.rglob("c/*/*")) if p.is_file()]
    total = sum(len(p) for p in payloads)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for payload in payloads:
            crc32c(payload)
        times.append(time.perf_counter() - start)
    return {"bytes": total, "seconds": min(times), "gb_per_s": total / min(times) / 1e9}


def measure_reads(v1: Path, cur: Path, ids: Sequence[str], cfg: Config, log: Any) -> dict[str, Any]:
    from herostore.read import open_reader

    for path in (v1, cur):  # the page cache holds both stores before anything is timed
        read_all(open_reader(path), ids)
    first: dict[str, list[float]] = {"v1": [], "current": []}
    for r in range(cfg.rounds):
        order = [("v1", v1), ("current", cur)] if r % 2 == 0 else [("current", cur), ("v1", v1)]
        for name, path in order:
            first[name].append(_first_pass_in_a_fresh_process(path))
    log(f"first pass: format 1 best {min(first['v1']):.3f} s, "
        f"format {FORMAT_VERSION} best {min(first['current']):.3f} s")
    readers = {"v1": open_reader(v1), "current": open_reader(cur)}
    for reader in readers.values():
        read_all(reader, ids)  # the current format verifies every chunk here, and remembers them
    later: dict[str, list[float]] = {"v1": [], "current": []}
    for e in range(cfg.epochs):
        for name in (("v1", "current") if e % 2 == 0 else ("current", "v1")):
            later[name].append(read_all(readers[name], ids))
    log(f"later epochs: format 1 best {min(later['v1']):.3f} s, "
        f"format {FORMAT_VERSION} best {min(later['current']):.3f} s")
    return {"first": {k: summary(v) for k, v in first.items()}, "later": {k: summary(v) for k, v in later.items()},
            "raw": {"first": first, "later": later}}


def measure_verify(cur: Path, big: Path, cfg: Config, log: Any) -> dict[str, Any]:
    """``verify_store`` in this process, on 2 worker processes started beforehand (warm: started, herostore imported,
    page cache warm), and end to end (``workers=2`` starts its own cluster each time)."""
    from distributed import LocalCluster

    from herostore.verify import verify_store

    def timed(label: str, path: Path, **options: Any) -> None:
        runs = []
        for _ in range(cfg.verify_repeats):
            report = verify_store(path, progress=False, **options)
            if not report.ok:
                raise RuntimeError(f"verify found problems in a clean store: {report.render()}")
            runs.append({"seconds": report.seconds, "bytes": report.bytes, "chunks": report.chunks})
        best = min(runs, key=lambda r: r["seconds"])
        out[label] = {**best, "gb_per_s": best["bytes"] / best["seconds"] / 1e9,
                      "spread": summary([r["seconds"] for r in runs])["spread"], "n": len(runs)}
        log(f"verify {label}: {best['bytes'] / 1e9:.3f} GB in {best['seconds']:.2f} s")

    out: dict[str, Any] = {}
    timed("1 core, in process", cur, workers=1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        verify_store(cur, scheduler=cluster.scheduler_address, progress=False)  # the workers import herostore
        timed("2 workers, warm", cur, scheduler=cluster.scheduler_address)
        timed(f"2 workers, warm, {cfg.verify_scale}x store", big, scheduler=cluster.scheduler_address)
    timed("2 workers, end to end (starting them)", cur, workers=2)
    small, large = out["2 workers, warm"], out[f"2 workers, warm, {cfg.verify_scale}x store"]
    extra_bytes, extra_seconds = large["bytes"] - small["bytes"], large["seconds"] - small["seconds"]
    out["2 workers, warm, marginal"] = {"bytes": extra_bytes, "seconds": extra_seconds,
                                        "gb_per_s": extra_bytes / extra_seconds / 1e9 if extra_seconds > 0 else None}
    return out


def machine() -> dict[str, Any]:
    import numcodecs
    import zarr

    return {"python": platform.python_version(), "cpus": bdata.cpu_count(), "zarr": zarr.__version__,
            "numcodecs": numcodecs.__version__, "platform": platform.platform()}


def run(cfg: Config, workdir: Path, log: Any = print) -> dict[str, Any]:
    v1, cur, big = workdir / "format1", workdir / "current", workdir / "current-large"
    ids = write_store(v1, 1, cfg.videos, cfg.shapes)
    write_store(cur, FORMAT_VERSION, cfg.videos, cfg.shapes)
    if not same_data(v1, cur, ids):
        raise RuntimeError("the two stores read differently")
    shutil.copytree(cur, big)
    write_store(big, FORMAT_VERSION, cfg.videos * (cfg.verify_scale - 1), cfg.shapes, start=cfg.videos)
    log(f"stores written: {cfg.videos} videos, {stored_bytes(cur) / 1e6:.1f} MB of chunks (format {FORMAT_VERSION})")
    reads = measure_reads(v1, cur, ids, cfg, log)
    result = {
        "mode": cfg.mode, "config": {**asdict(cfg), "shapes": asdict(cfg.shapes)}, "machine": machine(),
        "data": "random normal float32 cast to float16 (uncompressed preset: the values do not change the work)",
        "videos": cfg.videos, "stored_bytes": {"format1": stored_bytes(v1), "current": stored_bytes(cur)},
        "reads": reads, "hashing": hashing_alone(cur), "verify": measure_verify(cur, big, cfg, log),
    }
    result["ratios"] = {
        "first_pass": reads["first"]["current"]["best"] / reads["first"]["v1"]["best"],
        "first_pass_median": reads["first"]["current"]["median"] / reads["first"]["v1"]["median"],
        "later_epochs": reads["later"]["current"]["best"] / reads["later"]["v1"]["best"],
        "later_epochs_median": reads["later"]["current"]["median"] / reads["later"]["v1"]["median"],
        "first_pass_vs_format1_later": reads["first"]["current"]["best"] / reads["later"]["v1"]["best"],
        "format1_first_vs_later": reads["first"]["v1"]["best"] / reads["later"]["v1"]["best"],
    }
    return result


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    later = r["ratios"]["later_epochs"]
    verify = r["verify"]
    warm = verify[f"2 workers, warm, {r['config']['verify_scale']}x store"]["gb_per_s"]
    return [
        {"target": "checksum cost, first pass (fresh process)", "value": f"{r['ratios']['first_pass']:.2f}x the "
         "time of format 1", "met": "report"},
        {"target": "checksum cost, later epochs: <= 1.10x format 1", "value": f"{later:.2f}x",
         "met": "met" if later <= TARGET_LATER else "not met"},
        {"target": "verify >= 1 GB/s of stored bytes, 2 workers, warm", "value": f"{warm:.2f} GB/s "
         f"({verify['2 workers, end to end (starting them)']['gb_per_s']:.2f} GB/s end to end on the smaller store, "
         "starting the workers)", "met": "met" if warm >= TARGET_VERIFY_GBPS else "not met"},
    ]


def markdown(r: dict[str, Any], command: str) -> str:
    reads, verify = r["reads"], r["verify"]
    gb = r["stored_bytes"]["current"] / 1e9
    lines = [
        "# Checksum cost and verify throughput", "",
        (f"Command: `{command}`. Machine: {r['machine']['cpus']} CPUs, Python {r['machine']['python']}, zarr "
        f"{r['machine']['zarr']}, numcodecs {r['machine']['numcodecs']}. Data: {r['videos']} spec-shaped videos, "
        f"{r['data']}; {r['stored_bytes']['current'] / 1e6:.1f} MB of chunks in format {FORMAT_VERSION} "
        f"({r['stored_bytes']['format1'] / 1e6:.1f} MB in format 1). Warm page cache, all modalities of every video "
        "per pass. Best of N, spread = (worst - best) / best."), "",
        (f"| workload | format 1 (no checksums) | format {FORMAT_VERSION} (checksums, sealed) | format "
         f"{FORMAT_VERSION} / format 1 |"), "|---|---:|---:|---:|",
    ]
    for key, label in (("first", "first pass, fresh process"), ("later", "later epochs, one process")):
        a, b = reads[key]["v1"], reads[key]["current"]
        lines.append(f"| {label} (N={a['n']}) | {a['best'] * 1e3:.1f} ms ({gb / a['best']:.2f} GB/s, spread "
                     f"{a['spread']:.0%}) | {b['best'] * 1e3:.1f} ms ({gb / b['best']:.2f} GB/s, spread "
                     f"{b['spread']:.0%}) | {b['best'] / a['best']:.3f} (medians {b['median'] / a['median']:.3f}) |")
    ratios = r["ratios"]
    lines += ["", (f"Against format 1's later epochs (the steady state without checksums), format {FORMAT_VERSION}'s "
              "first pass takes "
              f"{ratios['first_pass_vs_format1_later']:.2f}x and format 1's own first pass "
              f"{ratios['format1_first_vs_later']:.2f}x (a fresh process fills its caches; format 1's also opens "
              f"and compares each array's metadata once, format {FORMAT_VERSION}'s checks each video's seal).")]
    h = r["hashing"]
    lines += ["", (f"crc32c alone over the same {h['bytes'] / 1e6:.1f} MB in memory: {h['seconds'] * 1e3:.1f} ms "
              f"({h['gb_per_s']:.1f} GB/s)."), "", "| verify | stored bytes | seconds | GB/s | spread |",
              "|---|---:|---:|---:|---:|"]
    for label, v in verify.items():
        rate = f"{v['gb_per_s']:.2f}" if v.get("gb_per_s") else "n/a"
        spread = f"{v['spread']:.0%}" if "spread" in v else "-"
        lines.append(f"| {label} | {v['bytes'] / 1e6:.1f} MB | {v['seconds']:.2f} | {rate} | {spread} |")
    lines += ["", "| target | value | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['value']} | {t['met']} |" for t in targets(r)]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.checksum", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smoke run with tiny arrays")
    mode.add_argument("--full", action="store_true", help="the numbers")
    mode.add_argument("--first-pass", metavar="STORE", help=argparse.SUPPRESS)  # one fresh-process probe
    parser.add_argument("--out", default=None, help="where checksum.md/json go (default: benchmarks/results, "
                                                    "or nowhere for --quick)")
    parser.add_argument("--workdir", default=None, help="where the stores are written (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.first_pass:
        print(json.dumps(first_pass(args.first_pass)))
        return None
    cfg = Config.full() if args.full else Config.quick()
    command = "python -m benchmarks.checksum " + ("--full" if args.full else "--quick")
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="herostore-checksum-") as work:
        result = run(cfg, Path(work), log=lambda m: print(m, file=sys.stderr, flush=True))
    result["targets"] = targets(result)
    result["command"] = command
    out = args.out or (None if cfg.mode == "quick" else str(Path(__file__).parent / "results"))
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "checksum.json").write_text(json.dumps(result, indent=1, default=_json_default))
        (Path(out) / "checksum.md").write_text(markdown(result, command))
    print(markdown(result, command))
    return result


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


if __name__ == "__main__":
    main()
