"""Step 2: unpickling with wrappers that build dtypes and arrays only from what the file gives, checked."""

from __future__ import annotations

import math
import pickle
from typing import Any, BinaryIO

import numpy as np

from ..errors import UnsafePickleError
from .limits import (
    CALLABLE,
    DTYPE_NAME,
    MAX_NDIM,
    NATIVE,
    NDARRAY,
    NUMERIC_KINDS,
    quote,
)

try:
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct


class _NdarrayToken:
    """Stands for ``numpy.ndarray``: only ``_reconstruct`` accepts it."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError("numpy.ndarray cannot be given a state")


_NDARRAY_TOKEN = _NdarrayToken()


class _PendingDtype:
    """``numpy.dtype(name)``; the state may only set the byte order and a str dtype's size."""

    __slots__ = ("decoder", "done", "dtype")

    def __init__(self, decoder: Decoder, name: Any):
        self.decoder, self.done = decoder, False
        if type(name) is not str or not DTYPE_NAME.fullmatch(name):
            raise decoder.refuse(f"dtype name {quote(str(name), 40)}, expected a numeric or str dtype")
        try:
            dtype = np.dtype(name)
        except TypeError:
            raise decoder.refuse(f"unknown dtype {name!r}") from None
        if dtype.kind not in NUMERIC_KINDS | {"U", "O"} or dtype.fields is not None or dtype.subdtype is not None:
            raise decoder.refuse(f"dtype {dtype}, expected numeric arrays and str")
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        if self.done or type(state) is not tuple or len(state) not in (8, 9):
            raise self.decoder.refuse("a malformed dtype state")
        version, order, sub, names, fields, elsize, _alignment, _flags, *meta = state
        if version not in (3, 4) or order not in ("<", ">", "|", "=") or (sub, names, fields) != (None, None, None):
            raise self.decoder.refuse(f"a dtype state other than a plain {self.dtype} ({quote(str(state)[:80], 80)})")
        if meta not in ([], [None]) or type(elsize) is not int:
            raise self.decoder.refuse("a dtype state with metadata")
        dtype = self.dtype
        if dtype.kind == "U":
            if elsize <= 0 or elsize % 4:
                raise self.decoder.refuse(f"a str dtype of {elsize} bytes")
            dtype = np.dtype(f"U{elsize // 4}")
        elif elsize not in (-1, dtype.itemsize):
            raise self.decoder.refuse(f"a {dtype} dtype state of {elsize} bytes")
        swap = order in "<>" and order != NATIVE and dtype.byteorder != "|"
        self.dtype = dtype.newbyteorder(order) if swap else dtype
        self.done = True


class PendingArray:
    """``_reconstruct(ndarray, (0,), b'b')``: an array that gets its bytes from the state."""

    __slots__ = ("array", "decoder", "items")

    def __init__(self, decoder: Decoder):
        self.decoder = decoder
        self.array: np.ndarray | None = None
        self.items: list | None = None  # the 0-d object array that holds the dict

    def __setstate__(self, state: Any) -> None:
        decoder = self.decoder
        if self.array is not None or self.items is not None or type(state) is not tuple or len(state) != 5:
            raise decoder.refuse("a malformed array state")
        version, shape, dtype, fortran, raw = state
        if version != 1 or type(fortran) is not bool:
            raise decoder.refuse("a malformed array state")
        dtype = decoder.dtype_of(dtype)
        shape = decoder.shape_of(shape)
        if dtype.kind == "O":
            if shape != () or type(raw) is not list or len(raw) != 1:
                raise decoder.refuse("an object array; a feature file may hold only numeric arrays and str")
            self.items = raw
            return
        decoder.own(raw, shape, dtype, bytes_only=True)
        array = _np_reconstruct(np.ndarray, (0,), b"b")
        array.__setstate__((1, shape, dtype, fortran, raw))
        self.array = decoder.checked(array, len(raw))


class Decoder(pickle.Unpickler):
    """The unpickler of step 2: globals resolve to the checking wrappers below."""

    def __init__(self, f: BinaryIO, source: str):
        super().__init__(f, encoding="latin1")
        self.source = source
        self.owned: dict[int, Any] = {}  # id -> buffer already given to an array (kept alive so ids stay unique)

    def refuse(self, what: str) -> UnsafePickleError:
        return UnsafePickleError(f"{self.source}: {what}")

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == NDARRAY:
            return _NDARRAY_TOKEN
        kind = CALLABLE.get((module, name))
        if kind is None:  # the scan refused it already; kept as a second line
            raise UnsafePickleError(f"{self.source}: refusing to unpickle global '{module}.{name}'")
        if (module, name) == ("_codecs", "encode"):
            return self.encode
        return getattr(self, f"make_{kind}")

    def make_array(self, subtype: Any, shape: Any, code: Any) -> PendingArray:
        if subtype is not _NDARRAY_TOKEN or shape != (0,) or code != b"b":
            raise self.refuse("_reconstruct with arguments numpy never writes (an array with no data)")
        return PendingArray(self)

    def make_dtype(self, name: Any, align: Any = False, copy: Any = True) -> _PendingDtype:
        if type(align) is not bool or type(copy) is not bool:
            raise self.refuse("a malformed dtype")
        return _PendingDtype(self, name)

    def make_dict(self, *args: Any) -> dict:
        if args:
            raise self.refuse("OrderedDict with arguments")
        return {}

    def make_bytes(self, *args: Any) -> bytes:
        if args:
            raise self.refuse("bytes() with arguments")
        return b""

    def encode(self, text: Any, encoding: Any = "utf-8") -> bytes:
        if type(text) is not str or encoding not in ("latin1", "latin-1"):
            raise self.refuse("_codecs.encode other than str to latin1")
        return text.encode("latin1")

    def make_scalar(self, dtype: Any, raw: Any) -> str:
        dtype = self.dtype_of(dtype)
        if dtype.kind != "U" or type(raw) is not bytes or len(raw) != dtype.itemsize:
            raise self.refuse(f"a numpy scalar of dtype {dtype}; only str scalars are allowed")
        return str(np.frombuffer(raw, dtype)[0])

    def make_frombuffer(self, raw: Any, dtype: Any, shape: Any, order: Any) -> PendingArray:
        dtype, shape = self.dtype_of(dtype), self.shape_of(shape)
        if dtype.kind == "O":
            raise self.refuse("an object array (_frombuffer of dtype object); a feature file may hold only numeric "
                              "arrays and str")
        if order not in ("C", "F"):
            raise self.refuse(f"_frombuffer in order {quote(str(order), 10)}, expected 'C' or 'F'")
        self.own(raw, shape, dtype, bytes_only=False)
        pending = PendingArray(self)
        array = np.frombuffer(raw, dtype=dtype).reshape(shape, order=order) if len(raw) else np.empty(shape, dtype)
        pending.array = self.checked(array, len(raw))
        return pending

    def dtype_of(self, dtype: Any) -> np.dtype:
        if type(dtype) is not _PendingDtype or not dtype.done:
            raise self.refuse("an array whose dtype is not a numpy dtype")
        return dtype.dtype

    def shape_of(self, shape: Any) -> tuple[int, ...]:
        if type(shape) is not tuple or len(shape) > MAX_NDIM or any(type(n) is not int or n < 0 for n in shape):
            raise self.refuse(f"an array shape that is not a tuple of at most {MAX_NDIM} sizes")
        return shape

    def own(self, raw: Any, shape: tuple[int, ...], dtype: np.dtype, *, bytes_only: bool) -> None:
        """Check that ``raw`` is a fresh buffer of exactly the bytes ``shape`` and ``dtype`` need."""
        if type(raw) is not bytes and (bytes_only or type(raw) is not bytearray):
            raise self.refuse(f"an array of shape {list(shape)} without its bytes (found {type(raw).__name__})")
        need = math.prod(shape) * dtype.itemsize
        if len(raw) != need:
            raise self.refuse(f"an array of shape {list(shape)} {dtype} needs {need} bytes, the file gives {len(raw)}")
        if len(raw) and id(raw) in self.owned:
            raise self.refuse("two arrays built over the same bytes; every array must own its data")
        self.owned[id(raw)] = raw

    def checked(self, array: np.ndarray, nbytes: int) -> np.ndarray:
        contiguous = array.flags.c_contiguous or array.flags.f_contiguous
        strides_ok = all(s > 0 for s, n in zip(array.strides, array.shape) if n > 1)
        if array.nbytes != nbytes or not contiguous or not strides_ok:
            raise self.refuse(f"an array of shape {list(array.shape)} that is not laid over its own bytes")
        if array.dtype.kind == "U":
            if array.shape != ():
                raise self.refuse(f"a str array of shape {list(array.shape)}; only 0-d str arrays are allowed")
            try:
                str(array[()]).encode("utf-8")
            except (ValueError, SystemError):
                raise self.refuse("a 0-d str array that is not valid Unicode") from None
        return array


