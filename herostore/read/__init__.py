"""Reading features, one API over every source: ``open_reader(path_or_url)`` picks the reader.

- ``protocol``: ``VideoRecord`` and the ``Reader`` protocol every reader follows;
- ``engine``: the Zarr v3 chunk engine (plan an array once, check and decode chunks);
- ``zarr_store``: ``ZarrReader``, the fast path over a store's location (``herostore.locations``: a folder, a URL,
  or a packed dataset, local or remote);
- ``reference``: the same reads through zarr-python;
- ``npy_folder``: ``NpyReader`` for the spec's folder of ``.npy`` dicts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .. import npyfile
from ..errors import StoreError
from ..layout import META
from ..packlayout import MANIFEST
from .npy_folder import NpyReader
from .protocol import Reader, VideoRecord, default_threads
from .zarr_store import ZarrReader

__all__ = ["NpyReader", "Reader", "VideoRecord", "ZarrReader", "default_threads", "open_reader"]


def open_reader(feature_root: str | os.PathLike, *, fast: bool = True, zero_copy: bool = False,
                threads: int | None = None, storage_options: Mapping[str, Any] | None = None) -> Reader:
    """The reader for a herostore store or a packed dataset, or a folder of spec ``.npy`` files; local or by URL
    (``s3://...``, with ``storage_options`` for fsspec)."""
    from .. import urls
    from ..locations import open_location

    expected = ("expected a herostore store (zarr.json with a 'herostore' attribute), a packed dataset "
                f"({MANIFEST}) or a folder of <video_id>.npy files")
    if urls.is_url(feature_root):
        url = os.fspath(feature_root).rstrip("/")
        location = open_location(url, storage_options)  # a packed dataset, else a directory store or not a store
        if location.kind == "packed" or urls.exists(urls.join(url, META), storage_options):
            return ZarrReader(location, fast=fast, zero_copy=zero_copy, threads=threads)
        if urls.list_names(url, npyfile.SUFFIX, storage_options):
            return NpyReader(url, storage_options=storage_options)
        raise StoreError(f"{urls.display(url)}: neither a herostore store nor a folder of .npy files; {expected}")
    path = urls.local(feature_root)
    if (path / META).is_file() or (path / MANIFEST).is_file():
        return ZarrReader(open_location(path), fast=fast, zero_copy=zero_copy, threads=threads)
    if not path.exists():
        raise StoreError(f"{path}: no such file or folder; {expected}")
    if path.is_dir():
        with os.scandir(path) as entries:
            if any(e.name.endswith(npyfile.SUFFIX) and not e.name.startswith(".") for e in entries):
                return NpyReader(path)
        raise StoreError(f"{path}: neither a herostore store nor a folder of .npy files; {expected}")
    raise StoreError(f"{path}: is a file; {expected}")
