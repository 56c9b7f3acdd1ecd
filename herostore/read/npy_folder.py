"""``NpyReader``: the spec's ``features/`` folder of ``<video_id>.npy`` dicts, read safely, locally or by URL."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import npyfile, urls
from ..errors import ArgumentError, InvalidVideoIdError, StoreError, VideoNotFoundError
from ..layout import check_video_id
from ..schema import check_features, check_modalities
from .protocol import VideoRecord, check_max_rows
from .rows import Rows, check_rows, copy_rows, destination

__all__ = ["NpyReader"]


class NpyReader:
    """Read videos from a folder of spec ``<video_id>.npy`` dicts.

    Files are unpickled with herostore's allow-listed unpickler (no arbitrary code) and normalised by
    ``check_features`` (a leading ``[1, T, D]`` axis is squeezed). ``max_rows`` truncates after loading: the
    format has no partial reads.
    """

    format = "npy"

    def __init__(self, path: str | os.PathLike, *, storage_options: Mapping[str, Any] | None = None):
        self.remote = urls.is_url(path)
        self.path = os.fspath(path).rstrip("/") if self.remote else urls.local(path)
        self.storage_options = dict(storage_options or {})
        if not self.remote and not self.path.is_dir():
            raise StoreError(f"{self.path}: not a folder; expected a folder of <video_id>.npy feature files")
        self._ids: list[str] | None = None

    def __repr__(self) -> str:
        return f"NpyReader({urls.display(self.path)!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_ids"] = None
        return state

    def close(self) -> None:
        """Drop the cached id list; the reader stays usable (it holds nothing open)."""
        self._ids = None

    def video_ids(self) -> list[str]:
        """Every ``<video_id>.npy`` in the folder, sorted (one directory listing, cached)."""
        if self._ids is None:
            names = urls.list_names(self.path, npyfile.SUFFIX, self.storage_options)
            self._ids = [name[: -len(npyfile.SUFFIX)] for name in names]
        return self._ids

    def __contains__(self, video_id: object) -> bool:
        try:
            video_id = check_video_id(video_id)
        except InvalidVideoIdError:
            return False
        return urls.exists(urls.join(self.path, video_id + npyfile.SUFFIX), self.storage_options)

    def __len__(self) -> int:
        return len(self.video_ids())

    def stats(self) -> None:
        return None

    def preset_name(self) -> None:
        return None

    def read(self, video_id: str, modalities: Sequence[str] | None = None,
             max_rows: Mapping[str, int] | None = None) -> VideoRecord:
        wanted = check_modalities(modalities)
        limits = check_max_rows(max_rows)
        path = urls.join(self.path, check_video_id(video_id) + npyfile.SUFFIX)
        source = urls.display(path)
        try:
            raw = npyfile.load_dict(path, self.storage_options)
        except VideoNotFoundError:
            raise VideoNotFoundError(f"{urls.display(self.path)}: no video {video_id!r} "
                                     f"(no {video_id}{npyfile.SUFFIX})") from None
        checked = check_features(raw, source=source)
        arrays = {}
        for key in wanted:
            if key in checked.arrays:
                array = checked.arrays[key]
                arrays[key] = array[: limits[key]] if key in limits else array
        return VideoRecord(video_id, arrays, checked.transcript, {})

    def read_into(self, video_id: str, dests: Mapping[str, np.ndarray], *, rows: Mapping[str, Rows] | None = None,
                  record: VideoRecord | None = None) -> None:
        """Copy rows of the video's arrays into memory the caller already has: ``dests[modality]``.

        The same contract as ``ZarrReader.read_into``, but the format has no partial reads: the file is loaded
        whole (or ``record``, this video as ``read`` returned it, is used), then the selected rows are copied into
        each destination, cast once.
        """
        if record is None:
            record = self.read(video_id, list(dests))
        selections = rows or {}
        for key, dest in dests.items():
            where = f"{self.path}: video {video_id!r}, modality {key!r}"
            array = record.arrays.get(key)
            if array is None:
                raise ArgumentError(f"{where}: the video has no such array (it has "
                                    f"{', '.join(map(repr, record.arrays))})")
            need, index = check_rows(selections.get(key), array.shape[0], where)
            copy_rows(array, destination(dest, (need if index is None else len(index),) + array.shape[1:], where),
                      index)
