"""The ``herostore`` command: argument parsing only, the work is in the library."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import __version__
from .cli_extract import add_parser as add_extract_parser
from .cli_labels import add_parser as add_labels_parser
from .errors import HerostoreError
from .presets import DEFAULT_PRESET, PRESETS


def _add_parallel_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel worker processes on this machine (default: CPU count, at most 8)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="address of an existing dask scheduler (e.g. tcp://10.0.0.5:8786) to run on instead")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _report(report, what: str = "videos") -> int:
    print(report.summary(what))
    return 0 if report.ok else 1


def cmd_import(args: argparse.Namespace) -> int:
    from .convert import import_npy

    report = import_npy(args.src, args.dst, preset=args.preset, overwrite=args.overwrite, strict=args.strict,
                        workers=args.workers, scheduler=args.scheduler, progress=not args.quiet)
    return _report(report)


def cmd_export(args: argparse.Namespace) -> int:
    from .convert import export_npy

    report = export_npy(args.src, args.dst, overwrite=args.overwrite, workers=args.workers,
                        scheduler=args.scheduler, progress=not args.quiet)
    return _report(report)


def cmd_validate(args: argparse.Namespace) -> int:
    from .validate import validate_dataset

    report = validate_dataset(args.dataset, check_values=not args.no_values)
    print(report.to_json() if args.json else report.render())
    return 0 if report.ok else 1


def cmd_info(args: argparse.Namespace) -> int:
    from .validate import render_info, store_info

    info = store_info(args.store)
    print(json.dumps(info, indent=1) if args.json else render_info(info))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from .stats import compute_stats

    stats = compute_stats(args.store, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet)
    for key, s in stats.items():
        print(f"{key}: {s['count']} rows, {len(s['mean'])} dims")
    print(f"stats recorded in {args.store}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.workdir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herostore",
        description="Zarr storage for HERO multimodal emotion-recognition features.",
    )
    parser.add_argument("--version", action="version", version=f"herostore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    presets_help = "; ".join(f"{name}: {p.description}" for name, p in PRESETS.items())

    p = sub.add_parser("import-npy", help="spec dataset of .npy dicts -> herostore store",
                       description="Convert a spec dataset_root (features/*.npy, labels.json, classes.json) into "
                                   "DST/features as a herostore store; label files are copied. Resumes: complete "
                                   "videos are skipped unless --overwrite.")
    p.add_argument("src", help="spec dataset_root, or its features/ folder")
    p.add_argument("dst", help="output dataset_root (the store is DST/features)")
    p.add_argument("--preset", default=DEFAULT_PRESET,
                   help=f"precision/compression (default {DEFAULT_PRESET}); {presets_help}; bitround:N keeps N bits")
    p.add_argument("--overwrite", action="store_true", help="replace videos already in the store")
    p.add_argument("--strict", action="store_true", help="fail a video on any deviation from the spec")
    _add_parallel_flags(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export-npy", help="herostore store -> spec dataset of .npy dicts",
                       description="Write every video of a store as a spec dict .npy (float32) into DST/features; "
                                   "label files are copied.")
    p.add_argument("src", help="dataset_root whose features/ is a store, or the store itself")
    p.add_argument("dst", help="output dataset_root")
    p.add_argument("--overwrite", action="store_true", help="replace .npy files that exist")
    _add_parallel_flags(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("validate", help="check a dataset against the spec (exit 0 only when clean)")
    p.add_argument("dataset", help="spec dataset_root, features as .npy files or a store")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--no-values", action="store_true", help="skip the NaN/Inf scan of every value")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("info", help="videos, bytes per modality, compression, sequence lengths of a store")
    p.add_argument("store", help="a store, or a dataset_root whose features/ is one")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("stats", help="compute per-modality mean/std into the store (for normalisation)")
    p.add_argument("store")
    _add_parallel_flags(p)
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("demo", help="the whole pipeline on generated sample clips with tiny offline models",
                       description="Generate sample clips with sound, extract features into a store with "
                                   "random-weight test models, validate, export to .npy, import back, print info "
                                   "and load a batch from each format. Offline; a few minutes on 2 CPU cores.")
    p.add_argument("--workdir", default="herostore-demo", help="where the demo writes (default ./herostore-demo)")
    p.set_defaults(func=cmd_demo)

    add_extract_parser(sub)
    add_labels_parser(sub)
    return parser


def _describe_os_error(exc: OSError) -> str:
    """One line naming the path(s) and the reason, e.g. ``out/features: Not a directory``."""
    if exc.filename is None:
        text = str(exc) or type(exc).__name__
    else:
        paths = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else str(exc.filename)
        text = f"{paths}: {exc.strerror or type(exc).__name__}"
    return text.replace("\n", " ")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except HerostoreError as exc:
        print(f"herostore {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user gave that cannot be read or written: no traceback for that
        print(f"herostore {args.command}: error: {_describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"herostore {args.command}: interrupted; the store stays readable, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
