"""The spec's per-video dict `.npy` files, written and read safely.

Writing is plain ``np.save`` of a dict, so files load with
``np.load(path, allow_pickle=True).item()``. Reading never runs pickled code and
never trusts the stream: ``herostore.safepickle`` checks its opcodes, allows only the
few globals that numpy arrays, dtypes, dicts and strings need, builds arrays only over
exactly the bytes the file gives, and bounds nesting and the decoded size.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from . import urls
from .errors import SpecError, VideoNotFoundError
from .fsutil import atomic_output
from .safepickle import clip, load_pickled_dict
from .schema import ARRAY_KEYS, SPEC_DTYPE, TRANSCRIPT_KEY, CheckedFeatures, check_features

SUFFIX = ".npy"


def load_dict(path: str | os.PathLike, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a spec `.npy` dict (a path, or a URL read through fsspec) without running arbitrary pickled code."""
    if urls.is_url(path):
        try:
            data = urls.read_bytes(path, storage_options)
        except FileNotFoundError:
            raise VideoNotFoundError(f"{urls.display(path)}: no such feature file") from None
        return read_dict(io.BytesIO(data), urls.display(path))
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return read_dict(f, str(path))
    except FileNotFoundError:
        raise VideoNotFoundError(f"{path}: no such feature file") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a directory, expected a feature .npy file") from None


def read_dict(f: BinaryIO, source: str) -> dict[str, Any]:
    """Read a spec `.npy` dict from an open binary file (see ``load_dict`` and ``herostore.safepickle``)."""
    try:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"format version {version[0]}.{version[1]}, expected 1.0 or 2.0")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
    except Exception as exc:  # noqa: BLE001 - numpy's header parser raises several types on a corrupt header
        kind = "" if isinstance(exc, (ValueError, EOFError)) else f"{type(exc).__name__}: "
        raise SpecError(f"{source}: not a .npy file ({kind}{clip(str(exc))})") from None
    if dtype != np.dtype(object) or shape != ():
        raise SpecError(
            f"{source}: holds a {dtype} array of shape {list(shape)}, expected a pickled dict of features (spec §2)"
        )
    return load_pickled_dict(f, source)


def load_features(path: str | os.PathLike, *, strict: bool = False,
                  storage_options: Mapping[str, Any] | None = None) -> CheckedFeatures:
    """Read and check one feature file (a path or a URL); the result lists how it deviates from the spec."""
    return check_features(load_dict(path, storage_options), source=urls.display(path), strict=strict)


def spec_dict(features: Mapping[str, Any] | CheckedFeatures, *, source: str = "features") -> dict[str, Any]:
    """The spec's dict: float32 arrays and a str transcript; `au` only when present.

    ``source`` (the file or video the features come from) names them in errors.
    """
    if isinstance(features, CheckedFeatures):
        arrays, transcript = features.arrays, features.transcript
    else:
        arrays = {k: features[k] for k in ARRAY_KEYS if k in features}
        transcript = features.get(TRANSCRIPT_KEY)
    if not isinstance(transcript, str):
        raise SpecError(f"{source}: key 'transcript' must be str, found {type(transcript).__name__}")
    out: dict[str, Any] = {k: np.ascontiguousarray(np.asarray(v), dtype=SPEC_DTYPE) for k, v in arrays.items()}
    out[TRANSCRIPT_KEY] = transcript
    return out


def save_features(
    path: str | os.PathLike, features: Mapping[str, Any] | CheckedFeatures, *, source: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Write a spec dict `.npy` atomically: a temp file, then a rename; a URL gets one PUT of the whole file.

    ``source`` names where the features come from in errors (default: ``path``).
    """
    payload = spec_dict(features, source=urls.display(path) if source is None else source)
    if urls.is_url(path):
        buffer = io.BytesIO()
        np.save(buffer, payload, allow_pickle=True)
        urls.write_bytes(path, buffer.getvalue(), storage_options)
        return
    with atomic_output(Path(path)) as f:
        np.save(f, payload, allow_pickle=True)


def list_video_ids(folder: str | os.PathLike) -> list[str]:
    """Video ids of a spec `features/` folder (file names without `.npy`), sorted."""
    with os.scandir(folder) as entries:
        return sorted(
            e.name[: -len(SUFFIX)]
            for e in entries
            if e.name.endswith(SUFFIX) and not e.name.startswith(".") and e.is_file()
        )
