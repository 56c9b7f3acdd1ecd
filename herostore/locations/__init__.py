"""Where a store's bytes live, and how they are read and written there.

- ``local``: a folder on a local or mounted cluster filesystem (chunk files, atomic rename);
- ``remote``: a folder on object storage or any fsspec filesystem (concurrent GETs, the group ``zarr.json`` last
  as the commit marker);
- ``packed``: a packed dataset (``herostore pack``), local or remote, read-only: one contiguous range per video
  (``shards`` reads those ranges from a local folder or a URL).

Single files by path or URL (label files, ``.npy`` dicts), fsspec options and remote error messages are in
``herostore.urls``.

Every location reads the root document, lists complete videos, reads a video's document, fills chunk jobs; the
writable ones also create the root, update it, and publish a video so that it appears complete or not at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .. import layout, urls
from ..errors import StoreError
from ..npyfile import SUFFIX as NPY_SUFFIX
from ..packlayout import MANIFEST
from ..urls import display, is_url
from .local import LocalDirectory

__all__ = ["LocalDirectory", "dataset_root_of", "display", "is_packed", "is_url", "open_location",
           "resolve_features"]


def is_packed(path: str | os.PathLike, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether ``path`` (a folder or a URL) holds a packed dataset (its ``herostore-pack.json``)."""
    return urls.exists(urls.join(path, MANIFEST), storage_options)


def open_location(path: str | os.PathLike, storage_options: Mapping[str, Any] | None = None) -> Any:
    """The location object for a local folder or a URL (remote locations need their fsspec package installed);
    a packed dataset (``herostore-pack.json`` there) is opened as one."""
    if is_packed(path, storage_options):
        from .packed import PackedDataset

        return PackedDataset(os.fspath(path), storage_options)
    if is_url(path):
        from .remote import RemoteDirectory

        return RemoteDirectory(os.fspath(path), storage_options)
    return LocalDirectory(urls.local(path))


def resolve_features(path: str | os.PathLike, storage_options: Mapping[str, Any] | None = None) -> Any:
    """The features location of a dataset root (``root/features``), or ``path`` itself if it is one.

    A ``Path`` for local paths (``layout.resolve_features``), a URL string for URLs: ``URL/features`` when it
    holds a store, a packed dataset or ``.npy`` files, else ``URL`` when it does.
    """
    if not is_url(path):
        return layout.resolve_features(urls.local(path))
    url = os.fspath(path).rstrip("/")
    for candidate in (urls.join(url, layout.FEATURES_DIR), url):
        if urls.exists(urls.join(candidate, layout.META), storage_options) or is_packed(candidate, storage_options):
            return candidate
        if urls.list_names(candidate, NPY_SUFFIX, storage_options):
            return candidate
    raise StoreError(f"{display(url)}: no dataset root or features folder there (no {layout.FEATURES_DIR}/"
                     f"{layout.META}, {layout.META}, {MANIFEST} or .npy files)")


def dataset_root_of(features: str | os.PathLike) -> Any:
    """The dataset root whose label files go with ``features``: its parent (a ``Path`` or a URL string)."""
    return urls.parent(features)
