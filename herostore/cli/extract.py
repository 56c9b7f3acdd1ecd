"""The ``herostore extract`` subcommand and ``scripts/extract_features.py``: argument parsing only.

    herostore extract --video_path PATH --output_dir DIR [--format zarr|npy] [options]

The work is in ``herostore.extract``. Per-video failures are listed in the summary and
make the exit code 1; problems with the whole run raise ``HerostoreError``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..extract import Extraction, ExtractOptions, ModelConfig, OutputSpec, RunSettings, prepare_extraction
from ..extract.models import DEFAULT_MODELS, ROLES
from ..extract.options import AUTO, BATCH_SIZE, MODEL_DTYPE
from ..extract.output import FORMATS
from .common import add_preset_flag, add_storage_flag, run_command, storage_options

_DESCRIPTION = (
    "Extract HERO features (video_mae, clip, hubert, bert, transcript, optional au) from videos. "
    "--format zarr makes OUTPUT_DIR itself a herostore store (zarr.json + one folder per video); "
    "--format npy writes OUTPUT_DIR/<video_id>.npy spec dicts. Either way feature_root = OUTPUT_DIR, so "
    "--output_dir dataset_root/features keeps the spec's layout. Videos already complete are skipped."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags shared by ``herostore extract`` and ``scripts/extract_features.py``."""
    io = parser.add_argument_group("input and output")
    io.add_argument("--video_path", "--video-path", dest="video_path", required=True, nargs="+", metavar="PATH",
                    help="a video, a folder of videos, or a .txt/.lst list of paths (one per line)")
    io.add_argument("--output_dir", "--output-dir", dest="output_dir", required=True, metavar="DIR",
                    help="feature_root: the store itself (zarr) or the folder of <video_id>.npy files (npy); a "
                         "path or a URL such as s3://bucket/root/features")
    io.add_argument("--format", choices=FORMATS, default=OutputSpec.format, help="output format (default %(default)s)")
    add_preset_flag(io)
    io.add_argument("--labels", type=Path, metavar="LABELS_JSON",
                    help="labels.json: its `text` is embedded by BERT instead of the transcript when present")
    io.add_argument("--recursive", action="store_true", help="also look for videos in subfolders")
    io.add_argument("--overwrite", action="store_true", help="extract again videos that are already complete")
    io.add_argument("--report", type=Path, metavar="JSON", help="also write the run report (written/skipped/failed, "
                                                               "timings) as JSON")
    add_storage_flag(io)

    models = parser.add_argument_group("models (ids from the hub / HF cache, or local folders)")
    models.add_argument("--language", choices=sorted(DEFAULT_MODELS), default=ModelConfig.language,
                        help=f"zh selects {DEFAULT_MODELS['zh']['hubert']} and {DEFAULT_MODELS['zh']['bert']} and "
                             f"asks Whisper for Chinese (default %(default)s)")
    models.add_argument("--model-dir", "--model_dir", dest="model_dir", type=Path, metavar="DIR",
                        help="local checkpoints laid out as DIR/<org>/<name> (e.g. DIR/MCG-NJU/videomae-large); "
                             "nothing is downloaded when given")
    for role in ROLES:
        en, zh = DEFAULT_MODELS["en"].get(role), DEFAULT_MODELS["zh"].get(role)
        flag = f"--{role.replace('_', '-')}-model"
        text = f"id or folder (default {en}" + (f"; zh: {zh})" if zh != en else ")")
        if role == "au":
            text = "image encoder for the optional `au` key (no default: `au` is left out)"
        elif role == "asr":
            text = "speech recogniser for `transcript`, " + text
        models.add_argument(flag, dest=f"{role}_model", metavar="ID_OR_DIR", help=text)
    models.add_argument("--asr-language", metavar="CODE",
                        help="language Whisper transcribes (default: --language; 'auto' lets Whisper detect it)")

    shape = parser.add_argument_group("feature shapes")
    shape.add_argument("--video-mae-output", choices=["tokens", "temporal"], default=ExtractOptions.video_mae_output,
                       help="tokens: [1568, 1024] (default); temporal: mean over space per slice, [8, 1024]")
    shape.add_argument("--clip-output", choices=["patches", "cls"], default=ExtractOptions.clip_output,
                       help="patches: [K*257, 1408] (default); cls: one CLS token per keyframe, [K, 1408]")
    shape.add_argument("--keyframes", type=int, default=ExtractOptions.keyframes, metavar="K",
                       help="keyframes for clip (default %(default)s)")
    shape.add_argument("--silence-db", dest="silence_dbfs", type=float, default=ExtractOptions.silence_dbfs,
                       metavar="DBFS", help="audio quieter than this RMS level counts as no speech: no ASR, "
                                            "speech=none (default %(default)s)")

    run = parser.add_argument_group("speed and scale")
    run.add_argument("--device", default=ModelConfig.device,
                     help=f"cpu, cuda or cuda:N (default {AUTO}: cuda if available, else cpu)")
    run.add_argument("--dtype", choices=[AUTO, "float32", "float16", "bfloat16"], default=ModelConfig.dtype,
                     help=f"model precision; {AUTO} (default) = {MODEL_DTYPE['cuda']} on cuda, "
                          f"{MODEL_DTYPE['cpu']} on cpu")
    run.add_argument("--batch-size", type=int, default=ExtractOptions.batch_size, metavar="N",
                     help=f"videos per model call (default {BATCH_SIZE['cpu']} on cpu, {BATCH_SIZE['cuda']} on cuda)")
    run.add_argument("--prefetch", type=int, default=ExtractOptions.prefetch, metavar="N",
                     help="videos decoded ahead (default %(default)s)")
    run.add_argument("--workers", type=int, default=RunSettings.workers, metavar="N",
                     help="dask workers on a local cluster, each loading the models once "
                          "(default %(default)s: no dask)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="use an existing dask cluster, e.g. tcp://host:8786 (GPU workers: --resources GPU=1, one "
                          "per GPU; see docs/extraction.md); every worker must see the paths at the same place")
    run.add_argument("--quiet", action="store_true", help="no progress bar")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``extract`` subcommand to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    parser = subparsers.add_parser("extract", help="extract HERO features from videos into a store or .npy files",
                                   description=_DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """A standalone parser with the same flags (for ``scripts/extract_features.py``)."""
    parser = argparse.ArgumentParser(prog=prog, description=_DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def build_extraction(args: argparse.Namespace) -> Extraction:
    """The library's option objects from the parsed flags, and the run they describe (checked, not started)."""
    models = ModelConfig(language=args.language, model_dir=args.model_dir, device=args.device, dtype=args.dtype,
                         asr_language=args.asr_language,
                         **{role: getattr(args, f"{role}_model") for role in ROLES})
    options = ExtractOptions(video_mae_output=args.video_mae_output, clip_output=args.clip_output,
                             keyframes=args.keyframes, silence_dbfs=args.silence_dbfs, batch_size=args.batch_size,
                             prefetch=args.prefetch)
    output = OutputSpec(args.output_dir, format=args.format, preset=args.preset, overwrite=args.overwrite,
                        storage_options=storage_options(args))
    settings = RunSettings(workers=args.workers, scheduler=args.scheduler, progress=not args.quiet)
    return prepare_extraction(args.video_path, output, models=models, options=options, settings=settings,
                              labels=args.labels, recursive=args.recursive)


def run(args: argparse.Namespace) -> int:
    """Run the extraction, print the summary (and every failure); 0 if all videos are done, else 1."""
    extraction = build_extraction(args)
    try:
        report = extraction.run()
    except KeyboardInterrupt:
        print(extraction.report.summary(), flush=True)
        return 130
    print(report.summary(), flush=True)
    if args.report is not None:
        args.report.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False), "utf-8")
    return 0 if report.ok else 1


def main(argv: list[str] | None = None, prog: str = "extract_features.py") -> int:
    """Entry point of ``scripts/extract_features.py``, under the same error policy as ``herostore``."""
    return run_command(run, build_parser(prog).parse_args(argv), prog)
