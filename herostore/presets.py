"""Named precision/compression presets.

A preset says how feature arrays are stored: the dtype they are cast to (or kept),
an optional BitRound of the float32 mantissa, the Blosc compressor and the largest
number of rows per chunk. Only core Zarr v3 codecs end up in the store's metadata (``bytes``,
``blosc``, ``crc32c``): the lossy steps happen before writing, so any v3 reader opens the
arrays as plain float arrays. The chosen preset's config is recorded in the store; two presets
are the same storage when ``storage_key`` (what determines the bytes on disk) is equal, whatever
their names and descriptions say.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
from numcodecs import BitRound

from .errors import StoreError


@dataclass(frozen=True)
class Preset:
    name: str
    dtype: str | None  # None keeps the source float dtype (lossless)
    keepbits: int | None = None  # BitRound mantissa bits kept, float32 only
    cname: str | None = "zstd"  # Blosc compressor; None stores raw bytes
    clevel: int = 3
    shuffle: str = "bitshuffle"
    chunk_rows: int = 512
    description: str = ""

    @property
    def lossless(self) -> bool:
        return self.dtype is None and self.keepbits is None

    def to_config(self) -> dict[str, Any]:
        return asdict(self)

    def storage_key(self) -> tuple[Any, ...]:
        """Everything that determines the stored bytes: equal keys mean interchangeable presets."""
        return (self.dtype, self.keepbits, self.cname, self.clevel if self.cname else None,
                self.shuffle if self.cname else None, self.chunk_rows)

    @classmethod
    def from_config(cls, config: Any, *, source: str = "preset config") -> Preset:
        """Rebuild a preset from ``to_config()``; ``source`` (the store's metadata file) names it in errors."""
        if not isinstance(config, dict):
            raise StoreError(f"{source}: preset config is {type(config).__name__} {config!r}, expected an object "
                             f"with the fields {', '.join(_FIELDS)}")
        try:
            preset = cls(**config)
        except TypeError as exc:
            raise StoreError(f"{source}: unreadable preset config {config!r}: {exc}") from None
        problem = preset._problem()
        if problem:
            raise StoreError(f"{source}: unreadable preset config {config!r}: {problem}")
        return preset

    def _problem(self) -> str | None:
        """What makes this preset unusable, if anything."""
        if not isinstance(self.name, str) or not self.name:
            return f"name {self.name!r}, expected a non-empty string"
        if self.dtype not in (None, "float16", "float32", "float64"):
            return f"dtype {self.dtype!r}, expected null, 'float16', 'float32' or 'float64'"
        if self.keepbits is not None and (isinstance(self.keepbits, bool) or not isinstance(self.keepbits, int)
                                          or not 1 <= self.keepbits <= 23):
            return f"keepbits {self.keepbits!r}, expected null or an integer from 1 to 23"
        if self.cname is not None and self.cname not in _BLOSC_CNAMES:
            return f"cname {self.cname!r}, expected null or one of {', '.join(_BLOSC_CNAMES)}"
        if self.shuffle not in ("noshuffle", "shuffle", "bitshuffle"):
            return f"shuffle {self.shuffle!r}, expected 'noshuffle', 'shuffle' or 'bitshuffle'"
        if isinstance(self.chunk_rows, bool) or not isinstance(self.chunk_rows, int) or self.chunk_rows < 1:
            return f"chunk_rows {self.chunk_rows!r}, expected a positive integer"
        return None

    def rows_per_chunk(self, rows: int) -> int:
        """Rows per chunk for an array of ``rows`` rows: equal chunks of at most ``chunk_rows``.

        Zarr stores the last chunk full size, so 1568 rows in 512-row chunks would store 2048;
        four chunks of 392 store 1568 (the padding is always under one row per chunk).
        """
        n_chunks = -(-rows // self.chunk_rows)
        return max(1, -(-rows // max(1, n_chunks)))

    def prepare(self, array: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        """Apply the preset's precision to one array before it is written.

        Returns the array and what the cast did to small values: ``{"to_zero": n, "subnormal": m}`` counts
        nonzero values that became 0 and values left in the cast dtype's subnormal range (below its smallest
        normal number, 6.1e-5 for float16, where the relative error grows past the documented one); empty when
        neither happened.
        """
        underflow: dict[str, int] = {}
        if self.dtype is not None:
            with np.errstate(over="ignore", under="ignore"):
                cast = array.astype(self.dtype, copy=False)
            if cast.dtype.itemsize < array.dtype.itemsize:
                if np.isinf(cast).sum() != np.isinf(array).sum():
                    raise OverflowError(f"values beyond the {self.dtype} range (max |x| {np.nanmax(np.abs(array)):g})")
                underflow = _underflow(array, cast)
            array = cast
        if self.keepbits is not None:
            flat = np.ascontiguousarray(array, dtype=np.float32)
            array = BitRound(keepbits=self.keepbits).encode(flat).view(np.float32).reshape(array.shape)
        return np.ascontiguousarray(array), underflow

    def codecs(self, checksum: bool) -> list[Any]:
        """The zarr-python bytes-to-bytes codecs of an array: Blosc when compressed, then crc32c when ``checksum``."""
        from zarr.codecs import BloscCodec, Crc32cCodec

        chain: list[Any] = []
        if self.cname is not None:
            chain.append(BloscCodec(cname=self.cname, clevel=self.clevel, shuffle=self.shuffle))
        if checksum:
            chain.append(Crc32cCodec())
        return chain


def _underflow(source: np.ndarray, cast: np.ndarray) -> dict[str, int]:
    tiny = np.finfo(cast.dtype).tiny
    magnitude = np.abs(cast)
    to_zero = int(np.count_nonzero((magnitude == 0) & (source != 0)))
    subnormal = int(np.count_nonzero((magnitude < tiny) & (magnitude > 0)))
    return {"to_zero": to_zero, "subnormal": subnormal} if to_zero or subnormal else {}


_FIELDS = tuple(f.name for f in fields(Preset))
_BLOSC_CNAMES = ("blosclz", "lz4", "lz4hc", "zlib", "zstd")

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "lossless",
            dtype=None,
            description="source dtype kept (float32 per spec), blosc-zstd + bitshuffle; bit-exact",
        ),
        Preset(
            "float16",
            dtype="float16",
            cname=None,
            chunk_rows=4096,
            description="cast to float16, uncompressed, large chunks; ~3e-4 relative error, the fastest reads",
        ),
        Preset(
            "float16-lz4",
            dtype="float16",
            cname="lz4",
            clevel=5,
            description="cast to float16, blosc-lz4 + bitshuffle; ~8% smaller than float16, decoding costs CPU",
        ),
        Preset(
            "bitround",
            dtype="float32",
            keepbits=7,
            description="float32 with 7 mantissa bits kept (BitRound), blosc-zstd + bitshuffle",
        ),
        Preset(
            "raw",
            dtype="float32",
            cname=None,
            chunk_rows=4096,
            description="float32, uncompressed, large chunks: exact, no decoding",
        ),
    )
}
DEFAULT_PRESET = "float16"


def get_preset(spec: str | Preset) -> Preset:
    """Resolve a preset by name; ``bitround:5`` sets the mantissa bits kept."""
    if isinstance(spec, Preset):
        return spec
    name, _, arg = str(spec).partition(":")
    if name not in PRESETS:
        raise StoreError(f"unknown preset {spec!r}: expected one of {', '.join(PRESETS)} (or bitround:KEEPBITS)")
    preset = PRESETS[name]
    if arg:
        if name != "bitround" or not arg.isdigit() or not 1 <= int(arg) <= 23:
            raise StoreError(f"bad preset {spec!r}: only bitround takes a parameter, keepbits from 1 to 23")
        preset = replace(preset, name=f"bitround:{arg}", keepbits=int(arg))
    return preset
