"""MER2023 / MER2024 label files: ``name, discrete[, valence]``, and the MER2024 transcriptions for the text."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import LabelError
from ..labels import Label, PathLike
from ._csv import Collector, KnownClasses, input_paths, read_csv

MER_CLASSES: tuple[str, ...] = ("neutral", "angry", "happy", "sad", "worried", "surprise")
MER_TEXT_LANGS: tuple[str, ...] = ("english", "chinese")
MER_NO_VALENCE = -10.0


def read_mer(paths: PathLike | Sequence[PathLike], *, text_lang: str = "english",
             allow_extra_classes: bool = False) -> tuple[list[Label], list[str]]:
    """MER2023 ``train-label.csv`` / MER2024 ``label-disdim.csv`` (``name, discrete[, valence]``), and
    optionally MER2024 ``label-transcription.csv`` (``name, chinese, english``) for the text; returns the labels
    and notes.

    Files are told apart by their header. Valence ``-10`` means none; any other valence becomes the sentiment.
    A label outside ``MER_CLASSES`` is an error naming the file and line, unless ``allow_extra_classes``: then it
    is kept and counted in the notes.
    """
    if text_lang not in MER_TEXT_LANGS:
        raise LabelError(f"text_lang {text_lang!r}: expected one of {', '.join(MER_TEXT_LANGS)}")
    out = Collector()
    known = KnownClasses("MER", MER_CLASSES, allow_extra_classes)
    texts: dict[str, str] = {}
    text_sources: dict[str, str] = {}
    for path in input_paths(paths):
        header, rows = read_csv(path, ("name",))
        if "discrete" in header:
            for row in rows:
                name = row.require("name", "a sample name")
                emotion = row.require("discrete", "an emotion label")
                known.check(emotion, f"{row.where} (name {name!r}): column 'discrete'")
                valence = row.number("valence", f" (name {name!r})") if "valence" in header else None
                sentiment = None if valence is None or valence == MER_NO_VALENCE else valence
                out.add(Label(name, emotion, sentiment), row.where)
        elif any(lang in header for lang in MER_TEXT_LANGS):
            if text_lang not in header:
                raise LabelError(f"{path}: missing column {text_lang!r} for text_lang={text_lang!r} "
                                 f"(header has: {', '.join(header)})")
            for row in rows:
                name = row.require("name", "a sample name")
                if name in text_sources:
                    raise LabelError(f"duplicate transcription for {name!r}: {text_sources[name]} and {row.where}")
                text_sources[name] = row.where
                texts[name] = row.get(text_lang)
        else:
            raise LabelError(f"{path}: neither a MER label file (columns name, discrete, valence) nor a "
                             f"transcription file (columns name, chinese, english); header has: {', '.join(header)}")
    notes = known.notes()
    labels = out.labels
    if text_sources:
        labels = [Label(x.video_id, x.emotion, x.sentiment, texts.get(x.video_id) or None) for x in labels]
        no_text = sum(1 for x in labels if x.text is None)
        if no_text:
            notes.append(f"{no_text} labels have no {text_lang} transcription (text left empty)")
        unused = len(set(texts) - set(out.sources))
        if unused:
            notes.append(f"ignored {unused} transcription rows with no label")
    return labels, notes
