"""The ``herostore`` command: argument parsing only, the work is in the library.

One module per command group (``convert``, ``inspect``, ``extract``, ``labels``, ``pack``); ``main`` runs every command
under one error policy (``common.run_command``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from . import convert, extract, inspect, labels, pack
from .common import run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herostore",
        description="Zarr storage for HERO multimodal emotion-recognition features.",
    )
    parser.add_argument("--version", action="version", version=f"herostore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    convert.add_parsers(sub)
    inspect.add_parsers(sub)
    extract.add_parser(sub)
    labels.add_parser(sub)
    pack.add_parsers(sub)
    p = sub.add_parser("demo", help="the whole pipeline on generated sample clips with tiny offline models",
                       description="Generate sample clips with sound, extract features into a store with "
                                   "random-weight test models, validate, export to .npy, import back, print info "
                                   "and load a batch from each format. Offline; a few minutes on 2 CPU cores.")
    p.add_argument("--workdir", default="herostore-demo", help="where the demo writes (default ./herostore-demo)")
    p.set_defaults(func=_run_demo)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(args.workdir)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args, f"herostore {args.command}")


if __name__ == "__main__":
    sys.exit(main())
