"""crc32c, the checksum of every chunk (the core Zarr v3 ``crc32c`` codec) and of every sealed video document."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["crc32c"]


def crc32c(data: Any, crc: int = 0) -> int:
    """crc32c of a bytes-like object (hardware accelerated), continuing from ``crc``."""
    import google_crc32c

    if not isinstance(data, bytes):
        data = np.frombuffer(data, np.uint8)
    return google_crc32c.extend(crc, data)
