"""Fuzz herostore's reader of spec `.npy` dicts.

    python -m tests.fuzz --cases 10000 --seed 0 --workers 2 --work /tmp/herostore-fuzz --keep /tmp/fuzz-bad

Mutates the legitimate files of ``tests/fuzz/seeds.py`` (bytes, the `.npy` header, the pickle stream opcode by
opcode; see ``tests/fuzz/mutate.py``) and runs every case in worker subprocesses under a time and a memory
limit through ``load``, ``validate`` and, for a share of cases, ``import`` (see ``tests/fuzz/runner.py``).
Prints the outcome counts per step; exits 1 if any case crashed, hung, ran out of memory, raised a traceback or
loaded wrong data. ``--keep`` collects those cases' files; ``--write-crafted DIR`` writes the hand-made attack
files of ``tests/fuzz/crafted.py`` instead of fuzzing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

from .crafted import write_all
from .runner import BAD, run_campaign


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per step of a case")
    parser.add_argument("--mem-gib", type=float, default=2.0, help="RLIMIT_AS of a worker")
    parser.add_argument("--import-share", type=float, default=0.1, help="share of cases also run through import")
    parser.add_argument("--work", help="scratch folder (default: a temporary one)")
    parser.add_argument("--keep", help="folder to copy every bad case into")
    parser.add_argument("--json", help="write the counts and bad cases here")
    parser.add_argument("--errors", type=int, default=0, metavar="N", help="also print the N commonest load errors")
    parser.add_argument("--write-crafted", metavar="DIR", help="write the crafted attack files into DIR and exit")
    args = parser.parse_args(argv)
    if args.write_crafted:
        for path in write_all(args.write_crafted):
            print(path)
        return 0
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        campaign = run_campaign(args.cases, seed=args.seed, workers=args.workers, work=work, timeout=args.timeout,
                                mem_gib=args.mem_gib, import_share=args.import_share, keep=args.keep)
    print(campaign.summary())
    for shape, count in campaign.errors.most_common(args.errors):
        print(f"{count:>7}  {shape}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cases": campaign.cases, "seconds": round(campaign.seconds, 1),
                       "counts": {k: dict(v) for k, v in campaign.counts.items()}, "bad": campaign.bad,
                       "load_errors": dict(campaign.errors.most_common())}, f, indent=1)
    return 1 if any(b["outcome"] in BAD for b in campaign.bad) else 0


if __name__ == "__main__":
    sys.exit(main())
