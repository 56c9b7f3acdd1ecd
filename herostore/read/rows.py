"""Rows into a caller's buffer: which rows to read, this thread's scratch space, and the one casting copy.

A reader that fills memory the caller already has (a batch tensor's rows, a reused buffer) touches no fresh pages.
When the stored rows cannot go there as they are (another dtype, a subset of the rows, another byte order), they
are read into a scratch buffer of the calling thread, reused from read to read, and copied over once with the cast.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from ..errors import ArgumentError

__all__ = ["Rows", "check_rows", "copy_rows", "destination", "scratch"]

# Which rows of an array to read: None = all, an int n = the first n, an int array = those rows (any order).
Rows = None | int | np.ndarray

_LOCAL = threading.local()
_GROWTH = 1.25  # a scratch buffer that must grow takes a quarter more, so a slowly growing need reallocates rarely


def scratch(slot: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    """This thread's reusable buffer ``slot`` as an array of ``shape``; contents undefined.

    Grown when too small and never shrunk or freed, so reads in a steady state reuse memory that is already mapped.
    Two slots never overlap; a slot's contents last until the same thread asks for the same slot again.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buffers = getattr(_LOCAL, "buffers", None)
    if buffers is None:
        buffers = _LOCAL.buffers = {}
    buf = buffers.get(slot)
    if buf is None or buf.nbytes < nbytes:
        size = nbytes if buf is None else max(nbytes, int(buf.nbytes * _GROWTH))
        buf = buffers[slot] = np.empty(max(size, 1), np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


def check_rows(rows: Rows, length: int, where: str) -> tuple[int, np.ndarray | None]:
    """``(rows to read from the start, index or None)`` for a selection of an array of ``length`` rows."""
    if rows is None:
        return length, None
    if isinstance(rows, (int, np.integer)) and not isinstance(rows, bool):
        if not 0 <= rows <= length:
            raise ArgumentError(f"{where}: rows={int(rows)}, expected 0 to {length} (the array's rows)")
        return int(rows), None
    index = np.asarray(rows)
    if index.ndim != 1 or index.dtype.kind not in "iu":
        raise ArgumentError(f"{where}: rows is {index.dtype}{list(index.shape)}, expected an int, None or a 1-D "
                            "int array of row numbers")
    if index.size and (int(index.min()) < 0 or int(index.max()) >= length):
        raise ArgumentError(f"{where}: row numbers from {int(index.min())} to {int(index.max())}, the array has "
                            f"{length} rows")
    return (int(index.max()) + 1 if index.size else 0), index


def destination(dest: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    """``dest`` as an array of ``shape`` that a read writes into, or an ``ArgumentError`` saying why it cannot be."""
    if not isinstance(dest, np.ndarray) or dest.dtype.kind != "f" or not dest.flags.c_contiguous \
            or not dest.flags.writeable:
        found = f"{dest.dtype}{list(dest.shape)}" if isinstance(dest, np.ndarray) else type(dest).__name__
        raise ArgumentError(f"{where}: destination {found}, expected a writable C-contiguous float array")
    if dest.size != math.prod(shape):
        raise ArgumentError(f"{where}: destination of shape {list(dest.shape)} for rows of shape {list(shape)}")
    return dest.reshape(shape)


def copy_rows(src: np.ndarray, dest: np.ndarray, index: np.ndarray | None = None) -> None:
    """``dest[:] = src[index]`` (or ``src[:len(dest)]``), cast to ``dest``'s dtype, with no temporary array.

    ``index`` must lie within ``src`` (``check_rows``): it is not checked again here.
    """
    if index is not None and src.dtype != dest.dtype:
        picked = scratch("copy_rows", src.dtype, dest.shape)
        np.take(src, index, axis=0, out=picked, mode="clip")  # "raise" would copy through a temporary
        src, index = picked, None
    if index is not None:
        np.take(src, index, axis=0, out=dest, mode="clip")
        return
    with np.errstate(over="ignore", invalid="ignore"):  # a value past float16's range becomes inf, as torch casts
        np.copyto(dest, src[: dest.shape[0]], casting="same_kind")
