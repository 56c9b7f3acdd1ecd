"""Any CSV (or TSV) with a video id column and an emotion column, for datasets without a converter of their own."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..labels import Label, PathLike
from ._csv import Collector, input_paths, pick_column, read_csv

ID_COLUMNS: tuple[str, ...] = ("video_id", "utterance_id", "name")
LABEL_COLUMNS: tuple[str, ...] = ("emotion", "label")
SENTIMENT_COLUMNS: tuple[str, ...] = ("sentiment",)
TEXT_COLUMNS: tuple[str, ...] = ("text",)


def read_generic_csv(paths: PathLike | Sequence[PathLike], *, id_col: str | None = None,
                     label_col: str | None = None, sentiment_col: str | None = None, text_col: str | None = None,
                     delimiter: str | None = None) -> tuple[list[Label], list[str]]:
    """Any CSV with an id and a label column; returns the labels and a note per file naming the columns used.

    Columns not given are looked up: id ``video_id``/``utterance_id``/``name``, label ``emotion``/``label``,
    and ``sentiment``/``text`` if present. Numeric sentiments become floats. ``delimiter`` defaults to a tab for
    ``.tsv`` files and a comma otherwise.
    """
    out = Collector()
    notes = []
    for path in input_paths(paths):
        sep = delimiter if delimiter is not None else ("\t" if path.suffix.lower() == ".tsv" else ",")
        header, rows = read_csv(path, (), sep)
        vid_c = pick_column(header, path, id_col, ID_COLUMNS, "video id")
        emo_c = pick_column(header, path, label_col, LABEL_COLUMNS, "emotion label")
        sen_c = pick_column(header, path, sentiment_col, SENTIMENT_COLUMNS, "sentiment", required=False)
        txt_c = pick_column(header, path, text_col, TEXT_COLUMNS, "text", required=False)
        used = [f"{role} {col!r}" for role, col in (("id", vid_c), ("emotion", emo_c), ("sentiment", sen_c),
                                                    ("text", txt_c)) if col]
        notes.append(f"{path.name}: columns {', '.join(used)}")
        for row in rows:
            vid = row.require(vid_c, "a video id")
            emotion = row.require(emo_c, f"an emotion label for {vid!r}")
            text = (row.get(txt_c) or None) if txt_c else None
            out.add(Label(vid, emotion, _sentiment(row.get(sen_c)) if sen_c else None, text), row.where)
    return out.labels, notes


def _sentiment(raw: str) -> str | float | None:
    """A finite number as a float, other text as it is, an empty cell as ``None``."""
    if not raw:
        return None
    try:
        number = float(raw)
    except ValueError:
        return raw
    return number if math.isfinite(number) else raw
