"""CMU-MOSEI: a CSV of sentiment scores and six emotion intensities per clip; the emotion is the strongest one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import LabelError
from ..labels import Label, PathLike
from ._csv import Collector, input_paths, read_csv

MOSEI_EMOTIONS: tuple[str, ...] = ("happiness", "sadness", "anger", "fear", "disgust", "surprise")
MOSEI_CLASSES: tuple[str, ...] = ("neutral",) + MOSEI_EMOTIONS
# CMU-MultimodalSDK's label CSVs name two of the intensity columns differently (happy, sad, anger, surprise,
# disgust, fear); either spelling is read, the classes keep the names above.
MOSEI_ALIASES: dict[str, str] = {"happiness": "happy", "sadness": "sad"}


def read_mosei(paths: PathLike | Sequence[PathLike]) -> tuple[list[Label], list[str]]:
    """CMU-MOSEI: a CSV with ``video_id`` (or ``video`` + ``clip``/``segment``), ``sentiment`` in [-3, 3] and
    the six emotion intensities, named happiness, sadness, anger, fear, disgust, surprise or, as the
    CMU-MultimodalSDK does, happy, sad, anger, surprise, disgust, fear (any column order); returns the labels and
    notes. The emotion is the strongest one, ``neutral`` when all are 0; ties go to the first in the order
    happiness, sadness, anger, fear, disgust, surprise and are counted in the notes.
    """
    out = Collector()
    ties = 0
    no_sentiment = 0
    for path in input_paths(paths):
        header, rows = read_csv(path, ("sentiment",))
        columns = _intensity_columns(header, path)
        if "video_id" in header:
            id_cols: tuple[str, ...] = ("video_id",)
        elif "video" in header and ("clip" in header or "segment" in header):
            id_cols = ("video", "clip" if "clip" in header else "segment")
        else:
            raise LabelError(f"{path}: missing column 'video_id' (or 'video' with 'clip'/'segment'); "
                             f"header has: {', '.join(header)}")
        for row in rows:
            vid = "_".join(row.require(c, "a video id part") for c in id_cols)
            context = f" (video_id {vid!r})"
            sentiment = row.number("sentiment", context)
            if sentiment is None:
                no_sentiment += 1
            elif not -3.0 <= sentiment <= 3.0:
                raise LabelError(f"{row.where}{context}: column 'sentiment': expected a score in [-3, 3], "
                                 f"found {row.get('sentiment')!r}")
            intensities = []
            for column in columns:
                value = row.number(column, context)
                if value is None or value < 0:
                    raise LabelError(f"{row.where}{context}: column {column!r}: expected an intensity >= 0, "
                                     f"found {row.get(column)!r}")
                intensities.append(value)
            top = max(intensities)
            if top == 0:
                emotion = "neutral"
            else:
                emotion = MOSEI_EMOTIONS[intensities.index(top)]
                ties += intensities.count(top) > 1
            text = (row.get("text") or None) if "text" in header else None
            out.add(Label(vid, emotion, sentiment, text), row.where)
    notes = []
    if ties:
        notes.append(f"{ties} clips had tied strongest emotions; took the first in the order "
                     f"{', '.join(MOSEI_EMOTIONS)}")
    if no_sentiment:
        notes.append(f"{no_sentiment} clips have no sentiment score (left empty)")
    return out.labels, notes


def _intensity_columns(header: Sequence[str], path: Path) -> list[str]:
    """The intensity column of each of ``MOSEI_EMOTIONS``, in that order, under either spelling."""
    expected = ", ".join(f"{e} (or {MOSEI_ALIASES[e]})" if e in MOSEI_ALIASES else e for e in MOSEI_EMOTIONS)
    columns = []
    for emotion in MOSEI_EMOTIONS:
        found = [c for c in (emotion, MOSEI_ALIASES.get(emotion)) if c is not None and c in header]
        if not found:
            alias = f" (or {MOSEI_ALIASES[emotion]!r})" if emotion in MOSEI_ALIASES else ""
            raise LabelError(f"{path}: missing column {emotion!r}{alias} (header has: {', '.join(header)}); "
                             f"expected sentiment and the six emotion intensities {expected}")
        if len(found) > 1:
            raise LabelError(f"{path}: both {found[0]!r} and {found[1]!r} columns; they are two names of one "
                             f"emotion intensity, expected one of them")
        columns.append(found[0])
    return columns
