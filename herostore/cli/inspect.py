"""``herostore validate``, ``info``, ``verify`` and ``stats``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .common import add_parallel_flags, add_storage_flag, storage_options


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("validate", help="check a dataset against the spec (exit 0 only when clean)")
    p.add_argument("dataset", help="spec dataset_root, features as .npy files or a store (a path or a URL)")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--no-values", action="store_true", help="skip the NaN/Inf scan of every value")
    add_storage_flag(p)
    p.set_defaults(func=run_validate)

    p = sub.add_parser("info", help="videos, bytes per modality, compression, sequence lengths of a store")
    p.add_argument("store", help="a store, or a dataset_root whose features/ is one (a path or a URL)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_storage_flag(p)
    p.set_defaults(func=run_info)

    p = sub.add_parser("verify", help="re-read every chunk and check checksums, files and metadata (exit 0 only "
                                      "when clean)",
                       description="Check a store: every chunk read again and its checksum compared, every file the "
                                   "metadata names present and nothing else (no links or special files), each "
                                   "array's metadata equal to the video's consolidated metadata. Reports by video, "
                                   "modality and chunk.")
    p.add_argument("store", help="a store, or a dataset_root whose features/ is one (a path or a URL)")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    add_parallel_flags(p)
    add_storage_flag(p)
    p.set_defaults(func=run_verify)

    p = sub.add_parser("stats", help="compute per-modality mean/std into the store (for normalisation)",
                       description="Per-dimension mean and std of every modality over all rows of all videos, "
                                   "streamed in float64 and recorded in the store's root attributes. Rows with NaN "
                                   "or Inf are left out and counted (--nonfinite error refuses instead).")
    p.add_argument("store", help="a store, or a dataset_root whose features/ is one (a path or a URL)")
    p.add_argument("--nonfinite", choices=["skip", "error"], default="skip",
                   help="rows holding NaN/Inf: skip them and say how many (default), or refuse naming the videos")
    add_parallel_flags(p)
    add_storage_flag(p)
    p.set_defaults(func=run_stats)


def run_validate(args: argparse.Namespace) -> int:
    from ..validate import validate_dataset

    report = validate_dataset(args.dataset, check_values=not args.no_values, storage_options=storage_options(args))
    print(report.to_json() if args.json else report.render())
    return 0 if report.ok else 1


def run_info(args: argparse.Namespace) -> int:
    from ..info import render_info, store_info

    info = store_info(args.store, storage_options=storage_options(args))
    print(json.dumps(info, indent=1) if args.json else render_info(info))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from ..verify import verify_store

    report = verify_store(args.store, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet,
                          storage_options=storage_options(args))
    print(report.to_json() if args.json else report.render())
    return 0 if report.ok else 1


def run_stats(args: argparse.Namespace) -> int:
    from ..stats import compute_stats
    from ..urls import display

    stats = compute_stats(args.store, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet,
                          nonfinite=args.nonfinite, storage_options=storage_options(args))
    for key, s in stats.items():
        skipped = ""
        if s["skipped_rows"]:
            more = " ..." if s["skipped_videos"] > len(s["skipped_ids"]) else ""
            skipped = (f"; {s['skipped_rows']} rows with NaN/Inf left out, in {s['skipped_videos']} video(s): "
                       f"{', '.join(s['skipped_ids'])}{more}")
        print(f"{key}: {s['count']} rows, {len(s['mean'])} dims{skipped}")
    print(f"stats recorded in {display(args.store)}")
    return 0
