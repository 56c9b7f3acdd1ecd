"""Step 3: checking what was decoded: a bounded dict of str keys to numeric arrays and text."""

from __future__ import annotations

from typing import Any

from ..errors import SpecError, UnsafePickleError
from .decode import PendingArray
from .limits import (
    MAX_KEY_CHARS,
    MAX_KEYS,
    SLACK,
    quote,
)


def _type_name(value: Any) -> str:
    if isinstance(value, PendingArray):
        return "object array" if value.items is not None else "ndarray"
    return type(value).__name__


def collect(result: Any, source: str, file_size: int) -> dict[str, Any]:
    if isinstance(result, PendingArray) and result.items is not None:
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
        if isinstance(value, PendingArray):
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


