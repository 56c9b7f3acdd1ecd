"""Hand-made hostile feature files, one per attack class, as `.npy` bytes.

``write_all(folder)`` regenerates the files kept in ``tests/data/crafted/``. Each builder returns the bytes of a
complete `.npy` file: a numpy header for a 0-d object array, then a pickle stream. Streams are written with the
pickler where it can express the attack, and opcode by opcode where it cannot (deep nesting, shared references).
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npformat

try:
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer


def npy_bytes(stream: bytes) -> bytes:
    """A version 1.0 `.npy` file whose payload is the pickle ``stream`` (a 0-d object array's header)."""
    out = io.BytesIO()
    npformat.write_array_header_1_0(out, {"descr": "|O", "fortran_order": False, "shape": ()})
    return out.getvalue() + stream


class Reduce:
    """Pickles as ``func(*args)``, optionally followed by ``__setstate__(state)``."""

    def __init__(self, func: Any, args: tuple, state: Any = None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self) -> tuple:
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def spec_dict(**changes: Any) -> dict[str, Any]:
    """A small valid feature dict (T=1) with ``changes`` applied."""
    d: dict[str, Any] = {
        "video_mae": np.ones((1, 1024), np.float32),
        "clip": np.ones((1, 1408), np.float32),
        "hubert": np.ones((1, 1024), np.float32),
        "bert": np.ones((1, 768), np.float32),
        "transcript": "crafted",
    }
    d.update(changes)
    return d


def _dumps(obj: Any, protocol: int = 2) -> bytes:
    return npy_bytes(pickle.dumps(obj, protocol=protocol))


def object_array_over_bytes() -> bytes:
    """The holder itself is ``numpy.ndarray((), dtype('O'), b'AAAAAAAA')``: reading it follows a pointer from the file."""
    return npy_bytes(pickle.dumps(Reduce(np.ndarray, ((), np.dtype("O"), b"\x41" * 8)), protocol=2))


def object_array_in_dict() -> bytes:
    """A value ``numpy.ndarray((1,), dtype('O'), b'AAAAAAAA')`` inside the dict."""
    return _dumps(spec_dict(video_mae=Reduce(np.ndarray, ((1,), np.dtype("O"), b"\x41" * 8))))


def object_frombuffer() -> bytes:
    """``_frombuffer(b'AAAAAAAA', dtype('O'), (1,), 'C')``, protocol 5's array constructor with an object dtype."""
    return _dumps(spec_dict(video_mae=Reduce(_frombuffer, (b"\x41" * 8, np.dtype("O"), (1,), "C"))), protocol=5)


def deep_nested_key(depth: int = 300_000) -> bytes:
    """A dict key ``((((),),),)`` nested ``depth`` levels deep: hashing it overflows the C stack."""
    stream = b"\x80\x02}" + b")" + b"\x85" * depth + b"N" + b"s."
    return npy_bytes(stream)


def shared_reference_bomb(levels: int = 64) -> bytes:
    """A key ``x = (x, x)`` repeated ``levels`` times through the memo: 2**levels leaves to hash or print."""
    body = b"N"
    for i in range(levels):
        body += b"r" + struct.pack("<I", i) + b"j" + struct.pack("<I", i) + b"\x86"
    stream = b"\x80\x02}" + body + b"N" + b"s."
    return npy_bytes(stream)


def stride_zero_array(rows: int = 125_000) -> bytes:
    """A ``[rows, 1024]`` float32 array broadcast from 4 bytes (stride 0): a 512 MB array from a 17 KB file."""
    evil = Reduce(np.ndarray, ((rows, 1024), np.dtype("f4"), b"\0\0\x80\x3f", 0, (0, 0)))
    return _dumps(spec_dict(video_mae=evil))


def huge_key_by_memo(copies: int = 300, size: int = 20_000) -> bytes:
    """An extra key: a tuple of ``copies`` references to one ``size``-char string, echoed into notes."""
    text = "k" * size
    return _dumps(spec_dict() | {tuple(text for _ in range(copies)): "v"})


def long_key_name(size: int = 20_000) -> bytes:
    """An extra key whose name is ``size`` characters, echoed into deviations and metadata."""
    return _dumps(spec_dict() | {"k" * size: "v"})


def uninitialised_array(rows: int = 4) -> bytes:
    """``numpy.ndarray((rows, 768), float32)`` with no data: the array holds whatever memory it got."""
    evil = Reduce(np.ndarray, ((rows, 768), np.dtype("f4")))
    return _dumps(spec_dict(bert=evil))


def reconstruct_without_state(rows: int = 4) -> bytes:
    """``_reconstruct(ndarray, (rows, 768), float32)`` never followed by ``__setstate__``: uninitialised memory."""
    evil = Reduce(_reconstruct, (np.ndarray, (rows, 768), np.dtype("f4")))
    return _dumps(spec_dict(bert=evil))


def shared_buffer_between_keys() -> bytes:
    """Two arrays built over one memoised bytes object: one buffer, counted twice."""
    raw = np.ones((4, 1024), np.float32).tobytes()
    arrays = [Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (4, 1024), np.dtype("f4"), False, raw))
              for _ in range(2)]
    return _dumps(spec_dict(video_mae=arrays[0], hubert=arrays[1]))


def longdouble_ones(shape: tuple[int, ...]) -> np.ndarray:
    """Ones of numpy's long double with its padding bytes zeroed (``np.ones`` leaves them as whatever memory held,
    so a file pickled from it would differ from run to run)."""
    one = bytearray(np.array(1, np.longdouble).tobytes())
    if np.finfo(np.longdouble).nmant == 63:  # x87 extended precision: 10 bytes of value, the rest padding
        one[10:] = bytes(len(one) - 10)
    return np.frombuffer(bytes(one) * int(np.prod(shape)), np.longdouble).reshape(shape).copy()


def float128_array() -> bytes:
    """A float128 array: numeric, but not a dtype the spec or a store can hold."""
    return _dumps(spec_dict(hubert=longdouble_ones((2, 1024))))


def empty_last_dim() -> bytes:
    """A ``[T, 0]`` array."""
    return _dumps(spec_dict(bert=np.ones((3, 0), np.float32)), protocol=3)


def shared_array_amplified(copies: int = 200) -> bytes:
    """One 100 KB array referenced under ``copies`` keys through the memo: 20 MB decoded from a 120 KB file."""
    big = np.ones((25, 1024), np.float32)
    return _dumps(spec_dict() | {f"copy{i}": big for i in range(copies)}, protocol=4)


BUILDERS: dict[str, Callable[[], bytes]] = {
    "object_array_over_bytes.npy": object_array_over_bytes,
    "object_array_in_dict.npy": object_array_in_dict,
    "object_frombuffer.npy": object_frombuffer,
    "deep_nested_key.npy": deep_nested_key,
    "shared_reference_bomb.npy": shared_reference_bomb,
    "stride_zero_array.npy": stride_zero_array,
    "huge_key_by_memo.npy": huge_key_by_memo,
    "long_key_name.npy": long_key_name,
    "uninitialised_array.npy": uninitialised_array,
    "reconstruct_without_state.npy": reconstruct_without_state,
    "shared_buffer_between_keys.npy": shared_buffer_between_keys,
    "float128_array.npy": float128_array,
    "empty_last_dim.npy": empty_last_dim,
    "shared_array_amplified.npy": shared_array_amplified,
}


def write_all(folder: str | Path) -> list[Path]:
    """Write every crafted file into ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, build in BUILDERS.items():
        (folder / name).write_bytes(build())
        paths.append(folder / name)
    return paths
