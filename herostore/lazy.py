"""The dataset as lazy dask arrays: every video's rows of one modality, concatenated, for users' own analysis.

``to_dask(feature_root, modality)`` returns a ``VideoArrays``: ``data``, a dask array ``[sum of rows, D]`` whose
chunks are runs of whole videos of about ``BLOCK_BYTES`` each (a video's rows are never split), ``offsets``
(video ``i`` is ``data[offsets[i]:offsets[i + 1]]``) and ``video_ids``. A video's rows are its array's rows
(``[T, D]``; an array stored with more axes contributes ``prod(shape[:-1])`` rows). A video without the modality
(``au`` is optional) has no rows. Nothing is read until a chunk is computed: then ``read_block`` reads that
chunk's videos through herostore's reader (``herostore.read.open_reader``: checksums verified, any format it
reads). The shapes come from every video's metadata, read once here (a few threads; no chunk data).

``herostore stats`` reduces exactly these blocks (``herostore.stats``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ArgumentError, CorruptStoreError
from .schema import ARRAY_KEYS, check_modalities

__all__ = ["BLOCK_BYTES", "VideoArrays", "VideoTable", "plan_blocks", "read_block", "scan_videos", "to_dask"]

BLOCK_BYTES = 64 * 2**20  # stored bytes per chunk of ``data``: dask's advice is 10-100 MB; a worker holds one or two
SCAN_THREADS = 8  # metadata reads in flight while scanning (they wait on the disk or the network, not the CPU)


@dataclass
class VideoTable:
    """Every video's row count per modality, from the metadata: what ``to_dask`` and ``stats`` plan from."""

    reader: Any
    video_ids: list[str]
    rows: dict[str, np.ndarray]  # modality -> int64 [videos]
    width: dict[str, int]  # modality -> D
    dtype: dict[str, np.dtype]  # modality -> the stored dtype

    def modalities(self) -> list[str]:
        """The modalities at least one video has, in spec order."""
        return [m for m in ARRAY_KEYS if m in self.width]


@dataclass
class VideoArrays:
    """One modality of a dataset as a lazy ``[sum of rows, D]`` dask array; see the module doc."""

    modality: str
    video_ids: list[str]
    offsets: np.ndarray  # int64 [videos + 1]
    data: Any  # dask.array.Array
    blocks: list[tuple[int, int]]  # video index range [start, stop) of each chunk of ``data``

    def video(self, video: str | int) -> Any:
        """The lazy rows of one video, by id or index."""
        index = self.video_ids.index(video) if isinstance(video, str) else int(video)
        return self.data[int(self.offsets[index]) : int(self.offsets[index + 1])]

    def lengths(self) -> np.ndarray:
        """Rows per video."""
        return np.diff(self.offsets)


def scan_videos(feature_root: str | os.PathLike | Any, modalities: Sequence[str] | None = None, *,
                storage_options: Mapping[str, Any] | None = None, threads: int = SCAN_THREADS) -> VideoTable:
    """Read every video's metadata once: rows, width and dtype of each modality (all by default)."""
    reader = _open(feature_root, storage_options)
    wanted = check_modalities(list(modalities) if modalities is not None else list(ARRAY_KEYS))
    ids = list(reader.video_ids())
    shapes = _shapes(reader, ids, wanted, threads)
    rows: dict[str, np.ndarray] = {}
    width: dict[str, int] = {}
    dtype: dict[str, np.dtype] = {}
    for m in wanted:
        counts = np.zeros(len(ids), np.int64)
        for i, (vid, found) in enumerate(zip(ids, shapes)):
            if m not in found:
                continue
            shape, kind = found[m]
            if not shape:
                raise CorruptStoreError(f"{_name(reader)}: video {vid!r}, modality {m!r}: a scalar, expected [T, D]")
            if m not in width:
                width[m], dtype[m] = int(shape[-1]), kind
            elif (int(shape[-1]), kind) != (width[m], dtype[m]):
                raise CorruptStoreError(f"{_name(reader)}: video {vid!r}, modality {m!r}: {list(shape)} {kind}, "
                                        f"expected [..., {width[m]}] {dtype[m]} like the videos before it")
            counts[i] = int(np.prod(shape[:-1], dtype=np.int64))
        rows[m] = counts
    return VideoTable(reader, ids, rows, width, dtype)


def plan_blocks(rows: np.ndarray, row_bytes: int, block_bytes: int = BLOCK_BYTES) -> list[tuple[int, int]]:
    """Runs of whole videos of about ``block_bytes`` each (one video larger than that is a block alone)."""
    blocks, start, size = [], 0, 0
    for i, n in enumerate(rows.tolist()):
        if i > start and size + n * row_bytes > block_bytes:
            blocks.append((start, i))
            start, size = i, 0
        size += n * row_bytes
    if len(rows):
        blocks.append((start, len(rows)))
    return blocks


def read_block(reader: Any, modality: str, video_ids: Sequence[str], rows: Sequence[int], width: int,
               dtype: Any = None) -> np.ndarray:
    """The rows of ``video_ids`` (``rows`` each, as scanned), one after another: ``[sum(rows), width]``."""
    out = np.empty((int(sum(rows)), width), dtype)
    position = 0
    for video_id, count in zip(video_ids, rows):
        if count == 0:
            continue
        array = reader.read(video_id, [modality]).arrays.get(modality)
        found = 0 if array is None else array.size // max(1, array.shape[-1])
        if array is None or array.shape[-1] != width or found != count:
            shape = "no array" if array is None else f"shape {list(array.shape)}"
            raise CorruptStoreError(f"{_name(reader)}: video {video_id!r}, modality {modality!r}: {shape}, but "
                                    f"{count} rows of {width} when the dataset was scanned (changed since?)")
        out[position : position + count] = array.reshape(count, width)
        position += count
    return out


def to_dask(feature_root: str | os.PathLike, modality: str, *, dtype: Any = None, block_bytes: int = BLOCK_BYTES,
            storage_options: Mapping[str, Any] | None = None, table: VideoTable | None = None) -> VideoArrays:
    """Every video's rows of ``modality`` as one lazy dask array (see the module doc).

    ``dtype``: the array's dtype (default: as stored, e.g. float16). ``block_bytes``: stored bytes per chunk.
    ``table``: a ``scan_videos`` result to plan from instead of scanning again.
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    check_modalities([modality])
    if isinstance(block_bytes, bool) or not isinstance(block_bytes, int) or block_bytes < 1:
        raise ArgumentError(f"block_bytes={block_bytes!r}: expected an int >= 1")
    table = table or scan_videos(feature_root, [modality], storage_options=storage_options)
    rows = table.rows.get(modality, np.zeros(len(table.video_ids), np.int64))
    width = table.width.get(modality, 0)
    stored = table.dtype.get(modality, np.dtype(np.float32))
    out_dtype = np.dtype(dtype) if dtype is not None else stored
    offsets = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
    blocks = plan_blocks(rows, max(1, width) * stored.itemsize, block_bytes) if width else []
    if not blocks:
        return VideoArrays(modality, list(table.video_ids), offsets, da.zeros((0, width), dtype=out_dtype), [])
    name = f"herostore-{modality}-" + tokenize(_name(table.reader), modality, out_dtype.str, block_bytes,
                                                table.video_ids, rows)
    graph = {(name, b, 0): (read_block, table.reader, modality, table.video_ids[start:stop],
                            rows[start:stop].tolist(), width, out_dtype)
             for b, (start, stop) in enumerate(blocks)}
    chunks = (tuple(int(offsets[stop] - offsets[start]) for start, stop in blocks), (width,))
    data = da.Array(HighLevelGraph.from_collections(name, graph, dependencies=()), name, chunks, dtype=out_dtype,
                    meta=np.empty((0, width), out_dtype))
    return VideoArrays(modality, list(table.video_ids), offsets, data, blocks)


def _open(feature_root: Any, storage_options: Mapping[str, Any] | None) -> Any:
    if hasattr(feature_root, "read") and hasattr(feature_root, "video_ids"):
        return feature_root  # already a reader
    from .read import open_reader

    return open_reader(feature_root, storage_options=storage_options)


def _name(reader: Any) -> str:
    location = getattr(reader, "location", None)
    return str(getattr(location, "name", None) or getattr(reader, "path", None) or reader)


def _shapes(reader: Any, ids: list[str], modalities: list[str],
            threads: int) -> list[dict[str, tuple[tuple[int, ...], np.dtype]]]:
    """Per video: modality -> (shape, dtype), from its metadata (or, for readers without any, its arrays)."""

    def one(video_id: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        meta = getattr(reader, "video_meta", None)
        if meta is not None:
            arrays = meta(video_id).arrays
            return {m: (tuple(int(n) for n in arrays[m]["shape"]), np.dtype(arrays[m]["data_type"]))
                    for m in modalities if m in arrays}
        record = reader.read(video_id, modalities)
        return {m: (a.shape, a.dtype) for m, a in record.arrays.items()}

    if threads <= 1 or len(ids) < 2:
        return [one(v) for v in ids]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, ids, chunksize=64))
