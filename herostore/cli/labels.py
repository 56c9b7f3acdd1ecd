"""The ``herostore labels`` subcommand: argument parsing only; the work is in ``herostore.converters`` (reading a
dataset's label files) and ``herostore.labels`` (writing the label set).

    herostore labels {mer,meld,iemocap,mosei,csv} INPUT... --out DATASET_ROOT [options]

writes ``DATASET_ROOT/labels.json`` and ``DATASET_ROOT/classes.json`` and prints one summary line. The formats and
their flags come from the converter registry.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from ..converters import CONVERTERS, Option, convert
from ..errors import LabelFileExistsError
from ..labels import write_label_set
from ..layout import CLASSES_FILE
from ..urls import display
from .common import add_storage_flag, help_text, storage_options


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``labels`` subcommand to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    parser = subparsers.add_parser("labels", help="convert a dataset's label files to labels.json + classes.json",
                                   description="Convert a dataset's label files to the spec's labels.json and "
                                               "classes.json under DATASET_ROOT.")
    kinds = parser.add_subparsers(dest="kind", metavar="FORMAT", required=True)
    for converter in CONVERTERS.values():
        sub = kinds.add_parser(converter.name, help=help_text(converter.help), description=converter.help)
        sub.add_argument("inputs", nargs="+", metavar="INPUT", type=Path, help="label files (or folders)")
        sub.add_argument("--out", required=True, metavar="DATASET_ROOT",
                         help="dataset root that receives labels.json and classes.json (a path or a URL)")
        sub.add_argument("--force", action="store_true",
                         help="replace an existing labels.json / classes.json that differs (one with the same "
                              "content is kept either way)")
        add_storage_flag(sub)
        defaults = converter.defaults
        for option in converter.options:
            sub.add_argument(option.flag, dest=option.name, **_argparse_settings(option, defaults[option.name]))
    parser.set_defaults(func=run)
    return parser


def _argparse_settings(option: Option, default: Any) -> dict[str, Any]:
    """argparse keywords for ``option``; no argparse default, so an absent flag leaves the converter's own."""
    if option.switch:
        return {"action": "store_true", "default": None, "help": help_text(option.help)}
    shown = f" (default {default})" if default not in (None, "") else ""
    settings: dict[str, Any] = {"help": help_text(option.help + shown)}
    if option.choices is not None:
        settings["choices"] = list(option.choices)
    if option.parse is not None:
        settings["type"] = option.parse
    return settings


def run(args: argparse.Namespace) -> int:
    """Convert, write both files, print one summary line; return the exit code."""
    names = [option.name for option in CONVERTERS[args.kind].options]
    options = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    labels, classes, notes = convert(args.kind, args.inputs, **options)
    try:
        labels_path, _ = write_label_set(args.out, labels, classes, overwrite=args.force,
                                         storage_options=storage_options(args))
    except LabelFileExistsError as exc:
        raise LabelFileExistsError(f"{exc}; pass --force to replace") from None
    counts = Counter(label.emotion for label in labels)
    per_class = ", ".join(f"{c} {counts[c]}" for c in classes)
    print(f"wrote {len(labels)} labels in {len(classes)} classes ({per_class}) to {display(labels_path)} and "
          f"{CLASSES_FILE}{''.join(f'; {note}' for note in notes)}")
    return 0
