"""Legitimate feature files in every form numpy writes them: the reader must load each one.

``legit_files()`` returns ``{name: bytes}``: ``np.save`` of a dict, the holder pickled with protocols 2 to 5,
the same streams as numpy 1.x names its globals (``numpy.core.*``), and float16/float64, 3-D, Fortran-order,
big-endian, OrderedDict, 0-d str and numpy str transcripts. They double as the fuzzer's seeds.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from typing import Any

import numpy as np

from .crafted import npy_bytes


def features(seed: int = 0, *, rows: tuple[int, int, int, int] = (3, 2, 5, 2), dtype: Any = np.float32,
             au: bool = False) -> dict[str, Any]:
    """A small spec dict with random arrays of ``dtype``."""
    rng = np.random.default_rng(seed)
    dims = {"video_mae": 1024, "clip": 1408, "hubert": 1024, "bert": 768}
    d: dict[str, Any] = {k: rng.standard_normal((n, dim)).astype(dtype) for (k, dim), n in zip(dims.items(), rows)}
    if au:
        d["au"] = rng.standard_normal((rows[0], 1024)).astype(dtype)
    d["transcript"] = f"transcript {seed} — with non-ASCII text"
    return d


class _Numpy1Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes numpy's globals under numpy 1.x's module names (``numpy.core.*``)."""

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", "") or ""
        if not module.startswith("numpy._core."):
            return super().save_global(obj, name)
        module, name = module.replace("numpy._core.", "numpy.core."), name or obj.__name__
        if self.proto >= 4:
            self.save(module)
            self.save(name)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)


def holder_stream(d: Any, protocol: int, *, numpy1: bool = False) -> bytes:
    """The pickle stream of the 0-d object array holding ``d``, as ``np.save`` writes it."""
    holder = np.empty((), dtype=object)
    holder[()] = d
    if not numpy1:
        return pickle.dumps(holder, protocol=protocol)
    out = io.BytesIO()
    _Numpy1Pickler(out, protocol=protocol).dump(holder)
    return out.getvalue()


def np_save_bytes(d: Any) -> bytes:
    out = io.BytesIO()
    np.save(out, d, allow_pickle=True)
    return out.getvalue()


def legit_files() -> dict[str, bytes]:
    """Every legitimate variant, by name."""
    files = {"np_save.npy": np_save_bytes(features(0)), "np_save_au.npy": np_save_bytes(features(1, au=True))}
    for protocol in (2, 3, 4, 5):
        for numpy1 in (False, True):
            tag = f"protocol{protocol}{'_numpy1' if numpy1 else ''}"
            files[f"{tag}.npy"] = npy_bytes(holder_stream(features(protocol, au=True), protocol, numpy1=numpy1))
    for dtype in (np.float16, np.float64, ">f4"):
        files[f"{np.dtype(dtype).str[1:]}_{np.dtype(dtype).byteorder}.npy".replace(">", "be").replace("<", "le")
              .replace("=", "native")] = np_save_bytes(features(2, dtype=dtype))
    rng = np.random.default_rng(7)
    fortran = features(3)
    fortran["hubert"] = np.asfortranarray(fortran["hubert"])
    three_d = features(4)
    three_d["clip"] = rng.standard_normal((2, 3, 1408)).astype(np.float32)
    three_d["video_mae"] = rng.standard_normal((1, 3, 1024)).astype(np.float32)
    str_0d = features(5)
    str_0d["transcript"] = np.array(str_0d["transcript"])
    np_str = features(6)
    np_str["transcript"] = np.str_(np_str["transcript"])
    extras = features(7)
    extras.update(speaker="spk-1", frame_times=np.arange(3, dtype=np.float64), empty="", tiny=np.zeros(1, np.int8))
    big = features(8, rows=(300, 257, 500, 40), au=True)
    for name, d in {"fortran": fortran, "three_d": three_d, "str_0d": str_0d, "np_str": np_str, "extras": extras,
                    "ordered": OrderedDict(features(9)), "big": big}.items():
        files[f"{name}.npy"] = np_save_bytes(d)
        files[f"{name}_protocol5.npy"] = npy_bytes(holder_stream(d, 5))
        files[f"{name}_protocol2_numpy1.npy"] = npy_bytes(holder_stream(d, 2, numpy1=True))
    return files
