"""Where extracted features go: a herostore Zarr store, or the spec's ``<video_id>.npy`` dict files.

``OutputSpec`` says where and how (it pickles, for worker processes); ``Output`` opens it, tells
which videos are already complete (a run resumes) and writes one video at a time, atomically. The path may be a
URL (``s3://bucket/root/features``): a store there publishes each video with its ``zarr.json`` last, and an
``.npy`` file is one PUT (see ``herostore.locations.remote``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .. import urls
from ..errors import ExtractionError
from ..presets import DEFAULT_PRESET, get_preset
from ..store import FeatureStore

__all__ = ["FORMATS", "Output", "OutputSpec", "how_to_read"]

FORMATS = ("zarr", "npy")


@dataclass(frozen=True)
class OutputSpec:
    """The output of a run: ``path`` is the ``feature_root`` a loader is given, in either format.

    ``zarr``: ``path`` becomes a herostore store written with ``preset``; ``npy``: a folder of
    float32 ``<video_id>.npy`` spec dicts. Complete videos are skipped unless ``overwrite``. ``path`` may be a
    URL; ``storage_options`` go to fsspec (they are never shown: not in the repr, not in messages).
    """

    path: str
    format: str = "zarr"
    preset: str = DEFAULT_PRESET
    overwrite: bool = False
    storage_options: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", os.fspath(self.path))
        object.__setattr__(self, "preset", str(self.preset))
        if self.format not in FORMATS:
            raise ExtractionError(f"format {self.format!r}: expected one of {', '.join(FORMATS)}")

    def absolute(self) -> OutputSpec:
        """This spec with an absolute path, for worker processes that run in another folder (URLs stay)."""
        if urls.is_url(self.path):
            return self
        return replace(self, path=os.path.abspath(os.path.expanduser(urls.local(self.path))))


def how_to_read(path: str, fmt: str) -> str | None:
    """The run summary's last line for a store: the spec's loaders expect ``.npy`` files, so say how to read
    a store and how to get those files. None for ``npy``, which is the spec's own format."""
    if fmt != "zarr":
        return None
    path = urls.display(path)
    return (f"wrote a herostore Zarr store at {path} (not the spec's .npy files): read it with "
            f"herostore.compat.HERODataset (HERO's loader) or herostore.dataset.HeroDataset, or get the spec's "
            f".npy files with --format npy or `herostore export-npy {path} DATASET_ROOT`")


class Output:
    """An opened output: a store is created (or reopened with the same preset), a folder made."""

    def __init__(self, spec: OutputSpec):
        self.spec = spec
        self.path: Any = spec.path if urls.is_url(spec.path) else urls.local(spec.path)
        if spec.format == "zarr":
            self.store: FeatureStore | None = FeatureStore.create(self.path, spec.preset,
                                                                  storage_options=spec.storage_options)
        else:
            get_preset(spec.preset)  # refuse a bad name the same way for both formats
            self.store = None
            if not urls.is_url(self.path):
                self.path.mkdir(parents=True, exist_ok=True)

    def done(self, video_id: str) -> bool:
        """Whether ``video_id`` is complete in the output (for a remote store: its ``zarr.json`` is there)."""
        if self.store is not None:
            return video_id in self.store
        return urls.exists(urls.join(self.path, f"{video_id}.npy"), self.spec.storage_options)

    def write(self, video_id: str, features: dict[str, Any], notes: dict[str, Any]) -> bool:
        """Write one video atomically; False if it was complete and ``overwrite`` is off."""
        if self.store is not None:
            return self.store.write_video(video_id, features, overwrite=self.spec.overwrite, notes=notes)
        from ..npyfile import save_features

        target = urls.join(self.path, f"{video_id}.npy")
        if not self.spec.overwrite and urls.exists(target, self.spec.storage_options):
            return False
        # the spec dict has no room for notes: see docs/extraction.md
        save_features(target, features, storage_options=self.spec.storage_options)
        return True
