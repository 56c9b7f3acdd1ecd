"""The reference read: the same video through zarr-python, for tests and benchmarks (``ZarrReader(fast=False)``)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import CorruptStoreError, VideoNotFoundError
from ..layout import parse_video
from .protocol import VideoRecord

__all__ = ["open_group", "read_with_zarr_python"]


def open_group(location: Any, video_id: str | None = None) -> Any:
    """The store (or one video) as a read-only ``zarr.Group``, through zarr-python's own stores."""
    import zarr

    store = location.zarr_store()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        try:
            return zarr.open_group(store, path=video_id or "", mode="r", zarr_format=3)
        except (FileNotFoundError, KeyError):
            raise VideoNotFoundError(f"{location.name}: no video {video_id!r}") from None


def read_with_zarr_python(location: Any, video_id: str, wanted: Sequence[str],
                          limits: Mapping[str, int]) -> VideoRecord:
    from ..layout import parse_root

    version = parse_root(location.read_root(), location.name).format_version
    meta = parse_video(location.video_document(video_id), location.name, video_id, version)
    group = open_group(location, video_id)
    arrays = {}
    for key in wanted:
        if key not in meta.arrays:
            continue
        array = group[key]
        rows = array.shape[0] if key not in limits else min(limits[key], array.shape[0])
        try:
            arrays[key] = np.asarray(array[:rows])
        except ValueError as exc:  # zarr-python's checksum mismatch
            raise CorruptStoreError(f"{location.name}: video {video_id!r}, modality {key!r}: {exc}") from None
    return VideoRecord(video_id, arrays, meta.transcript, meta.notes)
