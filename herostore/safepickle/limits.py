"""What a feature file may hold: the allow-listed globals, and the limits every step enforces."""

from __future__ import annotations

import re
import sys

__all__ = ["ALLOWED_GLOBALS", "MAX_DEPTH", "MAX_KEYS", "MAX_KEY_CHARS", "MAX_MEMO_GETS", "MAX_NDIM", "MAX_NODES",
           "MAX_OPCODES", "MAX_QUOTE", "SLACK", "clip", "quote"]

MAX_OPCODES = 1 << 18
MAX_DEPTH = 32
MAX_NODES = 1 << 17  # objects one value expands to, shared references counted each time
MAX_MEMO_GETS = 1 << 15
MAX_KEYS = 256
MAX_KEY_CHARS = 256
MAX_NDIM = 32
SLACK = 4096  # bytes a dict may decode to beyond its file size (keys, small arrays copied by numpy)
MAX_QUOTE = 200  # characters of a value or an exception quoted in a message

CALLABLE = {
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
CALLABLE_BY_NAME = {f"{module}.{name}": kind for (module, name), kind in CALLABLE.items()}
NDARRAY = ("numpy", "ndarray")  # allowed only as _reconstruct's first argument
ALLOWED_GLOBALS = frozenset(CALLABLE) | {NDARRAY}
NATIVE = "<" if sys.byteorder == "little" else ">"

NUMERIC_KINDS = frozenset("biufc")
DTYPE_NAME = re.compile(r"[<>|=]?[a-zA-Z]\d{0,10}")


def clip(text: str, limit: int = MAX_QUOTE) -> str:
    """``text`` on one line, cut to ``limit`` characters (for quoting other libraries' exception messages)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quote(text: str, limit: int = MAX_QUOTE) -> str:
    """``repr(text)``, cut to ``limit`` characters with the full length noted."""
    shown = repr(text[:limit])
    return shown if len(text) <= limit else f"{shown}... ({len(text)} characters)"
