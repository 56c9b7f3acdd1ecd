"""The herostore Zarr store: one Zarr v3 group per dataset, one group per video.

Layout (format version 1, see docs/format.md)::

    features/                 root group; attributes["herostore"] = format, preset
      zarr.json
      <video_id>/             one group per video, its arrays' metadata consolidated
        zarr.json             attributes: transcript, herostore notes
        video_mae/ clip/ hubert/ bert/ [au/]     [T, D] arrays chunked along T
      .tmp/                   writers' scratch space, never a Zarr node

A video is written into ``.tmp/`` and renamed into place, so a reader sees either the
whole video or nothing, even when the writer is killed; several processes can write
different videos into one store at once. Each video group carries its own
consolidated metadata, so opening a video costs one metadata read however large the
store grows; the root never lists its videos (a million video documents would make
opening the store cost gigabytes).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidVideoIdError, SpecError, StoreError, VideoNotFoundError
from .presets import DEFAULT_PRESET, Preset, get_preset
from .schema import MODALITY_BY_NAME, CheckedFeatures, check_features, check_modalities

FORMAT_NAME = "herostore"
FORMAT_VERSION = 1
TMP_DIR = ".tmp"
GROUP_META = "zarr.json"
_ID_MAX_BYTES = 200


def check_video_id(video_id: Any) -> str:
    """Refuse ids that are not plain names inside the store."""
    if not isinstance(video_id, str) or not video_id:
        raise InvalidVideoIdError(f"video id {video_id!r}: expected a non-empty string")
    problems = []
    if "/" in video_id or "\\" in video_id:
        problems.append("contains a path separator")
    if video_id in (".", "..") or video_id.startswith("."):
        problems.append("starts with '.'")
    if video_id.startswith("__"):
        problems.append("starts with '__' (reserved by Zarr)")
    if os.path.isabs(video_id) or ":" in video_id[:2]:
        problems.append("is an absolute path")
    if any(ord(c) < 32 for c in video_id):
        problems.append("contains a control character")
    if len(video_id.encode("utf-8", "surrogatepass")) > _ID_MAX_BYTES:
        problems.append(f"is longer than {_ID_MAX_BYTES} bytes")
    if problems:
        raise InvalidVideoIdError(f"video id {video_id!r} {problems[0]}: ids must be plain file names")
    return video_id


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is the root of a herostore Zarr store."""
    meta = Path(path) / GROUP_META
    if not meta.is_file():
        return False
    try:
        return FORMAT_NAME in json.loads(meta.read_text("utf-8")).get("attributes", {})
    except (OSError, ValueError):
        return False


class FeatureStore:
    """A herostore store on the local filesystem.

    ``FeatureStore.create(path, preset)`` makes a new store or opens an existing one
    with the same preset; ``FeatureStore(path)`` opens an existing one. Reads here go
    through zarr-python; ``herostore.reader`` has the fast read path.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        meta_path = self.path / GROUP_META
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
        except FileNotFoundError:
            raise StoreError(f"{self.path}: not a herostore store (no {GROUP_META})") from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"{meta_path}: unreadable Zarr metadata: {exc}") from None
        info = meta.get("attributes", {}).get(FORMAT_NAME)
        if meta.get("zarr_format") != 3 or not isinstance(info, dict):
            raise StoreError(f"{self.path}: a Zarr group, but not a herostore store (no '{FORMAT_NAME}' attribute)")
        version = info.get("format_version")
        if version != FORMAT_VERSION:
            raise StoreError(
                f"{self.path}: store format version {version}, this herostore reads version {FORMAT_VERSION}"
            )
        self.attrs: dict[str, Any] = info
        self.preset: Preset = Preset.from_config(info["preset"])

    @classmethod
    def create(cls, path: str | os.PathLike, preset: str | Preset = DEFAULT_PRESET) -> FeatureStore:
        """Create a store, or open the existing one if it was made with the same preset."""
        path = Path(path)
        preset = get_preset(preset)
        if (path / GROUP_META).exists():
            store = cls(path)
            if store.preset != preset:
                raise StoreError(
                    f"{path}: store exists with preset {store.preset.name!r}, asked for {preset.name!r}; "
                    "write to a new store or use its preset"
                )
            return store
        if path.exists() and any(p.name != TMP_DIR for p in path.iterdir()):
            raise StoreError(f"{path}: exists and is not empty; a new store needs a new or empty folder")
        path.mkdir(parents=True, exist_ok=True)
        attributes = {
            FORMAT_NAME: {
                "format_version": FORMAT_VERSION,
                "layout": "one group per video, one [T, D] array per modality",
                "preset": preset.to_config(),
            }
        }
        document = {"zarr_format": 3, "node_type": "group", "attributes": attributes}
        _atomic_write_text(path / GROUP_META, json.dumps(document, indent=2, ensure_ascii=False))
        return cls(path)

    # -- listing -------------------------------------------------------------------

    def video_ids(self) -> list[str]:
        """Every complete video, sorted."""
        with os.scandir(self.path) as entries:
            return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))

    def __contains__(self, video_id: object) -> bool:
        return isinstance(video_id, str) and (self.path / check_video_id(video_id) / GROUP_META).is_file()

    def __len__(self) -> int:
        return len(self.video_ids())

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, preset={self.preset.name!r})"

    def video_path(self, video_id: str) -> Path:
        return self.path / check_video_id(video_id)

    # -- writing -------------------------------------------------------------------

    def write_video(
        self,
        video_id: str,
        features: Mapping[str, Any] | CheckedFeatures,
        *,
        overwrite: bool = False,
        notes: Mapping[str, Any] | None = None,
    ) -> bool:
        """Write one video atomically. Returns False if it was already complete.

        ``features`` is a spec dict (checked here) or the result of ``check_features``.
        ``notes`` are JSON-able facts kept with the video (e.g. ``{"audio": "missing"}``).
        """
        target = self.video_path(video_id)
        if not overwrite and (target / GROUP_META).is_file():
            return False
        checked = features if isinstance(features, CheckedFeatures) else check_features(features, source=video_id)
        scratch = self._scratch_dir(video_id)
        try:
            self._write_group(scratch, video_id, checked, notes or {})
            return self._publish(scratch, target, overwrite)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _scratch_dir(self, video_id: str) -> Path:
        tmp = self.path / TMP_DIR
        tmp.mkdir(exist_ok=True)
        return tmp / f"{os.getpid()}-{uuid.uuid4().hex}"

    def _write_group(self, where: Path, video_id: str, checked: CheckedFeatures, notes: Mapping[str, Any]) -> None:
        import zarr
        from zarr.storage import LocalStore

        store = LocalStore(where)
        attributes = {
            "transcript": checked.transcript,
            FORMAT_NAME: {
                "modalities": list(checked.arrays),
                "deviations": checked.deviations,
                **dict(notes),
            },
        }
        group = zarr.create_group(store, zarr_format=3, attributes=attributes)
        for key, source in checked.arrays.items():
            try:
                data = self.preset.prepare(source)
            except OverflowError as exc:
                raise SpecError(f"{video_id}: key {key!r}: {exc}; use the lossless preset") from None
            chunks = (min(self.preset.chunk_rows, data.shape[0]),) + data.shape[1:]
            array = group.create_array(
                key,
                shape=data.shape,
                dtype=data.dtype,
                chunks=chunks,
                compressors=self.preset.compressors(),
                fill_value=0,
                config={"write_empty_chunks": True},
            )
            array[...] = data
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            zarr.consolidate_metadata(store)

    def _publish(self, scratch: Path, target: Path, overwrite: bool) -> bool:
        try:
            os.rename(scratch, target)
            return True
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        if not overwrite:
            return False  # another writer finished this video first
        retired = scratch.with_name(scratch.name + ".old")
        os.rename(target, retired)
        os.rename(scratch, target)
        shutil.rmtree(retired, ignore_errors=True)
        return True

    def update_attrs(self, **entries: Any) -> None:
        """Set entries of the root's ``herostore`` attribute (under a lock, atomically)."""
        import fcntl

        lock_dir = self.path / TMP_DIR
        lock_dir.mkdir(exist_ok=True)
        with open(lock_dir / "root.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            meta_path = self.path / GROUP_META
            document = json.loads(meta_path.read_text("utf-8"))
            document["attributes"][FORMAT_NAME].update(entries)
            _atomic_write_text(meta_path, json.dumps(document, indent=2, ensure_ascii=False))
        self.attrs = document["attributes"][FORMAT_NAME]

    def delete_video(self, video_id: str) -> None:
        target = self.video_path(video_id)
        if not target.exists():
            raise VideoNotFoundError(f"{self.path}: no video {video_id!r}")
        retired = self._scratch_dir(video_id)
        os.rename(target, retired)
        shutil.rmtree(retired, ignore_errors=True)

    def clean_scratch(self) -> int:
        """Remove scratch folders left by writers that died (their pid is gone)."""
        removed = 0
        tmp = self.path / TMP_DIR
        if not tmp.is_dir():
            return 0
        for entry in tmp.iterdir():
            pid = entry.name.split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed

    # -- reading (zarr-python; see herostore.reader for the fast path) --------------

    def video_metadata(self, video_id: str) -> dict[str, Any]:
        """The video group's Zarr document: attributes and its arrays' metadata."""
        path = self.video_path(video_id) / GROUP_META
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError:
            raise VideoNotFoundError(f"{self.path}: no video {video_id!r}") from None

    def shapes(self, video_id: str) -> dict[str, tuple[int, ...]]:
        meta = self.video_metadata(video_id)
        arrays = meta.get("consolidated_metadata", {}).get("metadata", {})
        return {k: tuple(v["shape"]) for k, v in arrays.items() if v.get("node_type") == "array"}

    def open_video(self, video_id: str):
        """The video as a read-only ``zarr.Group``."""
        import zarr

        if video_id not in self:
            raise VideoNotFoundError(f"{self.path}: no video {video_id!r}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            return zarr.open_group(str(self.video_path(video_id)), mode="r", zarr_format=3)

    def read_video(self, video_id: str, modalities: Iterable[str] | None = None) -> dict[str, Any]:
        """A spec dict of the stored arrays (stored dtype) and the transcript."""
        group = self.open_video(video_id)
        present = set(group.attrs[FORMAT_NAME]["modalities"])
        wanted = [m for m in check_modalities(modalities) if m in present]
        features: dict[str, Any] = {key: np.asarray(group[key][...]) for key in wanted}
        features["transcript"] = group.attrs["transcript"]
        return features


def spec_dims_note(shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """Human-readable notes on arrays whose last dim differs from the spec."""
    return [
        f"{key}: last dim {shape[-1]}, spec says {MODALITY_BY_NAME[key].dim}"
        for key, shape in shapes.items()
        if key in MODALITY_BY_NAME and shape[-1] != MODALITY_BY_NAME[key].dim
    ]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(text, "utf-8")
    os.replace(tmp, path)
