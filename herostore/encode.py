"""One video's features encoded as the files of a Zarr v3 group, in memory, ready to publish anywhere.

zarr-python writes them (into a ``MemoryStore``), so every byte is what the Zarr reference implementation
produces; the store's location then decides how the files become visible (a rename on a local disk, the group
``zarr.json`` last on object storage, members of a zip shard). Every chunk is written, including chunks equal to
the fill value, so a missing chunk is always damage, never zeros.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import Any

from .errors import SpecError
from .layout import META, seal_video, video_attributes
from .presets import Preset
from .read.engine import CRC_BYTES
from .schema import CheckedFeatures

__all__ = ["encode_video", "is_group_document"]


def encode_video(video_id: str, checked: CheckedFeatures, preset: Preset, *, checksums: bool, sealed: bool,
                 notes: Mapping[str, Any] | None = None) -> dict[str, bytes]:
    """``{key relative to the video group: bytes}`` for one video, the group's ``zarr.json`` included.

    ``checksums`` adds the crc32c codec to every array (format 2 on); ``sealed`` (which needs ``checksums``) seals
    the group's document (format 3 on). What the precision cast did to small values is recorded in the notes as
    ``float16_underflow`` (per modality), so ``info`` can show it.
    """
    import zarr
    from zarr.storage import MemoryStore

    prepared = {}
    underflow = {}
    for key, source in checked.arrays.items():
        try:
            prepared[key], lost = preset.prepare(source)
        except OverflowError as exc:
            raise SpecError(f"{video_id}: key {key!r}: {exc}; use the lossless preset") from None
        if lost:
            underflow[key] = lost
    notes = dict(notes or {})
    if underflow:
        notes[f"{preset.dtype}_underflow"] = underflow
    files: dict[str, Any] = {}
    store = MemoryStore(files)
    attributes = video_attributes(checked.transcript, list(checked.arrays), checked.deviations, notes)
    group = zarr.create_group(store, zarr_format=3, attributes=attributes)
    for key, data in prepared.items():
        chunks = (preset.rows_per_chunk(data.shape[0]),) + data.shape[1:]
        array = group.create_array(key, shape=data.shape, dtype=data.dtype, chunks=chunks,
                                   compressors=preset.codecs(checksums), fill_value=0,
                                   config={"write_empty_chunks": True})
        array[...] = data
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(store)
    out = {key: buffer.to_bytes() for key, buffer in files.items()}
    if sealed:
        crcs = {name: [int.from_bytes(out[f"{name}/c/{i}" + "/0" * (data.ndim - 1)][-CRC_BYTES:], "little")
                       for i in range(-(-data.shape[0] // preset.rows_per_chunk(data.shape[0])))]
                for name, data in prepared.items()}
        out[META] = seal_video(json.loads(out[META]), video_id, crcs)
    return out


def is_group_document(key: str) -> bool:
    """Whether ``key`` (relative to a video group) is the group's own ``zarr.json``: the file written last."""
    return key == META
