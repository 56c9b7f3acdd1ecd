"""Decoding the pickle stream of a spec `.npy` dict without trusting it.

A feature file is read in three steps, each refusing with a one-line error that names the file and the limit:

1. ``Scan`` walks the opcode stream once without building anything. Only the opcodes that numpy's own pickles
   of a dict use are allowed, globals must be on the allow-list, every length must fit in the file, and it
   tracks, for every value the stream would build, how deep it nests and how many objects it expands to through
   shared (memoised) references. Large payloads are skipped, not read.
2. ``Decoder`` unpickles the same bytes. Its ``find_class`` hands out wrappers, not numpy's functions: they
   build dtypes from a short numeric name, and arrays only through numpy's own reconstruction of a numeric or
   str dtype over exactly the bytes the file gave, after checking shape, dtype and length and before any
   element is touched. Object arrays and object dtypes are never built (the one 0-d object array that holds
   the dict is unwrapped by hand), and no two arrays share a buffer.
3. ``collect`` checks the result: a dict of str keys to numeric arrays, str or 0-d str arrays, whose arrays
   and strings add up to at most the file's size plus ``SLACK`` bytes.
"""

from __future__ import annotations

import io
import os
from typing import Any, BinaryIO

from ..errors import SpecError, UnsafePickleError
from .decode import Decoder
from .limits import ALLOWED_GLOBALS, SLACK, clip, quote
from .result import collect
from .scan import Scan

__all__ = ["ALLOWED_GLOBALS", "SLACK", "clip", "load_pickled_dict", "quote"]


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
    stop = Scan(f, source, start, file_size).run()
    f.seek(start)
    decoder = Decoder(f, source)
    try:
        result = decoder.load()
    except (UnsafePickleError, SpecError):
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt stream can raise nearly anything
        raise SpecError(f"{source}: corrupt pickled dict ({type(exc).__name__}: {clip(str(exc))})") from None
    if f.tell() != stop or _fingerprint(f) != before:
        raise SpecError(f"{source}: the file changed while it was being read")
    return collect(result, source, file_size)

