"""Where a store's bytes live, and how they are read and written there.

- ``local``: a folder on a local or mounted cluster filesystem (chunk files, atomic rename);
- ``remote``: a folder on object storage or any fsspec filesystem (ranged reads, the group ``zarr.json`` last as
  the commit marker);
- ``packed``: a packed dataset (``herostore pack``), local or remote, read-only: one contiguous range per video
  (``shards`` reads those ranges from a local folder or a URL).

Every location reads the root document, lists complete videos, reads a video's document, fills chunk jobs; the
writable ones also create the root, update it under a lock, and publish a video so that it appears complete or
not at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .local import LocalDirectory

__all__ = ["LocalDirectory", "is_packed", "is_url", "open_location"]


def is_url(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a remote location (``s3://...``, ``https://...``), not a local folder."""
    text = os.fspath(path)
    return "://" in text and not text.startswith("file://")


def open_location(path: str | os.PathLike, storage_options: Mapping[str, Any] | None = None) -> Any:
    """The location object for a local folder or a URL (remote locations need their fsspec package installed);
    a packed dataset (``herostore-pack.json`` there) is opened as one."""
    text = os.fspath(path)
    if is_packed(text, storage_options):
        from .packed import PackedDataset

        return PackedDataset(text, storage_options)
    if is_url(text):
        from .remote import RemoteDirectory

        return RemoteDirectory(text, storage_options)
    return LocalDirectory(text.removeprefix("file://"))


def is_packed(path: str | os.PathLike, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether ``path`` (a folder or a URL) holds a packed dataset."""
    from .packed import is_packed as check

    return check(path, storage_options)
