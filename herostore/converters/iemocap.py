"""IEMOCAP ``Session*/dialog/EmoEvaluation/*.txt``: one summary line per turn with its agreed emotion code."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ..errors import LabelError
from ..labels import Label, PathLike
from ._csv import Collector, counts, input_paths
from .generic_csv import ID_COLUMNS, LABEL_COLUMNS

# The first four follow the reference loader's emo2idx order (neutral, angry, happy, sad).
IEMOCAP_CLASSES: dict[str, tuple[str, ...]] = {
    "4": ("neutral", "angry", "happy", "sad"),
    "6": ("neutral", "angry", "happy", "sad", "excited", "frustrated"),
}
IEMOCAP_CODES: dict[str, str | None] = {
    "neu": "neutral", "hap": "happy", "exc": "excited", "sad": "sad", "ang": "angry", "fru": "frustrated",
    "sur": "surprise", "fea": "fear", "dis": "disgust", "oth": None, "xxx": None,
}
_TURN = re.compile(r"^\[\s*([-\d.]+)\s*-\s*([-\d.]+)\s*\]\s+(\S+)\s+(\S+)\s+\[[^\]]*\]\s*$")


def iemocap_classes(classes: int | str) -> list[str]:
    """The class list of the ``classes``-way setting (4 or 6)."""
    mode = str(classes)
    if mode not in IEMOCAP_CLASSES:
        raise LabelError(f"IEMOCAP classes {classes!r}: expected one of {', '.join(IEMOCAP_CLASSES)}")
    return list(IEMOCAP_CLASSES[mode])


def read_iemocap(paths: PathLike | Sequence[PathLike], *, classes: int | str = 4) -> tuple[list[Label], list[str]]:
    """IEMOCAP ``Session*/dialog/EmoEvaluation/*.txt`` files (directories are searched recursively); returns the
    labels and notes.

    ``classes=4`` keeps neutral, angry, happy, sad and merges excited into happy; ``classes=6`` keeps those and
    excited, frustrated. ``oth``/``xxx`` turns are skipped and other emotions dropped, both counted in the notes.
    """
    keep = set(iemocap_classes(classes))
    mode = str(classes)
    out = Collector()
    skipped: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    merged = 0
    for path in _evaluation_files(paths):
        try:
            text = path.read_text(encoding="utf-8-sig", errors="strict")
        except (OSError, UnicodeDecodeError) as e:
            raise LabelError(f"{path}: cannot read the EmoEvaluation file: {e}") from None
        for n, line in enumerate(text.splitlines(), 1):
            if not line.startswith("["):
                continue  # the header, blank lines and the per-evaluator "C-E1:" / "A-E1:" lines
            m = _TURN.match(line)
            if m is None:
                raise LabelError(f"{path}: line {n}: expected '[start - end]<TAB>turn id<TAB>emotion code<TAB>"
                                 f"[V, A, D]', found {line.strip()[:80]!r}")
            turn, code = m.group(3), m.group(4)
            where = f"{path}: line {n}"
            if code not in IEMOCAP_CODES:
                raise LabelError(f"{where} (turn {turn!r}): unknown emotion code {code!r}; "
                                 f"expected one of {', '.join(IEMOCAP_CODES)}")
            emotion = IEMOCAP_CODES[code]
            if emotion is None:
                skipped[code] += 1
                continue
            if mode == "4" and emotion == "excited":
                emotion, merged = "happy", merged + 1
            if emotion not in keep:
                dropped[emotion] += 1
                continue
            out.add(Label(turn, emotion), where)
    notes = []
    if skipped:
        notes.append(f"skipped {sum(skipped.values())} turns without an agreed emotion: {counts(skipped)}")
    if merged:
        notes.append(f"merged {merged} 'excited' turns into 'happy' ({mode}-way)")
    if dropped:
        notes.append(f"dropped {sum(dropped.values())} turns outside the {mode}-way classes: {counts(dropped)}")
    return out.labels, notes


def _evaluation_files(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    files: list[Path] = []
    for path in input_paths(paths):
        if path.is_dir():
            # Only files directly in EmoEvaluation/: its Categorical/, Attribute/, Self-evaluation/ subfolders hold
            # per-evaluator files in other formats; "._*" are macOS resource forks shipped in some copies.
            found = sorted(p for p in path.rglob("*.txt")
                           if p.parent.name == "EmoEvaluation" and not p.name.startswith("._"))
            if not found:
                raise LabelError(f"{path}: no EmoEvaluation/*.txt files found under this directory "
                                 f"(expected Session*/dialog/EmoEvaluation/*.txt)")
            files.extend(found)
        elif path.suffix.lower() == ".csv":
            raise LabelError(f"{path}: a CSV, not an EmoEvaluation .txt file; convert it with the 'csv' "
                             f"converter (columns {'/'.join(ID_COLUMNS)} and {'/'.join(LABEL_COLUMNS)})")
        elif not path.exists():
            raise LabelError(f"{path}: no such file or directory")
        else:
            files.append(path)
    return files
