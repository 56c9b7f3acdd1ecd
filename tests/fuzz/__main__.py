"""Fuzz herostore's readers: spec `.npy` files, or stores.

    python -m tests.fuzz npy --cases 20000 --seed 0 --workers 2 --keep /tmp/fuzz-bad
    python -m tests.fuzz stores --cases 10000 --seed 0 --workers 2 --json stores.json --keep /tmp/fuzz-bad

``npy`` (the default when no campaign is named) mutates the legitimate files of ``tests/fuzz/seeds.py`` (bytes,
the `.npy` header, the pickle stream opcode by opcode; ``mutate.py``) and runs each case through ``load``,
``validate`` and, for a share of cases, ``import`` (``npy_steps.py``). ``stores`` mutates copies of valid stores
in every preset and format (``store_seeds.py``, ``store_mutate.py``) and runs each through herostore's reader,
``validate``, ``info``, ``HeroDataset`` and ``verify``, with zarr-python's read as the oracle
(``store_steps.py``). Every case runs in a worker subprocess under a time and a memory limit (``runner.py``).
Prints the outcome counts per step; exits 1 if any case crashed, hung, ran out of memory, raised a traceback or
returned wrong data. ``--keep`` collects those cases; ``--write-crafted DIR`` writes the hand-made attack files of
``tests/fuzz/crafted.py`` instead of fuzzing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from .crafted import write_all
from .runner import BAD, STORE_STEPS, UNJUDGED, run_campaign, run_store_campaign


def scratch_parent() -> str | None:
    """Where case folders go: memory (``/dev/shm``) where there is one, as a campaign creates and removes hundreds
    of thousands of small files; else the system's temporary folder."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    campaign = argv.pop(0) if argv and argv[0] in ("npy", "stores") else "npy"
    parser = argparse.ArgumentParser(prog=f"python -m tests.fuzz {campaign}", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per step of a case")
    parser.add_argument("--mem-gib", type=float, default=2.0 if campaign == "npy" else 3.0,
                        help="RLIMIT_AS of a worker")
    parser.add_argument("--work", help="scratch folder (default: a temporary one, in memory where possible)")
    parser.add_argument("--keep", help="folder to copy every bad case into")
    parser.add_argument("--json", help="write the counts and bad cases here")
    parser.add_argument("--errors", type=int, default=0, metavar="N", help="also print the N commonest errors")
    if campaign == "npy":
        parser.add_argument("--import-share", type=float, default=0.1, help="share of cases also imported")
        parser.add_argument("--write-crafted", metavar="DIR", help="write the crafted attack files into DIR and exit")
    else:
        parser.add_argument("--reference-share", type=float, default=0.1,
                            help="share of cases also read by zarr-python (always where a step returned other data)")
        parser.add_argument("--steps", default=",".join(STORE_STEPS), help="comma-separated steps to run")
    args = parser.parse_args(argv)
    if campaign == "npy" and args.write_crafted:
        for path in write_all(args.write_crafted):
            print(path)
        return 0
    with tempfile.TemporaryDirectory(dir=args.work or scratch_parent(), prefix="herostore-fuzz-") as work:
        common = {"seed": args.seed, "workers": args.workers, "work": work, "timeout": args.timeout,
                  "mem_gib": args.mem_gib, "keep": args.keep}
        if campaign == "npy":
            result = run_campaign(args.cases, import_share=args.import_share, **common)
        else:
            result = run_store_campaign(args.cases, reference_share=args.reference_share,
                                        steps=args.steps.split(","), **common)
    print(result.summary())
    for shape, count in result.errors.most_common(args.errors):
        print(f"{count:>7}  {shape}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"campaign": campaign, "command": " ".join(["python -m tests.fuzz", campaign, *argv]),
                       **result.to_json()}, f, indent=1)
    return 1 if any(b["outcome"] in BAD and b["step"] not in UNJUDGED for b in result.bad) else 0


if __name__ == "__main__":
    sys.exit(main())
