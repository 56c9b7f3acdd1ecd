"""``herostore pack`` and ``unpack``."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_parallel_flags


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("pack", help="store -> packed dataset: zip shards and an index, one contiguous read per sample",
                       description="Pack a herostore store into DST/features as a packed dataset: zip shards of at "
                                   "most --shard-size bytes (each a Zarr zip store readable on its own), an index of "
                                   "every video's byte range and a manifest; label files are copied. Read it like "
                                   "a store (HeroDataset, open_reader, info), locally or from object storage; "
                                   "`herostore unpack` gives the store back byte for byte. Resumes: complete shards "
                                   "are skipped.")
    p.add_argument("src", help="dataset_root whose features/ is a store, or the store itself")
    p.add_argument("dst", help="output dataset_root (the packed dataset is DST/features)")
    p.add_argument("--shard-size", default="2G", metavar="SIZE",
                   help="largest shard, e.g. 2G (default), 500M, 1GiB; a larger video gets a shard of its own")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a packed dataset already at DST (and differing label files)")
    add_parallel_flags(p)
    p.set_defaults(func=run_pack)

    p = sub.add_parser("unpack", help="packed dataset -> herostore store, byte for byte",
                       description="Write a packed dataset back as the directory store DST/features, every file "
                                   "byte-identical to the store that was packed; label files are copied. Resumes: "
                                   "videos already there are skipped unless --overwrite.")
    p.add_argument("src", help="dataset_root whose features/ is a packed dataset, or the packed dataset itself")
    p.add_argument("dst", help="output dataset_root (the store is DST/features)")
    p.add_argument("--overwrite", action="store_true", help="replace videos (and differing label files) at DST")
    add_parallel_flags(p)
    p.set_defaults(func=run_unpack)


def run_pack(args: argparse.Namespace) -> int:
    from ..pack import pack, parse_size

    report = pack(args.src, args.dst, shard_size=parse_size(args.shard_size), overwrite=args.overwrite,
                  workers=args.workers, scheduler=args.scheduler, progress=not args.quiet)
    print(report.summary("shards"))
    if report.ok:
        print(f"packed dataset written to {args.dst}/features")
    else:
        print("the index and manifest were not written; re-run to resume")
    return 0 if report.ok else 1


def run_unpack(args: argparse.Namespace) -> int:
    from ..pack import unpack

    report = unpack(args.src, args.dst, overwrite=args.overwrite, workers=args.workers, scheduler=args.scheduler,
                    progress=not args.quiet)
    print(report.summary("shards"))
    counts = [o.value for o in report.outcomes if isinstance(o.value, tuple)]
    print(f"{sum(c[0] for c in counts)} videos written, {sum(c[1] for c in counts)} already there")
    return 0 if report.ok else 1
