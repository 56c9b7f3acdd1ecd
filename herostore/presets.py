"""Named precision/compression presets.

A preset says how feature arrays are stored: the dtype they are cast to (or kept),
an optional BitRound of the float32 mantissa, the Blosc compressor and the number of
rows per chunk. Only core Zarr v3 codecs end up in the store's metadata (``bytes``
and ``blosc``): the lossy steps happen before writing, so any v3 reader opens the
arrays as plain float arrays. The chosen preset's config is recorded in the store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
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

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Preset:
        try:
            return cls(**config)
        except TypeError as exc:
            raise StoreError(f"unreadable preset config {config!r}: {exc}") from None

    def prepare(self, array: np.ndarray) -> np.ndarray:
        """Apply the preset's precision to one array before it is written."""
        if self.dtype is not None:
            with np.errstate(over="ignore"):
                cast = array.astype(self.dtype, copy=False)
            if cast.dtype.itemsize < array.dtype.itemsize and np.isinf(cast).sum() != np.isinf(array).sum():
                raise OverflowError(f"values beyond the {self.dtype} range (max |x| {np.nanmax(np.abs(array)):g})")
            array = cast
        if self.keepbits is not None:
            flat = np.ascontiguousarray(array, dtype=np.float32)
            array = BitRound(keepbits=self.keepbits).encode(flat).view(np.float32).reshape(array.shape)
        return np.ascontiguousarray(array)

    def compressors(self) -> list[Any] | None:
        if self.cname is None:
            return None
        from zarr.codecs import BloscCodec

        return [BloscCodec(cname=self.cname, clevel=self.clevel, shuffle=self.shuffle)]


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
            cname="lz4",
            clevel=5,
            description="cast to float16, blosc-lz4 + bitshuffle; ~3e-4 relative error",
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
            description="float32, uncompressed, large chunks: the zero-copy memory-mapped read",
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
