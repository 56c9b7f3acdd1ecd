"""MELD ``{train,dev,test}_sent_emo.csv``: one row per utterance, id from the dialogue and utterance numbers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..labels import Label, PathLike
from ._csv import Collector, KnownClasses, input_paths, read_csv

MELD_CLASSES: tuple[str, ...] = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")


def read_meld(paths: PathLike | Sequence[PathLike], *, id_prefix: str = "",
              allow_extra_classes: bool = False) -> tuple[list[Label], list[str]]:
    """MELD ``{train,dev,test}_sent_emo.csv``: id ``{id_prefix}dia{Dialogue_ID}_utt{Utterance_ID}``; returns the
    labels and notes.

    ``id_prefix`` may contain ``{split}``, replaced by the file name's part before ``_sent_emo``, which keeps ids
    unique when several splits are merged (MELD numbers dialogues from 0 in every split). An emotion outside
    ``MELD_CLASSES`` is an error naming the file and line, unless ``allow_extra_classes`` (then it is kept and
    counted in the notes).
    """
    out = Collector()
    known = KnownClasses("MELD", MELD_CLASSES, allow_extra_classes)
    for path in input_paths(paths):
        _, rows = read_csv(path, ("Utterance", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID"))
        prefix = id_prefix.replace("{split}", Path(path).name.split("_sent_emo")[0])
        for row in rows:
            vid = f"{prefix}dia{row.integer('Dialogue_ID')}_utt{row.integer('Utterance_ID')}"
            emotion = row.require("Emotion", f"an emotion label for {vid!r}")
            known.check(emotion, f"{row.where} ({vid!r}): column 'Emotion'")
            sentiment = row.get("Sentiment") or None
            out.add(Label(vid, emotion, sentiment, row.get("Utterance") or None), row.where)
    return out.labels, known.notes()
