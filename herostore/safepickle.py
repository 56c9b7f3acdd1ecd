"""Decoding the pickle stream of a spec `.npy` dict without trusting it.

A feature file is read in three steps, each refusing with a one-line error that names the file and the limit:

1. ``_Scan`` walks the opcode stream once without building anything. Only the opcodes that numpy's own pickles
   of a dict use are allowed, globals must be on the allow-list, every length must fit in the file, and it
   tracks, for every value the stream would build, how deep it nests and how many objects it expands to through
   shared (memoised) references. Large payloads are skipped, not read.
2. ``_Decoder`` unpickles the same bytes. Its ``find_class`` hands out wrappers, not numpy's functions: they
   build dtypes from a short numeric name, and arrays only through numpy's own reconstruction of a numeric or
   str dtype over exactly the bytes the file gave, after checking shape, dtype and length and before any
   element is touched. Object arrays and object dtypes are never built (the one 0-d object array that holds
   the dict is unwrapped by hand), and no two arrays share a buffer.
3. ``_collect`` checks the result: a dict of str keys to numeric arrays, str or 0-d str arrays, whose arrays
   and strings add up to at most the file's size plus ``SLACK`` bytes.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import re
import sys
from typing import Any, BinaryIO

import numpy as np

from .errors import SpecError, UnsafePickleError

try:
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct

MAX_OPCODES = 1 << 18
MAX_DEPTH = 32
MAX_NODES = 1 << 17  # objects one value expands to, shared references counted each time
MAX_MEMO_GETS = 1 << 15
MAX_KEYS = 256
MAX_KEY_CHARS = 256
MAX_NDIM = 32
SLACK = 4096  # bytes a dict may decode to beyond its file size (keys, small arrays copied by numpy)
MAX_QUOTE = 200  # characters of a value or an exception quoted in a message

_CALLABLE = {
    ("numpy._core.multiarray", "_reconstruct"): "array",
    ("numpy.core.multiarray", "_reconstruct"): "array",
    ("numpy", "dtype"): "dtype",
    ("numpy._core.multiarray", "scalar"): "scalar",
    ("numpy.core.multiarray", "scalar"): "scalar",
    ("numpy._core.numeric", "_frombuffer"): "frombuffer",
    ("numpy.core.numeric", "_frombuffer"): "frombuffer",
    ("collections", "OrderedDict"): "dict",
    ("_codecs", "encode"): "bytes",  # protocol 2 spells bytes as encode(str, 'latin1')
    ("__builtin__", "bytes"): "bytes",  # protocol 2 spells b'' as bytes()
    ("builtins", "bytes"): "bytes",
}
_CALLABLE_BY_NAME = {f"{module}.{name}": kind for (module, name), kind in _CALLABLE.items()}
_NDARRAY = ("numpy", "ndarray")  # allowed only as _reconstruct's first argument
ALLOWED_GLOBALS = frozenset(_CALLABLE) | {_NDARRAY}
_NATIVE = "<" if sys.byteorder == "little" else ">"

_NUMERIC_KINDS = frozenset("biufc")
_DTYPE_NAME = re.compile(r"[<>|=]?[a-zA-Z]\d{0,10}")


def clip(text: str, limit: int = MAX_QUOTE) -> str:
    """``text`` on one line, cut to ``limit`` characters (for quoting other libraries' exception messages)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quote(text: str, limit: int = MAX_QUOTE) -> str:
    """``repr(text)``, cut to ``limit`` characters with the full length noted."""
    shown = repr(text[:limit])
    return shown if len(text) <= limit else f"{shown}... ({len(text)} characters)"


# -- step 1: the opcode scan ----------------------------------------------------------------------------------


class _Node:
    """What the scan knows of one value the stream would build."""

    __slots__ = ("depth", "kind", "size", "text")

    def __init__(self, kind: str, depth: int = 0, size: int = 1, text: str | None = None):
        self.kind, self.depth, self.size, self.text = kind, depth, size, text


_MARK = _Node("mark")
_LEAF = _Node("leaf")

# opcode -> (bytes of its fixed argument or of its length prefix, what it pushes)
_FIXED = {b"N": 0, b"\x88": 0, b"\x89": 0, b"J": 4, b"K": 1, b"M": 2, b"G": 8}
_COUNTED = {b"\x8c": (1, "str"), b"X": (4, "str"), b"\x8d": (8, "str"), b"C": (1, "bytes"), b"B": (4, "bytes"),
            b"\x8e": (8, "bytes"), b"\x96": (8, "bytes"), b"\x8a": (1, "leaf")}
_POP_TUPLE = {b"\x85": 1, b"\x86": 2, b"\x87": 3}


class _Scan:
    """The opcode walk of step 1; ``run`` returns the offset just past STOP."""

    def __init__(self, f: BinaryIO, source: str, start: int, end: int):
        self.f, self.source, self.pos, self.end = f, source, start, end
        self.stack: list[_Node] = []
        self.marks: list[int] = []
        self.memo: dict[int, _Node] = {}
        self.gets = 0

    def fail(self, what: str, error: type[Exception] = SpecError) -> Exception:
        """A corrupt stream is a ``SpecError``; pass ``UnsafePickleError`` for what a file must never hold."""
        prefix = "corrupt pickled dict: " if error is SpecError else ""
        return error(f"{self.source}: {prefix}{what} (byte {self.pos})")

    def limit(self, what: str) -> SpecError:
        return SpecError(f"{self.source}: {what} (byte {self.pos}), beyond the limit for a feature file")

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise self.fail("the pickle stream ends early")
        self.pos += n
        return data

    def skip(self, n: int) -> None:
        if n > self.end - self.pos:
            raise self.fail(f"a length of {n} bytes runs past the end of the file")
        self.f.seek(n, io.SEEK_CUR)
        self.pos += n

    def pop(self) -> _Node:
        if not self.stack or self.stack[-1] is _MARK:
            raise self.fail("the pickle stream pops from an empty stack")
        return self.stack.pop()

    def pop_mark(self) -> list[_Node]:
        if not self.marks:
            raise self.fail("the pickle stream has no MARK to pop to")
        at = self.marks.pop()
        items = self.stack[at + 1:]
        del self.stack[at:]
        return items

    def push(self, node: _Node) -> None:
        self.check(node)
        self.stack.append(node)

    def check(self, node: _Node) -> None:
        if node.depth > MAX_DEPTH:
            raise self.limit(f"values nest deeper than {MAX_DEPTH} levels")
        if node.size > MAX_NODES:
            raise self.limit(f"a value expands to more than {MAX_NODES} objects through shared references")

    def contain(self, kind: str, items: list[_Node]) -> _Node:
        return _Node(kind, 1 + max((i.depth for i in items), default=0), 1 + sum(i.size for i in items))

    def grow(self, target: _Node, items: list[_Node]) -> None:
        for item in items:
            target.depth = max(target.depth, item.depth + 1)
            target.size += item.size
        self.check(target)

    def target(self, kind: str, op: str) -> _Node:
        if not self.stack or self.stack[-1].kind != kind:
            raise self.fail(f"{op} on a value that is not a {kind}", UnsafePickleError)
        return self.stack[-1]

    def global_node(self, module: str | None, name: str | None) -> _Node:
        if (module, name) not in ALLOWED_GLOBALS:
            shown = f"{module}.{name}" if module is not None and name is not None else "a computed name"
            raise UnsafePickleError(
                f"{self.source}: refusing to unpickle global {quote(shown, 80)}; "
                "a feature .npy may only hold numpy arrays, strings and a dict"
            )
        return _Node("global", text=f"{module}.{name}")

    def line(self) -> str:
        data = self.f.readline(65)
        self.pos += len(data)
        if not data.endswith(b"\n"):
            raise self.fail("a GLOBAL name longer than 64 bytes or cut short")
        return data[:-1].decode("latin1")

    def run(self) -> int:
        f, stack = self.f, self.stack
        for _ in range(MAX_OPCODES):
            op = f.read(1)
            if not op:
                raise self.fail("the pickle stream ends without STOP")
            self.pos += 1
            if op in _FIXED:
                if _FIXED[op]:
                    self.read(_FIXED[op])
                self.push(_LEAF)
            elif op in _COUNTED:
                width, kind = _COUNTED[op]
                n = int.from_bytes(self.read(width), "little")
                if kind == "str" and n <= 64:
                    text = self.read(n).decode("utf-8", "replace")
                    self.push(_Node("str", text=text))
                else:
                    self.skip(n)
                    self.push(_Node(kind))
            elif op in (b"\x94", b"q", b"r"):  # MEMOIZE, BINPUT, LONG_BINPUT
                index = len(self.memo) if op == b"\x94" else int.from_bytes(self.read(1 if op == b"q" else 4),
                                                                            "little")
                if index > len(self.memo) or not stack or stack[-1] is _MARK:
                    raise self.fail(f"memo index {index} out of sequence")
                self.memo[index] = stack[-1]
            elif op in (b"h", b"j"):  # BINGET, LONG_BINGET
                index = int.from_bytes(self.read(1 if op == b"h" else 4), "little")
                self.gets += 1
                if index not in self.memo:
                    raise self.fail(f"memo index {index} read before it was written")
                if self.gets > MAX_MEMO_GETS:
                    raise self.limit(f"more than {MAX_MEMO_GETS} shared references")
                stack.append(self.memo[index])
            elif op == b"(":
                self.marks.append(len(stack))
                stack.append(_MARK)
            elif op == b")":
                stack.append(_Node("tuple", 1))
            elif op in _POP_TUPLE:
                items = [self.pop() for _ in range(_POP_TUPLE[op])]
                self.push(self.contain("tuple", items))
            elif op == b"t":
                self.push(self.contain("tuple", self.pop_mark()))
            elif op == b"]":
                stack.append(_Node("list", 1))
            elif op == b"}":
                stack.append(_Node("dict", 1))
            elif op == b"a":
                item = self.pop()
                self.grow(self.target("list", "APPEND"), [item])
            elif op == b"e":
                items = self.pop_mark()
                self.grow(self.target("list", "APPENDS"), items)
            elif op == b"s":
                items = [self.pop(), self.pop()]
                self.grow(self.target("dict", "SETITEM"), items)
            elif op == b"u":
                items = self.pop_mark()
                self.grow(self.target("dict", "SETITEMS"), items)
            elif op == b"c":
                module = self.line()
                stack.append(self.global_node(module, self.line()))
            elif op == b"\x93":
                name, module = self.pop(), self.pop()
                stack.append(self.global_node(module.text if module.kind == "str" else None,
                                              name.text if name.kind == "str" else None))
            elif op == b"R":
                args, func = self.pop(), self.pop()
                kind = _CALLABLE_BY_NAME.get(func.text) if func.kind == "global" else None
                if kind is None or args.kind != "tuple":
                    called = f"{func.text} directly" if func.kind == "global" else "a value that is not a global"
                    raise self.fail(f"the stream calls {called}; arrays may only be rebuilt through numpy's "
                                    "_reconstruct or _frombuffer", UnsafePickleError)
                kind = kind if kind in ("bytes", "dict", "array", "dtype") else "value"
                self.push(_Node(kind, args.depth + 1, args.size + 1))
            elif op == b"b":
                state = self.pop()
                if not stack or stack[-1].kind not in ("array", "dtype"):
                    raise self.fail("BUILD on a value that is not an array or a dtype", UnsafePickleError)
                self.grow(stack[-1], [state])
            elif op == b"\x80":
                if self.read(1)[0] > 5:
                    raise self.fail("pickle protocol above 5")
            elif op == b"\x95":  # FRAME: a length, then ordinary opcodes
                n = int.from_bytes(self.read(8), "little")
                if n > self.end - self.pos:
                    raise self.fail(f"a frame of {n} bytes runs past the end of the file")
            elif op == b".":
                if len(stack) != 1 or self.marks:
                    raise self.fail("the pickle stream stops with a malformed stack")
                return self.pos
            else:
                raise self.fail(f"pickle opcode {op!r} is not allowed in a feature file", UnsafePickleError)
        raise self.limit(f"more than {MAX_OPCODES} pickle opcodes")


# -- step 2: unpickling with wrappers -------------------------------------------------------------------------


class _NdarrayToken:
    """Stands for ``numpy.ndarray``: only ``_reconstruct`` accepts it."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError("numpy.ndarray cannot be given a state")


_NDARRAY_TOKEN = _NdarrayToken()


class _PendingDtype:
    """``numpy.dtype(name)``; the state may only set the byte order and a str dtype's size."""

    __slots__ = ("decoder", "done", "dtype")

    def __init__(self, decoder: _Decoder, name: Any):
        self.decoder, self.done = decoder, False
        if type(name) is not str or not _DTYPE_NAME.fullmatch(name):
            raise decoder.refuse(f"dtype name {quote(str(name), 40)}, expected a numeric or str dtype")
        try:
            dtype = np.dtype(name)
        except TypeError:
            raise decoder.refuse(f"unknown dtype {name!r}") from None
        if dtype.kind not in _NUMERIC_KINDS | {"U", "O"} or dtype.fields is not None or dtype.subdtype is not None:
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
        swap = order in "<>" and order != _NATIVE and dtype.byteorder != "|"
        self.dtype = dtype.newbyteorder(order) if swap else dtype
        self.done = True


class _PendingArray:
    """``_reconstruct(ndarray, (0,), b'b')``: an array that gets its bytes from the state."""

    __slots__ = ("array", "decoder", "items")

    def __init__(self, decoder: _Decoder):
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


class _Decoder(pickle.Unpickler):
    """The unpickler of step 2: globals resolve to the checking wrappers below."""

    def __init__(self, f: BinaryIO, source: str):
        super().__init__(f, encoding="latin1")
        self.source = source
        self.owned: dict[int, Any] = {}  # id -> buffer already given to an array (kept alive so ids stay unique)

    def refuse(self, what: str) -> UnsafePickleError:
        return UnsafePickleError(f"{self.source}: {what}")

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == _NDARRAY:
            return _NDARRAY_TOKEN
        kind = _CALLABLE.get((module, name))
        if kind is None:  # the scan refused it already; kept as a second line
            raise UnsafePickleError(f"{self.source}: refusing to unpickle global '{module}.{name}'")
        if (module, name) == ("_codecs", "encode"):
            return self.encode
        return getattr(self, f"make_{kind}")

    def make_array(self, subtype: Any, shape: Any, code: Any) -> _PendingArray:
        if subtype is not _NDARRAY_TOKEN or shape != (0,) or code != b"b":
            raise self.refuse("_reconstruct with arguments numpy never writes (an array with no data)")
        return _PendingArray(self)

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

    def make_frombuffer(self, raw: Any, dtype: Any, shape: Any, order: Any) -> _PendingArray:
        dtype, shape = self.dtype_of(dtype), self.shape_of(shape)
        if dtype.kind == "O":
            raise self.refuse("an object array (_frombuffer of dtype object); a feature file may hold only numeric "
                              "arrays and str")
        if order not in ("C", "F"):
            raise self.refuse(f"_frombuffer in order {quote(str(order), 10)}, expected 'C' or 'F'")
        self.own(raw, shape, dtype, bytes_only=False)
        pending = _PendingArray(self)
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


# -- step 3: the result ---------------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    if isinstance(value, _PendingArray):
        return "object array" if value.items is not None else "ndarray"
    return type(value).__name__


def _collect(result: Any, source: str, file_size: int) -> dict[str, Any]:
    if isinstance(result, _PendingArray) and result.items is not None:
        result = result.items[0]
    if not isinstance(result, dict):
        raise SpecError(f"{source}: holds a pickled {_type_name(result)}, expected a dict of features")
    if len(result) > MAX_KEYS:
        raise SpecError(f"{source}: holds {len(result)} keys, at most {MAX_KEYS} are allowed")
    out: dict[str, Any] = {}
    total = 0
    for key, value in result.items():
        if not isinstance(key, str):
            raise SpecError(f"{source}: a key of type {_type_name(key)}, expected str keys")
        key = str(key)
        if len(key) > MAX_KEY_CHARS:
            raise SpecError(f"{source}: key {quote(key, 40)} is longer than {MAX_KEY_CHARS} characters")
        _check_text(key, source, "a key")
        total += len(key)
        if isinstance(value, _PendingArray):
            if value.items is not None:
                raise UnsafePickleError(f"{source}: key {key!r} holds an object array; "
                                        "a feature file may hold only numeric arrays and str")
            if value.array is None:
                raise UnsafePickleError(f"{source}: key {key!r} holds an array with no data "
                                        "(reconstructed but never given its bytes)")
            value = value.array
            total += value.nbytes
        elif isinstance(value, str):
            total += len(_check_text(value, source, f"key {key!r}"))
        elif key == "transcript":
            raise SpecError(f"{source}: key 'transcript' must be str, found {_type_name(value)}")
        else:
            raise SpecError(f"{source}: key {key!r} must be a numpy array or str, found {_type_name(value)}")
        out[key] = value
    if total > file_size + SLACK:
        raise SpecError(f"{source}: decodes to {total} bytes of arrays and text from a {file_size}-byte file; "
                        f"a feature file may not decode to more than its size plus {SLACK} bytes")
    return out


def _check_text(text: str, source: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise SpecError(f"{source}: {what} holds text that is not valid Unicode (a lone surrogate)") from None


# -- entry point ----------------------------------------------------------------------------------------------


def _fingerprint(f: BinaryIO) -> tuple[int, ...] | None:
    try:
        st = os.fstat(f.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def load_pickled_dict(f: BinaryIO, source: str) -> dict[str, Any]:
    """Decode the pickle stream at ``f``'s position (after the `.npy` header) into a feature dict.

    Raises ``UnsafePickleError`` for anything a feature file must never hold and ``SpecError`` for a corrupt,
    oversized or malformed one; both name ``source``.
    """
    if not f.seekable():
        f = io.BytesIO(f.read())
    before = _fingerprint(f)
    start = f.tell()
    file_size = f.seek(0, io.SEEK_END)
    f.seek(start)
    stop = _Scan(f, source, start, file_size).run()
    f.seek(start)
    decoder = _Decoder(f, source)
    try:
        result = decoder.load()
    except (UnsafePickleError, SpecError):
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt stream can raise nearly anything
        raise SpecError(f"{source}: corrupt pickled dict ({type(exc).__name__}: {clip(str(exc))})") from None
    if f.tell() != stop or _fingerprint(f) != before:
        raise SpecError(f"{source}: the file changed while it was being read")
    return _collect(result, source, file_size)

