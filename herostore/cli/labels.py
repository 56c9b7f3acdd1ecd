"""The ``herostore labels`` subcommand: argument parsing only; the work is in ``herostore.labels``.

    herostore labels {mer,meld,iemocap,mosei,csv} INPUT... --out DATASET_ROOT [options]

writes ``DATASET_ROOT/labels.json`` and ``DATASET_ROOT/classes.json`` and prints one summary line.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import LabelError
from ..labels import convert, write_classes, write_labels

_EXTRA_HELP = ("accept labels outside the dataset's class list, appended as new classes (default: such a label is "
               "an error, so a typo cannot become a class)")
# Per format: (flag, keyword of the converter, extra argparse settings).
_OPTIONS: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "mer": [("--text-lang", "text_lang", {"choices": ["english", "chinese"], "default": "english",
                                          "help": "transcription column used for the text (default english)"}),
            ("--extra-classes", "allow_extra_classes", {"action": "store_true", "help": _EXTRA_HELP})],
    "meld": [("--id-prefix", "id_prefix", {"default": "", "help": "prefix for every video id; '{split}' becomes "
                                           "train/dev/test from the file name, e.g. '{split}_'"}),
             ("--extra-classes", "allow_extra_classes", {"action": "store_true", "help": _EXTRA_HELP})],
    "iemocap": [("--classes", "classes", {"choices": ["4", "6"], "default": "4",
                                          "help": "4-way (excited merged into happy) or 6-way (default 4)"})],
    "mosei": [],
    "csv": [
        ("--id-col", "id_col", {"help": "video id column (default: video_id, utterance_id or name)"}),
        ("--label-col", "label_col", {"help": "emotion column (default: emotion or label)"}),
        ("--sentiment-col", "sentiment_col", {"help": "sentiment column (default: sentiment, if present)"}),
        ("--text-col", "text_col", {"help": "text column (default: text, if present)"}),
        ("--delimiter", "delimiter", {"type": lambda d: "\t" if d in ("tab", "\\t") else d,
                                      "help": "field delimiter, 'tab' for a tab (default: tab for .tsv, else comma)"}),
    ],
}
_HELP = {
    "mer": "MER2023 train-label.csv / MER2024 label-disdim.csv [+ label-transcription.csv]",
    "meld": "MELD {train,dev,test}_sent_emo.csv",
    "iemocap": "IEMOCAP EmoEvaluation .txt files or the folders holding them",
    "mosei": "CMU-MOSEI CSV with sentiment and six emotion intensities",
    "csv": "any CSV with an id and an emotion column",
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``labels`` subcommand to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    parser = subparsers.add_parser("labels", help="convert a dataset's label files to labels.json + classes.json",
                                   description="Convert a dataset's label files to the spec's labels.json and "
                                               "classes.json under DATASET_ROOT.")
    kinds = parser.add_subparsers(dest="kind", metavar="FORMAT", required=True)
    for kind, options in _OPTIONS.items():
        sub = kinds.add_parser(kind, help=_HELP[kind], description=_HELP[kind])
        sub.add_argument("inputs", nargs="+", metavar="INPUT", type=Path, help="label files (or folders)")
        sub.add_argument("--out", required=True, type=Path, metavar="DATASET_ROOT",
                         help="dataset root that receives labels.json and classes.json")
        sub.add_argument("--force", action="store_true", help="overwrite an existing labels.json / classes.json")
        for flag, dest, settings in options:
            sub.add_argument(flag, dest=dest, **settings)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Convert, write both files, print one summary line; return the exit code."""
    options = {dest: getattr(args, dest) for _, dest, _ in _OPTIONS[args.kind] if getattr(args, dest) is not None}
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise LabelError(f"--out {out}: exists and is not a folder; expected a dataset root folder")
    targets = (out / "labels.json", out / "classes.json")
    if not args.force:
        existing = [str(t) for t in targets if t.exists()]
        if existing:
            raise LabelError(f"{', '.join(existing)} already exists; pass --force to overwrite")
    report: list[str] = []
    labels, classes = convert(args.kind, args.inputs, report=report, **options)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
        reason = f"{blocker} is a file, not a folder" if blocker is not None else (exc.strerror or str(exc))
        raise LabelError(f"--out {out}: cannot create the dataset root: {reason}") from None
    write_classes(targets[1], classes)
    write_labels(targets[0], labels)
    counts = Counter(label.emotion for label in labels)
    per_class = ", ".join(f"{c} {counts[c]}" for c in classes)
    notes = "".join(f"; {note}" for note in report)
    print(f"wrote {len(labels)} labels in {len(classes)} classes ({per_class}) to {targets[0]} and "
          f"{targets[1].name}{notes}")
    return 0
