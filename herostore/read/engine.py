"""The Zarr v3 chunk engine: how to read one herostore array, and how to turn one chunk's bytes into rows.

``plan_array`` reads an array's metadata once and accepts exactly what herostore writes: a regular grid chunked
along the first axis, the ``bytes`` codec, optionally ``blosc``, and (format 2 on) a ``crc32c`` checksum last.
Anything else is a ``CorruptStoreError``: it was not written by herostore, or was edited. The parts of a plan
that do not depend on the array's length (dtype, codecs) are parsed once per process and shared.

``decode_chunk`` checks a chunk's size and checksum before any decoder sees its bytes, so a damaged chunk is an
error naming the store, video, modality and chunk, never a crash inside a decompressor or silently wrong rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from ..checksum import crc32c
from ..errors import ChecksumError, CorruptStoreError
from ..presets import Preset

__all__ = ["MAX_ARRAY_BYTES", "VERIFIED", "ArrayPlan", "ChunkJob", "VerifiedChunks", "check_encoded", "crc32c",
           "decode_chunk", "plan_array"]

CRC_BYTES = 4
MAX_ARRAY_BYTES = 1 << 34  # 16 GiB: no feature array is larger; a bigger shape is edited metadata
_DTYPES = ("float16", "float32", "float64")
_SHUFFLES = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
_ARRAY_FIELDS = frozenset({"zarr_format", "node_type", "shape", "data_type", "chunk_grid", "chunk_key_encoding",
                           "fill_value", "codecs", "attributes", "storage_transformers", "dimension_names"})
_BLOSC_HEADER = 16


@dataclass(frozen=True)
class _Encoding:
    """The length-independent part of a plan: parsed once per distinct metadata."""

    stored: np.dtype  # with the bytes codec's byte order
    native: np.dtype
    codec: Any  # a numcodecs Blosc decoder, or None for raw bytes
    checksum: bool


@dataclass(frozen=True)
class ArrayPlan:
    """How to read one array: its shape, chunking, stored dtype, decoder and checksum."""

    name: str
    shape: tuple[int, ...]
    chunk_rows: int
    encoding: _Encoding
    crcs: tuple[int, ...] | None = None  # each chunk's crc32c as the video's sealed document lists them (format 3)

    @property
    def row_bytes(self) -> int:
        return math.prod(self.shape[1:]) * self.encoding.stored.itemsize

    @property
    def chunk_bytes(self) -> int:
        """Decoded size of every chunk (Zarr stores the last one full size too)."""
        return self.chunk_rows * self.row_bytes

    @property
    def n_chunks(self) -> int:
        return -(-self.shape[0] // self.chunk_rows)

    @property
    def raw_size(self) -> int | None:
        """Exact size of an uncompressed chunk's encoded bytes; None when compressed (sizes vary)."""
        if self.encoding.codec is not None:
            return None
        return self.chunk_bytes + (CRC_BYTES if self.encoding.checksum else 0)

    def chunk_key(self, index: int) -> str:
        """The chunk's key relative to the video group, e.g. ``hubert/c/0/0``."""
        return f"{self.name}/c/{index}" + "/0" * (len(self.shape) - 1)

    def job(self, index: int, dest: memoryview) -> ChunkJob:
        """The job that reads chunk ``index`` into ``dest``."""
        return ChunkJob(self.chunk_key(index), self, dest, None if self.crcs is None else self.crcs[index])


class ChunkJob(NamedTuple):
    """One chunk to read into ``dest``: the bytes of the output rows it covers (stored byte order), and the crc32c
    the video's document lists for it (None in format 1)."""

    key: str
    plan: ArrayPlan
    dest: memoryview
    crc: int | None = None


def plan_array(name: str, meta: Mapping[str, Any], where: str, *, checksums: bool, preset: Preset | None,
               crcs: tuple[int, ...] | None = None) -> ArrayPlan:
    """The plan of one array from its Zarr v3 metadata; ``where`` names the video in errors.

    ``checksums``: the store's format requires a crc32c codec on every chunk. ``preset``: check that the chunking
    is the one herostore's writer chose for this length (format 2 on), so an edited shape cannot go unnoticed.
    ``crcs``: each chunk's crc32c as the video's sealed document lists them, one per chunk.
    """
    here = f"{where}, modality {name!r}"
    try:
        shape = _integers(meta["shape"], "shape")
        grid = meta["chunk_grid"]
        chunks = _integers(grid["configuration"]["chunk_shape"], "chunk shape")
        encoding = _encoding(_encoding_key(meta))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise CorruptStoreError(f"{here}: array metadata herostore does not write ({str(exc)[:200]})") from None
    unknown = sorted(str(key)[:50] for key in meta if key not in _ARRAY_FIELDS)
    if unknown:
        raise CorruptStoreError(f"{here}: array metadata fields {unknown[:5]} that herostore never writes (an "
                                "extension it cannot read, or an edit)")
    if meta.get("zarr_format") != 3 or meta.get("storage_transformers") or grid.get("name") != "regular":
        raise CorruptStoreError(f"{here}: not a regular-grid Zarr v3 array as herostore writes")
    fill = meta.get("fill_value")
    if isinstance(fill, bool) or not isinstance(fill, (int, float)) or fill != 0:
        raise CorruptStoreError(f"{here}: fill value {str(fill)[:50]!r}; herostore writes 0 (and every chunk)")
    if len(shape) not in (2, 3) or min(shape) < 1 or len(chunks) != len(shape) or chunks[1:] != shape[1:] \
            or not 1 <= chunks[0]:
        raise CorruptStoreError(f"{here}: shape {list(shape)} with chunks {list(chunks)}; herostore writes [T, D] "
                                "(or [K, P, D]) arrays with T, D >= 1, chunked along the first axis only")
    if math.prod(shape) * encoding.stored.itemsize > MAX_ARRAY_BYTES:
        raise CorruptStoreError(f"{here}: shape {list(shape)} is larger than any feature array "
                                f"({MAX_ARRAY_BYTES >> 30} GiB); the metadata was edited")
    if encoding.checksum != checksums:
        expected = "a crc32c checksum on every chunk" if checksums else "no checksum codec"
        raise CorruptStoreError(f"{here}: codecs {[c.get('name') for c in meta['codecs']]}; this store's format "
                                f"has {expected}")
    if preset is not None and chunks[0] != preset.rows_per_chunk(shape[0]):
        raise CorruptStoreError(f"{here}: {shape[0]} rows in chunks of {chunks[0]}; herostore cuts {shape[0]} rows "
                                f"into chunks of {preset.rows_per_chunk(shape[0])} (the shape or chunking was edited)")
    plan = ArrayPlan(name, shape, chunks[0], encoding, crcs)
    if crcs is not None and len(crcs) != plan.n_chunks:
        raise CorruptStoreError(f"{here}: the video document lists {len(crcs)} chunk checksums for {plan.n_chunks} "
                                "chunks")
    return plan


def _integers(values: Any, what: str) -> tuple[int, ...]:
    """A JSON list of integers (not floats, not booleans, which ``int()`` would quietly accept)."""
    if not isinstance(values, list) or not all(type(v) is int for v in values):
        raise ValueError(f"{what} {str(values)[:80]} is not a list of integers")
    return tuple(values)


def _encoding_key(meta: Mapping[str, Any]) -> str:
    encoding = meta["chunk_key_encoding"]
    return json.dumps([meta["data_type"], encoding, meta["codecs"]], sort_keys=True)


@lru_cache(maxsize=64)
def _encoding(key: str) -> _Encoding:
    data_type, key_encoding, codecs = json.loads(key)
    if data_type not in _DTYPES:
        raise ValueError(f"data type {data_type!r}, expected one of {', '.join(_DTYPES)}")
    if key_encoding.get("name") != "default" or (key_encoding.get("configuration") or {}).get("separator", "/") != "/":
        raise ValueError(f"chunk key encoding {key_encoding!r}, expected the default one with '/'")
    names = [c.get("name") for c in codecs]
    checksum = names[-1:] == ["crc32c"]
    middle = names[1 : len(names) - checksum]
    if not names or names[0] != "bytes" or middle not in ([], ["blosc"]):
        raise ValueError(f"codecs {names}, expected bytes, then blosc or nothing, then crc32c or nothing")
    endian = (codecs[0].get("configuration") or {}).get("endian", "little")
    if endian not in ("little", "big"):
        raise ValueError(f"byte order {endian!r}")
    native = np.dtype(data_type)
    stored = native.newbyteorder("<" if endian == "little" else ">")
    codec = None
    if middle:
        from numcodecs import Blosc

        config = codecs[1].get("configuration") or {}
        codec = Blosc(cname=config.get("cname", "lz4"), clevel=int(config.get("clevel", 5)),
                      shuffle=_SHUFFLES.get(config.get("shuffle", "noshuffle"), 0),
                      blocksize=int(config.get("blocksize", 0)))
    return _Encoding(stored, native, codec, checksum)


def check_encoded(plan: ArrayPlan, data: Any, where: str, *, verified: bool = False,
                  expected: int | None = None) -> memoryview:
    """A chunk's payload (its bytes less the checksum), once everything that can be checked without decoding holds:
    a raw chunk's exact size, the checksum (unless ``verified``: checked before), a Blosc header that promises
    exactly this chunk's decoded size and its own length."""
    view = memoryview(data).cast("B")
    if plan.raw_size is not None and len(view) != plan.raw_size:
        raise CorruptStoreError(f"{where}: chunk holds {len(view)} bytes, expected {plan.raw_size}")
    payload = view
    if plan.encoding.checksum:
        if len(view) < CRC_BYTES:
            raise CorruptStoreError(f"{where}: chunk holds {len(view)} bytes, too few for its checksum")
        payload = view[:-CRC_BYTES]
        if not verified:
            check_crc(payload, view[-CRC_BYTES:], where, expected)
    if plan.encoding.codec is not None:
        _check_blosc_header(payload, plan.chunk_bytes, where)
    return payload


def decode_chunk(plan: ArrayPlan, data: Any, dest: memoryview, where: str, *, verified: bool = False,
                 expected: int | None = None) -> None:
    """Fill ``dest`` (the first bytes of the chunk's decoded rows) from the chunk's encoded bytes ``data``.

    The bytes are checked first (``check_encoded``); only then does a decoder see them.
    """
    payload = check_encoded(plan, data, where, verified=verified, expected=expected)
    codec = plan.encoding.codec
    if codec is None:
        dest[:] = payload[: len(dest)]
        return
    try:
        if len(dest) == plan.chunk_bytes:
            codec.decode(payload, out=dest)
        else:  # the padded last chunk, or a max_rows prefix
            dest[:] = memoryview(codec.decode(payload)).cast("B")[: len(dest)]
    except Exception as exc:  # noqa: BLE001 - a decoder fed damaged bytes may raise anything (SystemError too)
        raise CorruptStoreError(f"{where}: corrupt blosc chunk ({type(exc).__name__}: {exc})") from None


def check_crc(payload: Any, stored: Any, where: str, expected: int | None = None) -> None:
    """Compare a payload's crc32c with the 4 little-endian bytes stored after it, and those with the crc32c the
    video's document lists for this chunk (``expected``): a chunk moved or copied from elsewhere is intact but
    is not this chunk."""
    listed = int.from_bytes(bytes(stored), "little")
    found = crc32c(payload)
    if found != listed:
        raise ChecksumError(f"{where}: checksum mismatch (stored crc32c {listed:08x}, bytes give {found:08x}): "
                            "the chunk is damaged")
    if expected is not None and listed != expected:
        raise ChecksumError(f"{where}: an intact chunk, but not this one (crc32c {listed:08x}, the video document "
                            f"lists {expected:08x}): moved or copied from elsewhere")


def _check_blosc_header(payload: memoryview, chunk_bytes: int, where: str) -> None:
    """Blosc's header must promise exactly this chunk's size, and its own length; else it is not given to Blosc."""
    if len(payload) < _BLOSC_HEADER:
        raise CorruptStoreError(f"{where}: blosc chunk of {len(payload)} bytes, shorter than its header")
    nbytes = int.from_bytes(payload[4:8], "little")
    cbytes = int.from_bytes(payload[12:16], "little")
    if nbytes != chunk_bytes or cbytes != len(payload):
        raise CorruptStoreError(f"{where}: blosc header says {nbytes} bytes from {cbytes}, the chunk is "
                                f"{len(payload)} bytes and must decode to {chunk_bytes}")


class VerifiedChunks:
    """Chunks whose checksum this process has verified, by an identity that changes when the bytes can.

    Later epochs then copy chunk bytes without hashing them again. Bounded: past ``limit`` entries it starts over.
    """

    def __init__(self, limit: int = 1 << 20):
        self._seen: set[Any] = set()
        self._limit = limit

    def __contains__(self, identity: Any) -> bool:
        return identity in self._seen

    def add(self, identity: Any) -> None:
        if len(self._seen) >= self._limit:
            self._seen.clear()
        self._seen.add(identity)


VERIFIED = VerifiedChunks()  # this process's memory of verified chunks, shared by every reader
