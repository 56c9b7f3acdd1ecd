"""What every reader gives: one ``VideoRecord`` per video, whatever the format and wherever the bytes are."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..errors import ArgumentError
from ..schema import check_modalities

__all__ = ["Reader", "VideoRecord", "check_max_rows", "default_threads"]


@dataclass
class VideoRecord:
    """One video as read: the requested arrays it has, its transcript and notes."""

    video_id: str
    arrays: dict[str, np.ndarray]  # stored dtype and shape ([T, D], or 3-D as stored)
    transcript: str
    notes: dict[str, Any] = field(default_factory=dict)  # e.g. {"audio": "missing"}; {} for npy


class Reader(Protocol):
    """The read API of every feature source (a store, a packed dataset, a folder of spec ``.npy`` files).

    Readers pickle without open files or caches and open what they need lazily in the process that reads, so
    they cross fork, spawn and forkserver into DataLoader workers and dask workers.
    """

    format: str  # "zarr", "packed" or "npy"

    def read(self, video_id: str, modalities: Sequence[str] | None = None,
             max_rows: Mapping[str, int] | None = None) -> VideoRecord: ...

    def video_ids(self) -> list[str]: ...

    def __contains__(self, video_id: object) -> bool: ...

    def __len__(self) -> int: ...

    def stats(self) -> dict[str, dict[str, np.ndarray]] | None: ...

    def preset_name(self) -> str | None: ...

    def close(self) -> None: ...


def check_max_rows(max_rows: Mapping[str, int] | None) -> dict[str, int]:
    """``{modality: rows}`` checked: known modalities, ints >= 0."""
    if not max_rows:
        return {}
    check_modalities(list(max_rows))
    for key, value in max_rows.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ArgumentError(f"max_rows[{key!r}] = {value!r}: expected an int >= 0")
    return {k: int(v) for k, v in max_rows.items()}


def check_threads(threads: Any) -> int | None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ArgumentError(f"threads={threads!r}: expected an int >= 1, or None for the default")
    return threads


def default_threads() -> int:
    """Threads a reader uses per sample: 1 inside a DataLoader worker (the workers already use the cores), else
    the CPUs this process may run on, at most 4."""
    torch_data = sys.modules.get("torch.utils.data")
    if torch_data is not None and torch_data.get_worker_info() is not None:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cpus))
