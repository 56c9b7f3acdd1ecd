"""Extraction throughput: videos/s and where the time goes (decode vs each model vs writing).

    python -m benchmarks.extract_bench --quick                  # 4 short clips, tiny models, CPU (~1 min)
    python -m benchmarks.extract_bench                          # 12 clips of 3 s, tiny models, CPU
    python -m benchmarks.extract_bench --full-size --device cuda --workdir /scratch/bench   # real sizes, no hub
    python -m benchmarks.extract_bench --model-dir /models --device cuda --batch-size 8 --videos 64
    python -m benchmarks.extract_bench --model-dir /models --device cuda --workers 4 --videos 256   # 4 GPUs
    python -m benchmarks.extract_bench --model-dir /models --scheduler tcp://HEAD:8786 --videos 1024 # GPU workers

Without ``--model-dir`` the models are the random-weight ones of ``herostore.testing.tiny_models``:
real hidden sizes but 1 layer, so the model share of the time is far below a real run's; the decode and
write shares and the pipeline overhead are real. ``--full-size`` builds RANDOM-WEIGHT models with the
real architectures' sizes (VideoMAE-large, the Blip-2 EVA ViT-g/14 tower, HuBERT-large,
whisper-large-v3-turbo, BERT-base): the time split is then that of real checkpoints, except the ASR
share, since random weights never stop transcribing and every transcript runs to a fixed cap of
``FULL_SIZE_ASR_MAX_TOKENS`` tokens (about a 10 s utterance). Building them takes minutes and about
5 GB under ``--workdir`` (kept, so a second run reuses them). With ``--model-dir`` (checkpoints laid
out as ``DIR/<org>/<name>``, see docs/extraction.md) the numbers are the real ones. Model loading is
timed separately and left out of videos/s. Decoding runs in a background thread, so the stage times
add up to more than the wall time when it overlaps the models.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from herostore.extract import ExtractOptions, ModelConfig, OutputSpec, RunSettings, run_extraction
from herostore.extract.report import STAGES
from herostore.extract.runner import Job, get_models, warm_up
from herostore.testing import build_tiny_models, write_clip
from herostore.testing.tiny_models import FULL_SIZE_ASR_MAX_TOKENS


def make_clips(folder: Path, count: int, seconds: float) -> list[Path]:
    """``count`` clips with audio, alternating landscape 320x240 and portrait 240x320 (reused when present)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        size = (320, 240) if i % 2 == 0 else (240, 320)
        path = folder / f"clip_{i:04d}_{seconds:g}s.mp4"
        if not path.exists():
            write_clip(path, seconds=seconds, width=size[0], height=size[1], freq=220 + 40 * i, seed=i)
        paths.append(path)
    return paths


def run(args: argparse.Namespace) -> dict:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="herostore-extract-bench-"))
    clips = make_clips(workdir / "videos", args.videos, args.seconds)
    tiny = args.model_dir is None
    if tiny:
        start = time.perf_counter()
        model_dir = build_tiny_models(workdir / ("models-full-size" if args.full_size else "models"),
                                      languages=("en",), full_size=args.full_size)
        build_s = time.perf_counter() - start
    else:
        model_dir, build_s = Path(args.model_dir), 0.0
    config = ModelConfig(model_dir=str(model_dir), device=args.device, dtype=args.dtype)
    output = OutputSpec(workdir / "features", format=args.format, overwrite=True)
    options = ExtractOptions(batch_size=args.batch_size)
    with _cluster(args) as scheduler:
        start = time.perf_counter()
        if scheduler is None:
            get_models(config)  # what run_extraction will reuse: loading is not part of videos/s
        else:
            _load_on_every_worker(scheduler, Job(output, config, options, {}))
        load_s = time.perf_counter() - start
        report = run_extraction(clips, output, models=config, options=options,
                                settings=RunSettings(scheduler=scheduler, progress=False))
    if report.failed:
        raise SystemExit(f"benchmark clips failed: {report.failed}")
    stages = {stage: report.timings.get(stage, 0.0) for stage in STAGES if report.timings.get(stage, 0.0) > 0}
    return {
        "models": _models_label(tiny, args.full_size, model_dir),
        "model_build_s": round(build_s, 2),
        "device": args.device,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "videos": len(report.written),
        "clip_seconds": args.seconds,
        "format": args.format,
        "model_load_s": round(load_s, 2),
        "wall_s": round(report.elapsed, 2),
        "videos_per_s": round(report.videos_per_s, 3),
        "stage_s": {k: round(v, 3) for k, v in stages.items()},
        "stage_ms_per_video": {k: round(1000 * v / max(1, len(report.written)), 1) for k, v in stages.items()},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "workers": _per_worker(report),
        "scheduler": args.scheduler,
    }


@contextlib.contextmanager
def _cluster(args: argparse.Namespace) -> Iterator[str | None]:
    """The scheduler to run on: the one given, a local cluster of ``--workers`` processes, or None (this process)."""
    if args.scheduler or args.workers <= 1:
        yield args.scheduler
        return
    from distributed import LocalCluster

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        yield cluster.scheduler_address


def _load_on_every_worker(scheduler: str, job: Job) -> None:
    from distributed import Client

    with Client(scheduler) as client:
        client.run(warm_up, job.absolute())


def _per_worker(report: Any) -> dict[str, dict[str, float]]:
    """Per worker (and its device): videos, seconds busy, and videos/s while busy (per GPU, one worker per GPU)."""
    return {where: {"videos": entry["videos"], "busy_s": round(entry["busy_s"], 2),
                    "videos_per_s": round(entry["videos"] / entry["busy_s"], 3) if entry["busy_s"] else 0.0}
            for where, entry in sorted(report.devices.items())}


def _models_label(tiny: bool, full_size: bool, model_dir: Path) -> str:
    if not tiny:
        return str(model_dir)
    if full_size:
        return (f"FULL-SIZE RANDOM-WEIGHT (real architectures, meaningless features; ASR capped at "
                f"{FULL_SIZE_ASR_MAX_TOKENS} tokens)")
    return "tiny random-weight (1 layer, spec hidden sizes)"


def render(result: dict) -> str:
    head = (f"extraction benchmark: {result['videos']} clips of {result['clip_seconds']} s on "
            f"{len(result['workers'])} worker(s), models: "
            f"{result['models']}, device {result['device']} ({result['dtype']}), batch {result['batch_size'] or 'auto'}, "
            f"format {result['format']}")
    lines = [
        head,
        f"  model build (random weights, reused when already built): {result['model_build_s']:.2f} s",
        f"  model load (once per process): {result['model_load_s']:.2f} s",
        f"  throughput: {result['videos_per_s']:.3f} videos/s ({result['wall_s']:.2f} s wall)",
        "  stage            total s   ms/video   share of stage time",
    ]
    total = sum(result["stage_s"].values()) or 1.0
    for stage, seconds in result["stage_s"].items():
        note = "  (background thread, overlaps the models)" if stage == "decode" else ""
        lines.append(f"  {stage:<14} {seconds:9.2f} {result['stage_ms_per_video'][stage]:10.1f}"
                     f" {100 * seconds / total:8.1f}%{note}")
    lines.append(f"  stages sum {total:.2f} s vs wall {result['wall_s']:.2f} s")
    if len(result["workers"]) > 1 or result.get("scheduler"):
        lines.append("  worker (device)            videos   busy s   videos/s while busy")
        for where, entry in result["workers"].items():
            lines.append(f"  {where:<26} {entry['videos']:6d} {entry['busy_s']:8.2f} {entry['videos_per_s']:10.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 clips of 1 s")
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each generated clip")
    parser.add_argument("--model-dir", help="real checkpoints as DIR/<org>/<name> (default: tiny random models)")
    parser.add_argument("--full-size", action="store_true",
                        help="random-weight models with the real architectures' sizes instead of tiny ones "
                             "(minutes to build, ~5 GB under --workdir; meaningless features)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    parser.add_argument("--batch-size", type=int, default=None,
                        help="videos per model call (default: the device's, 1 on cpu, 8 on cuda)")
    parser.add_argument("--format", choices=["zarr", "npy"], default="zarr")
    parser.add_argument("--workers", type=int, default=1,
                        help="a local dask cluster of N worker processes (with --device cuda: one per GPU)")
    parser.add_argument("--scheduler", help="an existing dask cluster, e.g. one worker per GPU (docs/extraction.md)")
    parser.add_argument("--workdir", help="where clips, tiny models and features go (default: a temp folder)")
    parser.add_argument("--out", type=Path, help="also write the result as JSON")
    args = parser.parse_args(argv)
    if args.full_size and args.model_dir:
        parser.error("--full-size builds random-weight models: it cannot be combined with --model-dir")
    if args.quick:
        args.videos, args.seconds = 4, 1.0
    result = run(args)
    result["command"] = "python -m benchmarks.extract_bench " + " ".join(argv if argv is not None else sys.argv[1:])
    print(render(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
