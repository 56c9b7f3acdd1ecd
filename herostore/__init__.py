"""herostore: chunked, compressed Zarr storage for HERO multimodal emotion features.

One Zarr v3 group per dataset, one group per video, one array per modality; the spec's dict ``.npy`` files both
ways; a lazy PyTorch dataset over either format, a loader that reads its batches into reused buffers, and the
whole dataset as lazy dask arrays (``to_dask``). ``import herostore`` stays light: the names that need torch
(``HeroDataset``, ``collate``, ``Loader``), dask (``to_dask``) or the read path are imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

from .errors import (
    ArgumentError,
    ChecksumError,
    CorruptStoreError,
    ExtractionError,
    HerostoreError,
    InvalidVideoIdError,
    LabelError,
    SpecError,
    StoreError,
    UnsafePickleError,
    VideoNotFoundError,
)
from .presets import DEFAULT_PRESET, PRESETS, Preset, get_preset
from .schema import MODALITIES, check_features
from .store import FeatureStore

_LAZY = {
    "HeroDataset": "herostore.dataset",
    "Loader": "herostore.loader",
    "collate": "herostore.dataset",
    "open_reader": "herostore.read",
    "VideoRecord": "herostore.read",
    "to_dask": "herostore.lazy",
}

__all__ = [
    "DEFAULT_PRESET",
    "MODALITIES",
    "PRESETS",
    "ArgumentError",
    "ChecksumError",
    "CorruptStoreError",
    "ExtractionError",
    "FeatureStore",
    "HeroDataset",
    "HerostoreError",
    "InvalidVideoIdError",
    "LabelError",
    "Loader",
    "Preset",
    "SpecError",
    "StoreError",
    "UnsafePickleError",
    "VideoNotFoundError",
    "VideoRecord",
    "check_features",
    "collate",
    "get_preset",
    "open_reader",
    "to_dask",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'herostore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
