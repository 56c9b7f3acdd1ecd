"""The packed layout, declared once: the manifest, the binary index and the shard names. See docs/format.md.

A packed dataset is a folder (or a URL prefix) holding ``herostore-pack.json`` (the manifest: pack format version,
the store's root document, the shards with their sizes, the index file with its size and crc32c),
``herostore-pack.index`` (video id -> shard, byte offset and length of the video's contiguous members; ids sorted)
and the shards ``shard-00000.zip``, ... Readers trust nothing in these files: every count, offset and length is
checked against the sizes it must fit in before it is used, and the index must match its crc32c.
"""

from __future__ import annotations

import itertools
import json
import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import CorruptStoreError, StoreError
from .layout import json_bytes, parse_json

__all__ = ["INDEX", "MANIFEST", "PACK_VERSION", "Manifest", "PackIndex", "encode_index", "manifest_bytes",
           "parse_manifest", "shard_name"]

MANIFEST = "herostore-pack.json"
INDEX = "herostore-pack.index"
PACK_VERSION = 1
READABLE_PACK_VERSIONS = (1,)
MAX_MANIFEST_BYTES = 64 << 20
MAX_INDEX_BYTES = 1 << 30  # ~20 million videos
MAX_ID_BYTES = 200  # layout.check_video_id's limit
SHARD_PATTERN = re.compile(r"shard-[0-9]{5,}\.zip")
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,254}")
_MAGIC = b"HSPACKIX"
_HEADER = struct.Struct("<8sIIQQ")  # magic, index version, reserved, videos, bytes of ids
_INDEX_VERSION = 1
ENTRY = np.dtype([("id_start", "<u8"), ("offset", "<u8"), ("length", "<u8"), ("shard", "<u4"), ("id_length", "<u4")])


def shard_name(number: int) -> str:
    return f"shard-{number:05d}.zip"


# -- the manifest ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """What ``herostore-pack.json`` says."""

    source: str  # the manifest, for messages
    version: int
    root: bytes  # the store's root document (as JSON bytes)
    shards: tuple[tuple[str, int], ...]  # (file name, bytes)
    index_name: str
    index_size: int
    index_crc32c: int
    videos: int


def manifest_bytes(root_document: bytes, shards: list[tuple[str, int, int]], index_size: int, index_crc32c: int,
                   videos: int) -> bytes:
    """The manifest of a packed dataset; ``shards`` lists (name, bytes, videos)."""
    return json_bytes({
        "herostore_pack": {
            "version": PACK_VERSION,
            "videos": videos,
            "index": {"name": INDEX, "bytes": index_size, "crc32c": f"{index_crc32c:08x}"},
            "shards": [{"name": name, "bytes": size, "videos": count} for name, size, count in shards],
        },
        "root": parse_json(root_document, "the store's root zarr.json"),
    })


def parse_manifest(data: bytes, source: str) -> Manifest:
    """Check a manifest; a newer pack version is a ``StoreError``, anything malformed a ``CorruptStoreError``."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise CorruptStoreError(f"{source}: larger than {MAX_MANIFEST_BYTES >> 20} MiB; not a pack manifest")
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise CorruptStoreError(f"{source}: not valid JSON ({type(exc).__name__}: {exc}); the manifest is damaged") \
            from None
    pack = document.get("herostore_pack") if isinstance(document, dict) else None
    if not isinstance(pack, dict):
        raise CorruptStoreError(f"{source}: no 'herostore_pack' object; not a packed dataset's manifest")
    version = pack.get("version")
    if version not in READABLE_PACK_VERSIONS:
        raise StoreError(f"{source}: pack format version {version!r}; this herostore reads versions "
                         f"{', '.join(map(str, READABLE_PACK_VERSIONS))} (a newer herostore wrote it: upgrade)")
    try:
        index = pack["index"]
        shards = tuple((_name(s["name"]), _count(s["bytes"])) for s in pack["shards"])
        manifest = Manifest(source, version, json_bytes(_object(document["root"])), shards, _name(index["name"]),
                            _count(index["bytes"]), int(index["crc32c"], 16), _count(pack["videos"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptStoreError(f"{source}: a malformed manifest ({type(exc).__name__}: {exc})") from None
    if not shards:
        raise CorruptStoreError(f"{source}: lists no shards; a packed dataset has at least one")
    if len({name for name, _ in shards} | {manifest.index_name, MANIFEST}) != len(shards) + 2:
        raise CorruptStoreError(f"{source}: a file name is listed twice")
    return manifest


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _FILE_NAME.fullmatch(value):
        raise ValueError(f"file name {value!r}: expected a plain file name in the dataset's folder")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 63:
        raise ValueError(f"{value!r}: expected a count >= 0")
    return value


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("the root document is not a JSON object")
    return value


# -- the index ---------------------------------------------------------------------------------------------------


def encode_index(entries: list[tuple[str, int, int, int]]) -> bytes:
    """The index of ``(video_id, shard, offset, length)`` entries (any order; written sorted by id)."""
    keyed = sorted((vid.encode("utf-8"), shard, offset, length) for vid, shard, offset, length in entries)
    table = np.zeros(len(keyed), ENTRY)
    lengths = np.array([len(k[0]) for k in keyed], np.uint64)
    table["id_length"] = lengths
    table["id_start"] = np.cumsum(lengths) - lengths
    table["shard"] = [k[1] for k in keyed]
    table["offset"] = [k[2] for k in keyed]
    table["length"] = [k[3] for k in keyed]
    ids = b"".join(k[0] for k in keyed)
    return _HEADER.pack(_MAGIC, _INDEX_VERSION, 0, len(keyed), len(ids)) + table.tobytes() + ids


class PackIndex:
    """The parsed index: find a video in O(log n), list ids. Built from bytes already checked against their crc."""

    def __init__(self, data: bytes, source: str, shard_sizes: list[int], videos: int):
        if len(data) < _HEADER.size:
            raise CorruptStoreError(f"{source}: {len(data)} bytes, too few for the index header")
        magic, version, _, count, id_bytes = _HEADER.unpack_from(data, 0)
        if magic != _MAGIC or version != _INDEX_VERSION:
            raise CorruptStoreError(f"{source}: not a herostore pack index of version {_INDEX_VERSION} "
                                    f"(starts {magic!r}, version {version})")
        if count != videos or _HEADER.size + count * ENTRY.itemsize + id_bytes != len(data):
            raise CorruptStoreError(f"{source}: holds {len(data)} bytes for {count} videos and {id_bytes} bytes of "
                                    f"ids; the manifest lists {videos} videos")
        table = np.frombuffer(data, ENTRY, count, _HEADER.size)
        self.source = source
        self._ids = memoryview(data)[_HEADER.size + table.nbytes :]
        self._check(table, shard_sizes)
        self._table = table
        # the entries as 64-bit words, for a search that does not build numpy scalars: id_start, offset, length,
        # then shard (low 32 bits) and id_length (high 32 bits)
        self._words = memoryview(data)[_HEADER.size : _HEADER.size + table.nbytes].cast("Q")

    def _check(self, table: np.ndarray, shard_sizes: list[int]) -> None:
        """Every entry inside the id bytes and inside its shard (unsigned arithmetic that cannot wrap)."""
        lengths, starts = table["id_length"].astype(np.uint64), table["id_start"]
        if len(table):
            expected = np.cumsum(lengths) - lengths
            if not np.array_equal(starts, expected) or int(lengths.sum()) != len(self._ids):
                raise CorruptStoreError(f"{self.source}: the ids' offsets do not follow one another")
            if int(lengths.min()) < 1 or int(lengths.max()) > MAX_ID_BYTES:
                raise CorruptStoreError(f"{self.source}: an id of {int(lengths.min())}..{int(lengths.max())} bytes; "
                                        f"ids hold 1 to {MAX_ID_BYTES}")
        shard = table["shard"]
        bad = np.flatnonzero(shard >= len(shard_sizes))
        if bad.size:
            raise CorruptStoreError(f"{self.source}: entry {int(bad[0])} names shard {int(shard[bad[0]])}; the "
                                    f"manifest lists {len(shard_sizes)} shards")
        sizes = np.asarray(shard_sizes, np.uint64)[shard]
        offset, length = table["offset"], table["length"]
        bad = np.flatnonzero((offset > sizes) | (length > sizes - np.minimum(offset, sizes)) | (length == 0))
        if bad.size:
            i = int(bad[0])
            raise CorruptStoreError(f"{self.source}: entry {i} points at bytes {int(offset[i])}+{int(length[i])} of "
                                    f"shard {int(shard[i])}, which holds {int(sizes[i])} bytes")

    def __len__(self) -> int:
        return len(self._table)

    def _id(self, i: int) -> bytes:
        start = self._words[4 * i]
        return bytes(self._ids[start : start + (self._words[4 * i + 3] >> 32)])

    def find(self, video_id: str) -> tuple[int, int, int] | None:
        """``(shard, offset, length)`` of a video, or None (a binary search over the sorted ids)."""
        key = video_id.encode("utf-8", "surrogatepass")
        lo, hi = 0, len(self._table)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._id(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(self._table) and self._id(lo) == key:
            words = self._words
            return words[4 * lo + 3] & 0xFFFFFFFF, words[4 * lo + 1], words[4 * lo + 2]
        return None

    def video_ids(self) -> list[str]:
        """Every id, sorted; ids out of order or not UTF-8 are a ``CorruptStoreError`` (checked here, once)."""
        raw = [self._id(i) for i in range(len(self._table))]
        if any(a >= b for a, b in itertools.pairwise(raw)):
            raise CorruptStoreError(f"{self.source}: ids are not sorted and unique")
        try:
            return [r.decode("utf-8") for r in raw]
        except UnicodeDecodeError:
            raise CorruptStoreError(f"{self.source}: an id that is not UTF-8") from None

    def shards_of(self) -> dict[int, list[str]]:
        """Video ids by shard, each list in index order."""
        out: dict[int, list[str]] = {}
        for vid, shard in zip(self.video_ids(), self._table["shard"].tolist()):
            out.setdefault(shard, []).append(vid)
        return out
