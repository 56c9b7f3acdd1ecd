"""The `.npy` campaign's cases and steps: a fuzzed spec file through ``load``, ``validate`` and ``import``.

A case is ``<work>/case<n>/features/v.npy`` beside a ``labels.json``. ``load`` is ``npyfile.load_dict`` +
``check_features`` and checks what was decoded keeps the decoder's promises; ``validate`` is
``validate.validate_dataset``; ``import`` (a share of cases) is ``convert.import_npy`` with one in-process worker
and the lossless preset, compared with ``load_features``. Outcomes as in ``runner``: ``wrong`` here means it
loaded but broke a promise (an array not laid over its own bytes, more bytes than the file, unbounded notes, an
import whose store differs from what ``load_features`` returned).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .runner import MAX_MESSAGE, judge_message

MAX_NOTES = 20
LABELS = '[{"video_id": "v", "emotion": "neutral"}]'
NAME = "v.npy"


def prepare() -> None:
    """Imports a worker needs, done before its memory limit."""
    import herostore.convert
    import herostore.validate  # noqa: F401


def start(case: dict[str, Any]) -> dict[str, Any]:
    return {"root": Path(case["root"])}


def names(context: dict[str, Any]) -> tuple[str, ...]:
    """What an error message must name: the file."""
    return (NAME,)


def _owns_its_bytes(array: Any) -> bool:
    if array.size and not (array.flags.c_contiguous or array.flags.f_contiguous):
        return False
    if any(s <= 0 for s, n in zip(array.strides, array.shape) if n > 1):
        return False
    base = array
    while isinstance(getattr(base, "base", None), type(array)):
        base = base.base
    owner = base.base
    if isinstance(owner, memoryview):
        owner = owner.obj
    return owner is None or (isinstance(owner, (bytes, bytearray)) and len(owner) == array.nbytes)


def load(context: dict[str, Any]) -> tuple[str, str]:
    import numpy as np

    from herostore.npyfile import load_dict
    from herostore.safepickle import SLACK
    from herostore.schema import FLOAT_DTYPES, check_features

    path = context["root"] / "features" / NAME
    raw = load_dict(path)
    total = 0
    for key, value in raw.items():
        if isinstance(value, np.ndarray):
            if value.dtype.kind == "O" or not _owns_its_bytes(value):
                return "wrong", f"key {key[:50]!r}: an array not laid over its own bytes"
            total += value.nbytes
        elif isinstance(value, str):
            total += len(value.encode("utf-8"))
        else:
            return "wrong", f"key {key[:50]!r} holds a {type(value).__name__}"
    if total > path.stat().st_size + SLACK:
        return "wrong", f"{total} bytes decoded from a {path.stat().st_size}-byte file"
    checked = check_features(raw, source=str(path))
    if any(a.dtype not in FLOAT_DTYPES or a.size == 0 for a in checked.arrays.values()):
        return "wrong", "an array the spec checks should have refused"
    if len(checked.deviations) > MAX_NOTES or any(len(d) > MAX_MESSAGE for d in checked.deviations):
        return "wrong", f"{len(checked.deviations)} notes, longest {max(map(len, checked.deviations))} characters"
    return "ok", ""


def validate(context: dict[str, Any]) -> tuple[str, str]:
    from herostore.validate import validate_dataset

    report = validate_dataset(context["root"])
    if report.ok:
        return "ok", ""
    for finding in report.errors:
        text = f"{finding.where}: {finding.message}"
        if "\n" in text or len(text) > MAX_MESSAGE:
            return "traceback", f"finding is not one bounded line: {text[:300]}"
    return judge_message("\n".join(f"{f.where}: {f.message}" for f in report.errors).replace("\n", " | "), (NAME,))


def import_(context: dict[str, Any]) -> tuple[str, str]:
    import numpy as np

    from herostore.convert import import_npy
    from herostore.npyfile import load_features
    from herostore.store import FeatureStore

    root = context["root"]
    path = root / "features" / NAME
    out = root / "imported"
    report = import_npy(root, out, preset="lossless", workers=1, progress=False)
    if report.failed:
        detail = report.failed["v"]
        if not detail.startswith((str(path), "v: ")):
            return "traceback", detail[:MAX_MESSAGE]
        return judge_message(detail.replace(str(path), NAME), ("v",))
    expected = load_features(path)
    stored = FeatureStore(out / "features").read_video("v")
    if stored["transcript"] != expected.transcript or set(stored) - {"transcript"} != set(expected.arrays):
        return "wrong", "the store's keys or transcript differ from load_features"
    for key, array in expected.arrays.items():
        native = array.dtype.newbyteorder("=")
        if np.ascontiguousarray(array, native).tobytes() != np.ascontiguousarray(stored[key], native).tobytes():
            return "wrong", f"key {key!r}: the store differs from load_features"
    meta = (out / "features" / "v" / "zarr.json").stat().st_size
    if meta > 65536 + 6 * len(expected.transcript):
        return "wrong", f"the video's zarr.json is {meta} bytes"
    return "ok", ""


STEPS = {"load": load, "validate": validate, "import": import_}


def cases(n: int, *, seed: int, work: Path, import_share: float) -> Iterator[dict[str, Any]]:
    """``n`` fuzzed files made from the legitimate seeds, each written as a case folder under ``work``."""
    from .mutate import Mutator
    from .seeds import legit_files

    seeds = {name: data for name, data in legit_files().items() if len(data) < 200_000}
    mutator = Mutator(seeds, seed)
    choose = random.Random(seed + 1)
    for i in range(n):
        data, what = mutator.case()
        root = work / f"case{i}"
        (root / "features").mkdir(parents=True, exist_ok=True)
        (root / "features" / NAME).write_bytes(data)
        (root / "labels.json").write_text(LABELS)
        steps = ["load", "validate"] + (["import"] if choose.random() < import_share else [])
        yield {"id": i, "kind": "npy", "root": str(root), "steps": steps, "what": what}


def keep_case(case: dict[str, Any], keep: Path) -> None:
    """Copy a bad case's file into ``keep``."""
    import shutil

    shutil.copy(Path(case["root"]) / "features" / NAME, keep / f"case{case['id']}.npy")
