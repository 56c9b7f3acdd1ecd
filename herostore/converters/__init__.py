"""Converters from the label files datasets ship to the spec's labels and classes, and their registry.

``convert(kind, paths, **options)`` runs one. ``CONVERTERS`` lists every converter with its help, its options
(the ``herostore labels`` flags are built from them) and the rule that sets its class list. Rows a converter
skips, drops or merges are counted in the notes it returns, never dropped silently.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import LabelError
from ..labels import Label, PathLike, check_labels_against_classes, derive_classes
from ._csv import input_paths
from .generic_csv import ID_COLUMNS, LABEL_COLUMNS, SENTIMENT_COLUMNS, TEXT_COLUMNS, read_generic_csv
from .iemocap import IEMOCAP_CLASSES, iemocap_classes, read_iemocap
from .meld import MELD_CLASSES, read_meld
from .mer import MER_CLASSES, MER_TEXT_LANGS, read_mer
from .mosei import MOSEI_CLASSES, read_mosei

__all__ = [
    "CONVERTERS",
    "IEMOCAP_CLASSES",
    "MELD_CLASSES",
    "MER_CLASSES",
    "MOSEI_CLASSES",
    "Conversion",
    "Converter",
    "Option",
    "convert",
    "read_generic_csv",
    "read_iemocap",
    "read_meld",
    "read_mer",
    "read_mosei",
]


class Conversion(NamedTuple):
    """What a converter returns: the labels, their class list (its order fixes the indexes), notes on rows."""

    labels: list[Label]
    classes: list[str]
    notes: list[str]


@dataclass(frozen=True)
class Option:
    """A keyword of a converter and its command-line flag; the default is the one in the converter's signature."""

    name: str
    flag: str
    help: str
    choices: tuple[str, ...] | None = None
    switch: bool = False  # a flag taking no value that sets the keyword to True
    parse: Callable[[str], Any] | None = None  # command-line text to the keyword's value


ClassRule = Callable[[list[Label], Mapping[str, Any]], list[str]]


@dataclass(frozen=True)
class Converter:
    """One dataset's converter: ``read(paths, **options) -> (labels, notes)``, and the rule that gives the class
    list from the labels and the options."""

    name: str
    help: str
    read: Callable[..., tuple[list[Label], list[str]]]
    classes: ClassRule
    options: tuple[Option, ...] = ()

    @property
    def defaults(self) -> dict[str, Any]:
        """Each option's default, taken from the signature of ``read``."""
        params = inspect.signature(self.read).parameters
        return {option.name: params[option.name].default for option in self.options}

    def __call__(self, paths: PathLike | Sequence[PathLike], **options: Any) -> Conversion:
        """Read ``paths``, set the class list and check every label is in it."""
        defaults = self.defaults
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise LabelError(f"{self.name}: unknown option(s) {', '.join(unknown)}; "
                             f"accepted: {', '.join(defaults) or 'none'}")
        settings = {**defaults, **options}
        labels, notes = self.read(paths, **settings)
        if not labels:
            raise LabelError(f"{self.name}: no labels found in {', '.join(str(p) for p in input_paths(paths))}")
        classes = self.classes(labels, settings)
        check_labels_against_classes(labels, classes, f"{self.name} labels")
        return Conversion(labels, classes, notes)


def _listed_then_extra(listed: Sequence[str]) -> ClassRule:
    """The dataset's list, then the other emotions found (there are some only with ``allow_extra_classes``),
    sorted."""
    def rule(labels: list[Label], options: Mapping[str, Any]) -> list[str]:
        return list(listed) + sorted({label.emotion for label in labels} - set(listed))
    return rule


def _fixed(classes: Sequence[str]) -> ClassRule:
    return lambda labels, options: list(classes)


def _derived(labels: list[Label], options: Mapping[str, Any]) -> list[str]:
    return derive_classes(labels)


def _delimiter(text: str) -> str:
    return "\t" if text in ("tab", "\\t") else text


_EXTRA_CLASSES = Option("allow_extra_classes", "--extra-classes", switch=True,
                        help="accept labels outside the dataset's class list, appended as new classes (default: "
                             "such a label is an error, so a typo cannot become a class)")

CONVERTERS: dict[str, Converter] = {converter.name: converter for converter in (
    Converter("mer", "MER2023 train-label.csv / MER2024 label-disdim.csv [+ label-transcription.csv]",
              read_mer, _listed_then_extra(MER_CLASSES), (
                  Option("text_lang", "--text-lang", "transcription column used for the text",
                         choices=MER_TEXT_LANGS),
                  _EXTRA_CLASSES)),
    Converter("meld", "MELD {train,dev,test}_sent_emo.csv", read_meld, _listed_then_extra(MELD_CLASSES), (
        Option("id_prefix", "--id-prefix", "prefix for every video id; '{split}' becomes train/dev/test from the "
                                           "file name, e.g. '{split}_'"),
        _EXTRA_CLASSES)),
    Converter("iemocap", "IEMOCAP EmoEvaluation .txt files or the folders holding them", read_iemocap,
              lambda labels, options: iemocap_classes(options["classes"]), (
                  Option("classes", "--classes", "4-way (excited merged into happy) or 6-way",
                         choices=tuple(IEMOCAP_CLASSES)),)),
    Converter("mosei", "CMU-MOSEI CSV with sentiment and six emotion intensities", read_mosei,
              _fixed(MOSEI_CLASSES)),
    Converter("csv", "any CSV with an id and an emotion column", read_generic_csv, _derived, (
        Option("id_col", "--id-col", f"video id column (default: the first of {', '.join(ID_COLUMNS)})"),
        Option("label_col", "--label-col", f"emotion column (default: the first of {', '.join(LABEL_COLUMNS)})"),
        Option("sentiment_col", "--sentiment-col", f"sentiment column (default: {', '.join(SENTIMENT_COLUMNS)}, "
                                                   f"if present)"),
        Option("text_col", "--text-col", f"text column (default: {', '.join(TEXT_COLUMNS)}, if present)"),
        Option("delimiter", "--delimiter", "field delimiter, 'tab' for a tab (default: tab for .tsv, else comma)",
               parse=_delimiter))),
)}


def convert(kind: str, paths: PathLike | Sequence[PathLike], **options: Any) -> Conversion:
    """Run the ``kind`` converter over ``paths``; return the labels, the dataset's class list and notes.

    Class order: the dataset's usual list (MER, MELD, IEMOCAP, MOSEI), followed for MER and MELD by the labels
    outside it, sorted, when ``allow_extra_classes=True`` (without it such a label is an error naming its file
    and line); sorted labels for ``csv``. The notes count the rows skipped, dropped or merged.
    """
    converter = CONVERTERS.get(kind)
    if converter is None:
        raise LabelError(f"unknown label format {kind!r}: expected one of {', '.join(CONVERTERS)}")
    return converter(paths, **options)
