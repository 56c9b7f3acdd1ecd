"""``herostore import-npy`` and ``export-npy``."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_parallel_flags, add_preset_flag, add_storage_flag, storage_options


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("import-npy", help="spec dataset of .npy dicts -> herostore store",
                       description="Convert a spec dataset_root (features/*.npy, labels.json, classes.json) into "
                                   "DST/features as a herostore store; label files are copied. Resumes: complete "
                                   "videos are skipped unless --overwrite.")
    p.add_argument("src", help="spec dataset_root, or its features/ folder (a path or a URL)")
    p.add_argument("dst", help="output dataset_root, a path or a URL such as s3://bucket/root (the store is "
                               "DST/features)")
    add_preset_flag(p)
    p.add_argument("--overwrite", action="store_true", help="replace videos already in the store")
    p.add_argument("--overwrite-labels", action="store_true",
                   help="replace labels.json/classes.json in DST when they differ from SRC's (default: stop and say "
                        "how they differ)")
    p.add_argument("--strict", action="store_true", help="fail a video on any deviation from the spec")
    add_parallel_flags(p)
    add_storage_flag(p)
    p.set_defaults(func=run_import)

    p = sub.add_parser("export-npy", help="herostore store -> spec dataset of .npy dicts",
                       description="Write every video of a store as a spec dict .npy (float32) into DST/features; "
                                   "label files are copied.")
    p.add_argument("src", help="dataset_root whose features/ is a store, or the store itself (a path or a URL)")
    p.add_argument("dst", help="output dataset_root (a path or a URL)")
    p.add_argument("--overwrite", action="store_true", help="replace .npy files that exist")
    p.add_argument("--overwrite-labels", action="store_true",
                   help="replace labels.json/classes.json in DST when they differ from the store's")
    add_parallel_flags(p)
    add_storage_flag(p)
    p.set_defaults(func=run_export)


def run_import(args: argparse.Namespace) -> int:
    from ..convert import import_npy

    report = import_npy(args.src, args.dst, preset=args.preset, overwrite=args.overwrite,
                        overwrite_labels=args.overwrite_labels, strict=args.strict,
                        workers=args.workers, scheduler=args.scheduler, progress=not args.quiet,
                        storage_options=storage_options(args))
    print(report.summary())
    return 0 if report.ok else 1


def run_export(args: argparse.Namespace) -> int:
    from ..convert import export_npy

    report = export_npy(args.src, args.dst, overwrite=args.overwrite, overwrite_labels=args.overwrite_labels,
                        workers=args.workers,
                        scheduler=args.scheduler, progress=not args.quiet, storage_options=storage_options(args))
    print(report.summary())
    return 0 if report.ok else 1
