"""Where a store's bytes live, and how they are read and written there.

- ``local``: a folder on a local or mounted cluster filesystem (chunk files, atomic rename);
- ``remote``: a folder on object storage or any fsspec filesystem (ranged reads, the group ``zarr.json`` last as
  the commit marker).

Every location reads the root document, lists complete videos, reads a video's document, fills chunk jobs; the
writable ones also create the root, update it under a lock, and publish a video so that it appears complete or
not at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .local import LocalDirectory

__all__ = ["LocalDirectory", "is_url", "open_location"]


def is_url(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a remote location (``s3://...``, ``https://...``), not a local folder."""
    text = os.fspath(path)
    return "://" in text and not text.startswith("file://")


def open_location(path: str | os.PathLike, storage_options: Mapping[str, Any] | None = None) -> Any:
    """The location object for a local folder or a URL (remote locations need their fsspec package installed)."""
    text = os.fspath(path)
    if is_url(text):
        from .remote import RemoteDirectory

        return RemoteDirectory(text, storage_options)
    return LocalDirectory(text.removeprefix("file://"))
