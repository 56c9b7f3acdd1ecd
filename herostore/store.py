"""``FeatureStore``: create or open a herostore store, write videos into it, list and read them.

The store's layout is declared in ``herostore.layout``; where its bytes live (a local folder, object storage)
is its location (``herostore.locations``), which makes each written video appear complete or not at all; what
a video's files are is ``herostore.encode``. Reads go through herostore's reader (``herostore.read``).

Opening an existing store with ``create`` resumes into it: the requested preset must be the store's by name or
by what it stores (``Preset.storage_key``), and new videos are always written the way the store's own recorded
preset and format version say, so a store never mixes two encodings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import StoreError
from .layout import FORMAT_NAME, StoreInfo, VideoMeta, check_video_id, json_bytes, parse_root, root_document
from .presets import DEFAULT_PRESET, Preset, get_preset
from .schema import CheckedFeatures, check_features

__all__ = ["FeatureStore", "is_store"]


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is the root of a herostore store this version can read."""
    from .locations import open_location

    try:
        parse_root(open_location(path).read_root(), os.fspath(path))
    except StoreError:
        return False
    return True


class FeatureStore:
    """A herostore store, local (``path``) or remote (an ``s3://``-style URL with ``storage_options``)."""

    def __init__(self, location: Any, *, storage_options: Mapping[str, Any] | None = None):
        if isinstance(location, (str, os.PathLike)):
            from .locations import open_location

            location = open_location(location, storage_options)
        self.location = location
        self.info: StoreInfo = parse_root(location.read_root(), location.name)

    @classmethod
    def create(cls, location: Any, preset: str | Preset = DEFAULT_PRESET, *,
               storage_options: Mapping[str, Any] | None = None) -> FeatureStore:
        """Create a store, or open the existing one if it stores what ``preset`` stores (see the module doc)."""
        from .locations import open_location

        preset = get_preset(preset)
        if isinstance(location, (str, os.PathLike)):
            location = open_location(location, storage_options)

        def accept(existing: bytes) -> None:
            have = parse_root(existing, location.name).preset
            if have.name != preset.name and have.storage_key() != preset.storage_key():
                raise StoreError(f"{location.name}: store exists with preset {have.name!r}, asked for {preset.name!r}; "
                                 "write to a new store or use its preset")

        location.create_root(root_document(preset), accept)
        return cls(location)

    @property
    def path(self) -> Path:
        """The store's folder (local stores only)."""
        path = getattr(self.location, "path", None)
        if path is None:
            raise StoreError(f"{self.location.name}: a remote store has no local path")
        return path

    @property
    def name(self) -> str:
        return self.location.name

    @property
    def preset(self) -> Preset:
        return self.info.preset

    @property
    def attrs(self) -> dict[str, Any]:
        return self.info.attrs

    def __repr__(self) -> str:
        return f"FeatureStore({self.name!r}, preset={self.preset.name!r}, format={self.info.format_version})"

    # -- listing -------------------------------------------------------------------------------------------------

    def video_ids(self) -> list[str]:
        """Every complete video, sorted."""
        return self.location.video_ids()

    def stray_folders(self) -> list[str]:
        """Folders (prefixes) in the store that are not complete videos, sorted."""
        return self.location.stray_folders()

    def __contains__(self, video_id: object) -> bool:
        return isinstance(video_id, str) and self.location.has_video(check_video_id(video_id))

    def __len__(self) -> int:
        return len(self.video_ids())

    # -- writing -------------------------------------------------------------------------------------------------

    def write_video(self, video_id: str, features: Mapping[str, Any] | CheckedFeatures, *, overwrite: bool = False,
                    notes: Mapping[str, Any] | None = None) -> bool:
        """Write one video so that it appears complete or not at all. False if it was already complete.

        ``features`` is a spec dict (checked here) or the result of ``check_features``. ``notes`` are JSON-able
        facts kept with the video (e.g. ``{"audio": "missing"}``).
        """
        from .encode import encode_video

        check_video_id(video_id)
        if not overwrite and self.location.has_video(video_id):
            return False
        checked = features if isinstance(features, CheckedFeatures) else check_features(features, source=video_id)
        files = encode_video(video_id, checked, self.preset, checksums=self.info.checksums,
                             sealed=self.info.sealed, notes=notes)
        return self.location.publish(video_id, files, overwrite)

    def delete_video(self, video_id: str) -> None:
        self.location.delete_video(check_video_id(video_id))

    def update_attrs(self, **entries: Any) -> None:
        """Set entries of the root's ``herostore`` attribute (atomically; under a lock where the location has one)."""

        def change(old: bytes) -> bytes:
            document = json.loads(old)
            document["attributes"][FORMAT_NAME].update(entries)
            return json_bytes(document)

        self.location.update_root(change)
        self.info = parse_root(self.location.read_root(), self.name)

    def clean_scratch(self, **options: Any) -> int:
        """Clear what writers that are gone left behind; how many entries were cleared."""
        return self.location.clean_scratch(**options)

    # -- reading -------------------------------------------------------------------------------------------------

    def reader(self, **options: Any) -> Any:
        """A ``ZarrReader`` over this store (options as ``ZarrReader``'s)."""
        from .read.zarr_store import ZarrReader

        return ZarrReader(self.location, **options)

    def video_meta(self, video_id: str) -> VideoMeta:
        """The video's transcript, notes and array metadata."""
        return self.reader().video_meta(video_id)

    def shapes(self, video_id: str) -> dict[str, tuple[int, ...]]:
        return {k: tuple(m["shape"]) for k, m in self.video_meta(video_id).arrays.items()}

    def read_video(self, video_id: str, modalities: Iterable[str] | None = None) -> dict[str, Any]:
        """A spec dict of the stored arrays (stored dtype) and the transcript."""
        record = self.reader().read(video_id, None if modalities is None else list(modalities))
        return {**record.arrays, "transcript": record.transcript}

    def open_video(self, video_id: str) -> Any:
        """The video as a read-only ``zarr.Group`` (zarr-python's own reading)."""
        from .read.reference import open_group

        return open_group(self.location, check_video_id(video_id))
