"""The HERO feature spec, declared once.

Every other module reads the modality names, their last dimensions and which are
optional from here. ``check_features`` turns a feature dict as found in the wild
into the spec's form and lists every way it deviated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import SpecError


@dataclass(frozen=True)
class Modality:
    name: str
    dim: int
    optional: bool = False
    description: str = ""


MODALITIES: tuple[Modality, ...] = (
    Modality("video_mae", 1024, description="visual motion features, VideoMAE-large"),
    Modality("clip", 1408, description="visual global features, EVA ViT-g/14 patches"),
    Modality("hubert", 1024, description="audio features, HuBERT-large"),
    Modality("bert", 768, description="text embedding features, BERT-base"),
    Modality("au", 1024, optional=True, description="facial action-unit features (zero-filled when missing)"),
)
MODALITY_BY_NAME: dict[str, Modality] = {m.name: m for m in MODALITIES}
ARRAY_KEYS: tuple[str, ...] = tuple(m.name for m in MODALITIES)
REQUIRED_ARRAY_KEYS: tuple[str, ...] = tuple(m.name for m in MODALITIES if not m.optional)
TRANSCRIPT_KEY = "transcript"
SPEC_DTYPE = np.dtype("float32")
FLOAT_DTYPES: tuple[np.dtype, ...] = (np.dtype("float16"), SPEC_DTYPE, np.dtype("float64"))  # what a store keeps
MAX_LISTED_KEYS = 8  # extra keys named one by one in deviations; more are summarised
MAX_KEY_LABEL = 100  # characters of a key name quoted in a message
FEATURE_KEYS: tuple[str, ...] = ARRAY_KEYS + (TRANSCRIPT_KEY,)


def check_modalities(names: Any) -> tuple[str, ...]:
    """Validate a user's choice of modalities; ``None`` means all of them."""
    if names is None:
        return ARRAY_KEYS
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    unknown = [n for n in names if n not in MODALITY_BY_NAME]
    if unknown:
        raise SpecError(f"unknown modality {unknown[0]!r}: expected one of {', '.join(ARRAY_KEYS)}")
    return names


@dataclass
class CheckedFeatures:
    """A feature dict after ``check_features``: arrays, transcript and what deviated."""

    arrays: dict[str, np.ndarray]
    transcript: str
    deviations: list[str] = field(default_factory=list)
    extra_keys: list[str] = field(default_factory=list)


def check_features(
    features: Mapping[str, Any],
    *,
    source: str = "features",
    strict: bool = False,
) -> CheckedFeatures:
    """Check a feature dict against the spec.

    Unambiguous variants are normalised and reported: a leading batch axis of 1
    (``[1, T, D]`` → ``[T, D]``). Everything else is kept faithfully and reported:
    float64/float16 dtypes, last dims that differ from the spec, 3-D clip arrays.
    What cannot be stored is an error: a missing required key, a non-array value,
    a 0-d/1-d array, a non-numeric dtype, a transcript that is not a string.
    ``strict`` turns every deviation into an error.
    """
    if not isinstance(features, Mapping):
        raise SpecError(f"{source}: expected a dict of features, found {type(features).__name__}")
    deviations: list[str] = []
    arrays: dict[str, np.ndarray] = {}
    for modality in MODALITIES:
        key = modality.name
        if key not in features:
            if not modality.optional:
                raise SpecError(f"{source}: missing required key {key!r} (expected [T, {modality.dim}] float32)")
            continue
        arrays[key] = _check_array(features[key], modality, source, deviations)
    if TRANSCRIPT_KEY not in features:
        raise SpecError(f"{source}: missing required key 'transcript' (expected str)")
    transcript = features[TRANSCRIPT_KEY]
    if isinstance(transcript, np.ndarray) and transcript.shape == () and transcript.dtype.kind == "U":
        transcript = str(transcript)
        deviations.append(f"{source}: key 'transcript' is a 0-d numpy string; read as str")
    if not isinstance(transcript, str):
        raise SpecError(f"{source}: key 'transcript' must be str, found {type(transcript).__name__}")
    extra = sorted((k for k in features if k not in FEATURE_KEYS), key=key_label)
    labels = [key_label(k) for k in extra]
    if len(labels) > MAX_LISTED_KEYS:
        shown = ", ".join(labels[:MAX_LISTED_KEYS])
        deviations.append(f"{source}: {len(labels)} keys are not in the spec ({shown}, ...); ignored")
    else:
        deviations += [f"{source}: key {label} is not in the spec; ignored" for label in labels]
    names = [k[:MAX_KEY_LABEL] if isinstance(k, str) else label for k, label in zip(extra, labels)]
    if strict and deviations:
        raise SpecError(deviations[0] + " (strict mode)")
    return CheckedFeatures(arrays, transcript, deviations, names)


def _check_array(value: Any, modality: Modality, source: str, deviations: list[str]) -> np.ndarray:
    key = modality.name
    expected = f"[T, {modality.dim}] float32"
    if not isinstance(value, np.ndarray):
        raise SpecError(f"{source}: key {key!r} must be a numpy array {expected}, found {type(value).__name__}")
    if value.dtype not in FLOAT_DTYPES:
        raise SpecError(f"{source}: key {key!r} has dtype {value.dtype}, expected {expected} (float16 and float64 "
                        "are kept with a note)")
    if value.ndim == 3 and value.shape[0] == 1:
        deviations.append(f"{source}: key {key!r} has a leading batch axis {list(value.shape)}; squeezed to 2-D")
        value = value[0]
    if value.ndim < 2 or value.ndim > 3:
        raise SpecError(f"{source}: key {key!r} has shape {list(value.shape)}, expected {expected}")
    if value.ndim == 3:
        deviations.append(
            f"{source}: key {key!r} is 3-D {list(value.shape)}, expected {expected}; kept as stored"
        )
    if value.shape[0] == 0:
        raise SpecError(f"{source}: key {key!r} has no rows {list(value.shape)}, expected {expected} with T >= 1")
    if 0 in value.shape:
        raise SpecError(f"{source}: key {key!r} has an empty dimension {list(value.shape)}, expected {expected}")
    if value.shape[-1] != modality.dim:
        deviations.append(
            f"{source}: key {key!r} has last dim {value.shape[-1]}, spec says {modality.dim}; kept as stored"
        )
    if value.dtype != SPEC_DTYPE:
        deviations.append(f"{source}: key {key!r} has dtype {value.dtype}, spec says float32; kept as stored")
    return np.ascontiguousarray(value)


def key_label(key: Any) -> str:
    """A key as quoted in messages: its repr, cut to ``MAX_KEY_LABEL`` characters; other types by type name."""
    if not isinstance(key, str):
        return f"<a {type(key).__name__} key>"
    shown = repr(key[:MAX_KEY_LABEL])
    return shown if len(key) <= MAX_KEY_LABEL else f"{shown}... ({len(key)} characters)"
