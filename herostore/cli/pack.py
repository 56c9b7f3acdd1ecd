"""``herostore pack`` and ``unpack``."""

from __future__ import annotations

import argparse
import re
from typing import Any

from ..errors import ArgumentError
from .common import add_parallel_flags

_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


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


def parse_size(text: str) -> int:
    """``2G``, ``500MB``, ``1.5GiB``, ``1000000`` -> bytes (k, M, G, T are powers of 1000; Ki, Mi, Gi of 1024)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]i?)?[bB]?\s*", str(text))
    if not match:
        raise ArgumentError(f"size {text!r}: expected a number of bytes with an optional unit, e.g. 2G or 500MiB")
    value = int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])
    if value < 1:
        raise ArgumentError(f"size {text!r}: expected at least 1 byte")
    return value


def run_pack(args: argparse.Namespace) -> int:
    from ..pack import pack

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
