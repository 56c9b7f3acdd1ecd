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
different videos into one store at once. Scratch entries are named
``<host>-<pid>-<uuid>``; ``clean_scratch`` removes those of dead writers on this host
and puts back a video whose overwrite was cut short (see ``_publish``). A folder
without ``zarr.json`` is not a video and is not listed. Each video group carries its
own consolidated metadata, so opening a video costs one metadata read however large
the store grows; the root never lists its videos (a million video documents would
make opening the store cost gigabytes).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
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
RETIRED_SUFFIX = ".old"
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
        attributes = meta.get("attributes") if isinstance(meta, dict) else None
        info = attributes.get(FORMAT_NAME) if isinstance(attributes, dict) else None
        if not isinstance(info, dict) or meta.get("zarr_format") != 3:
            raise StoreError(f"{self.path}: a Zarr group, but not a herostore store (no '{FORMAT_NAME}' attribute)")
        version = info.get("format_version")
        if version != FORMAT_VERSION:
            raise StoreError(
                f"{self.path}: store format version {version}, this herostore reads version {FORMAT_VERSION}"
            )
        self.attrs: dict[str, Any] = info
        self.preset: Preset = Preset.from_config(info.get("preset"), source=str(meta_path))

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
        if path.exists() and not path.is_dir():
            raise StoreError(f"{path}: exists and is not a folder; a new store needs a new or empty folder")
        if path.exists() and any(p.name != TMP_DIR for p in path.iterdir()):
            raise StoreError(f"{path}: exists and is not empty; a new store needs a new or empty folder")
        make_folder(path, "the store folder")
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
        """Every complete video (a folder holding ``zarr.json``), sorted."""
        return sorted(name for name, is_video in self._folders() if is_video)

    def stray_folders(self) -> list[str]:
        """Folders in the store that are not videos (no ``zarr.json``, e.g. an interrupted copy), sorted."""
        return sorted(name for name, is_video in self._folders() if not is_video)

    def _folders(self) -> list[tuple[str, bool]]:
        with os.scandir(self.path) as entries:
            return [
                (e.name, os.path.isfile(os.path.join(e.path, GROUP_META)))
                for e in entries
                if not e.name.startswith(".") and e.is_dir()
            ]

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
        return tmp / f"{_host()}-{os.getpid()}-{uuid.uuid4().hex}"

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
            chunks = (self.preset.rows_per_chunk(data.shape[0]),) + data.shape[1:]
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
        # The old copy waits under .tmp/<host>-<pid>-<uuid>.old/<video_id> until the new one is in place: if this
        # process dies between the two renames, clean_scratch finds the video missing and puts the old copy back.
        retired = scratch.with_name(scratch.name + RETIRED_SUFFIX)
        retired.mkdir()
        try:
            os.rename(target, retired / target.name)
        except OSError:
            retired.rmdir()
            raise
        try:
            os.rename(scratch, target)
        except OSError:
            with contextlib.suppress(OSError):  # put the old copy back; else clean_scratch will
                os.rename(retired / target.name, target)
                retired.rmdir()
            raise
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
        """Clear the scratch entries of dead writers on this host; return how many were cleared.

        Only entries named after this host are judged: a pid means nothing on another machine writing to the
        same shared filesystem. An overwrite cut short between its two renames left the old copy in a
        ``.old`` entry and no video in place: that copy is moved back (with a warning) instead of deleted.
        """
        tmp = self.path / TMP_DIR
        if not tmp.is_dir():
            return 0
        host = _host()
        cleared = 0
        for entry in sorted(tmp.iterdir()):
            owner = _scratch_owner(entry.name)
            if owner is None or owner[0] != host or _pid_alive(owner[1]):
                continue
            if entry.name.endswith(RETIRED_SUFFIX) and entry.is_dir():
                self._restore_retired(entry)
            shutil.rmtree(entry, ignore_errors=True)
            cleared += 1
        return cleared

    def _restore_retired(self, entry: Path) -> None:
        for old in entry.iterdir():
            try:
                target = self.video_path(old.name)
            except InvalidVideoIdError:
                continue
            if not (old / GROUP_META).is_file():
                continue
            try:
                os.rename(old, target)  # fails if a writer has put a video there since: then the old copy goes
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                continue
            warnings.warn(f"{self.path}: restored video {old.name!r} from {entry.name}: its overwrite was cut "
                          f"short (the writer died between retiring the old copy and publishing the new one)",
                          stacklevel=3)

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
        features = self._read_arrays(group, video_id, modalities)
        if "transcript" not in group.attrs:
            raise StoreError(f"{self.path}: video {video_id!r}: {GROUP_META} has no 'transcript' attribute")
        features["transcript"] = group.attrs["transcript"]
        return features

    def read_arrays(self, video_id: str, modalities: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """The stored arrays (stored dtype) of the video's modalities, without the transcript."""
        return self._read_arrays(self.open_video(video_id), video_id, modalities)

    def _read_arrays(self, group: Any, video_id: str, modalities: Iterable[str] | None) -> dict[str, np.ndarray]:
        info = group.attrs.get(FORMAT_NAME)
        if not isinstance(info, dict) or not isinstance(info.get("modalities"), list):
            raise StoreError(f"{self.path}: video {video_id!r}: {GROUP_META} has no '{FORMAT_NAME}' attribute "
                             f"listing its modalities (not written by herostore, or edited)")
        present = set(info["modalities"])
        wanted = [m for m in check_modalities(modalities) if m in present]
        return {key: np.asarray(group[key][...]) for key in wanted}


def spec_dims_note(shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """Human-readable notes on arrays whose last dim differs from the spec."""
    return [
        f"{key}: last dim {shape[-1]}, spec says {MODALITY_BY_NAME[key].dim}"
        for key, shape in shapes.items()
        if key in MODALITY_BY_NAME and shape[-1] != MODALITY_BY_NAME[key].dim
    ]


def _host() -> str:
    """This machine's name as used in scratch entry names (file-name safe, no '-' ambiguity for the pid)."""
    return re.sub(r"[^A-Za-z0-9._]", "_", socket.gethostname()) or "localhost"


def _scratch_owner(name: str) -> tuple[str, int] | None:
    """``(host, pid)`` of a ``<host>-<pid>-<uuid>[.old]`` scratch entry, ``None`` for anything else."""
    parts = name.removesuffix(RETIRED_SUFFIX).rsplit("-", 2)
    if len(parts) != 3 or not parts[0] or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def make_folder(path: Path, what: str) -> None:
    """``mkdir -p path``, or a ``StoreError`` naming ``path`` (and the file in the way, if one is)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        reason = f"{blocker} is a file, not a folder" if blocker is not None else (exc.strerror or str(exc))
        raise StoreError(f"{path}: cannot create {what}: {reason}") from None


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
