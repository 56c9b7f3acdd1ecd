"""The herostore layout, declared once: dataset roots, the store's two kinds of documents, videos, versions.

A dataset root holds ``features/`` (a herostore store, or the spec's folder of ``<video_id>.npy`` dicts) beside
``labels.json`` and ``classes.json``. A store is a Zarr v3 group whose ``zarr.json`` carries a ``herostore``
attribute (format version, preset, optional statistics); each video is a child group holding ``zarr.json``
(transcript, notes, its arrays' consolidated metadata) and one array per modality. Every module that reads or
writes these names or documents goes through this module, so they agree on what a store, a video and a
readable version are. See docs/format.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .checksum import crc32c
from .errors import CorruptStoreError, InvalidVideoIdError, StoreError
from .presets import Preset
from .schema import MODALITY_BY_NAME, TRANSCRIPT_KEY

FEATURES_DIR = "features"
LABELS_FILE = "labels.json"
CLASSES_FILE = "classes.json"
LABEL_FILES = (LABELS_FILE, CLASSES_FILE)
META = "zarr.json"  # a Zarr v3 node's document; a video group's is written last and marks the video complete
SCRATCH_DIR = ".tmp"  # writers' scratch inside a local store; never a Zarr node, removed when a run ends
FORMAT_NAME = "herostore"  # the attribute (root and video groups) holding herostore's own facts
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
CHECKSUMS_FROM = 2  # from format 2 every chunk ends in a crc32c checksum of its bytes
SEALED_FROM = 3  # from format 3 every video document is sealed (``seal_video``)
_LAYOUT_TEXT = "one group per video, one [T, D] array per modality"
# keys of a video's herostore attribute that are not notes; the last three seal a video document
_BOOKKEEPING = ("modalities", "deviations", "video_id", "chunks", "digest")
_ID_MAX_BYTES = 200


def check_video_id(video_id: Any) -> str:
    """Refuse ids that are not plain names inside a store (a file name, a Zarr node name, an object key part)."""
    if not isinstance(video_id, str) or not video_id:
        raise InvalidVideoIdError(f"video id {video_id!r}: expected a non-empty string")
    problems = []
    if "/" in video_id or "\\" in video_id:
        problems.append("contains a path separator")
    if video_id.startswith("."):
        problems.append("starts with '.'")
    if video_id.startswith("__"):
        problems.append("starts with '__' (reserved by Zarr)")
    if any(ord(c) < 32 or ord(c) == 127 for c in video_id):
        problems.append("contains a control character")
    try:
        size = len(video_id.encode("utf-8"))
    except UnicodeEncodeError:
        problems.append("is not valid Unicode (a lone surrogate)")
        size = 0
    if size > _ID_MAX_BYTES:
        problems.append(f"is longer than {_ID_MAX_BYTES} bytes")
    if problems:
        raise InvalidVideoIdError(f"video id {video_id!r} {problems[0]}: ids must be plain file names")
    return video_id


# -- dataset roots -----------------------------------------------------------------------------------------------


def resolve_features(path: str | os.PathLike) -> Path:
    """The features location of a dataset root (``root/features``), or ``path`` itself if it is one."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: no such dataset root or features folder")
    if (path / FEATURES_DIR).is_dir():
        return path / FEATURES_DIR
    if path.is_dir():
        return path
    raise StoreError(f"{path}: expected a dataset root (with {FEATURES_DIR}/) or a features folder")


def dataset_root_of(features: Path) -> Path:
    """The dataset root whose label files go with ``features``: its parent folder."""
    return features.parent


# -- the root document -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreInfo:
    """What a store's root ``zarr.json`` says."""

    source: str  # the store, for messages
    format_version: int
    preset: Preset
    attrs: dict[str, Any] = field(repr=False)

    @property
    def checksums(self) -> bool:
        """Whether every chunk ends in a crc32c of its bytes."""
        return self.format_version >= CHECKSUMS_FROM

    @property
    def sealed(self) -> bool:
        """Whether every video document is sealed: its video id, its chunks' checksums, a digest of itself."""
        return self.format_version >= SEALED_FROM

    def stats(self) -> dict[str, dict[str, np.ndarray]] | None:
        """Recorded per-modality statistics ``{modality: {"mean": f32[D], "std": f32[D], "count": i64}}``, or None."""
        raw = self.attrs.get("stats")
        if not isinstance(raw, dict):
            return None
        out = {}
        for modality, entry in raw.items():
            try:
                mean = np.asarray(entry["mean"], dtype=np.float32).reshape(-1)
                std = np.asarray(entry["std"], dtype=np.float32).reshape(-1)
                count = np.asarray(entry["count"], dtype=np.int64)
            except (KeyError, TypeError, ValueError) as exc:
                raise CorruptStoreError(f"{self.source}: unreadable statistics of {modality!r} ({exc})") from None
            if mean.shape != std.shape or not (np.isfinite(mean).all() and np.isfinite(std).all()):
                raise CorruptStoreError(f"{self.source}: statistics of {modality!r} have mean {list(mean.shape)} "
                                        f"and std {list(std.shape)}, expected two finite vectors of one length")
            out[modality] = {"mean": mean, "std": std, "count": count}
        return out


def parse_json(data: bytes, source: str) -> Any:
    """A Zarr document's JSON, or a ``CorruptStoreError`` naming ``source``."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise CorruptStoreError(f"{source}: unreadable Zarr metadata ({type(exc).__name__}: {exc})") from None


def parse_root(data: bytes, source: str) -> StoreInfo:
    """Check a store's root ``zarr.json``; refuse what is not herostore or a version this one cannot read."""
    document = parse_json(data, f"{source}/{META}")
    if not isinstance(document, dict) or document.get("zarr_format") != 3:
        raise StoreError(f"{source}: {META} is not a Zarr v3 document; expected a herostore store")
    attributes = document.get("attributes")
    info = attributes.get(FORMAT_NAME) if isinstance(attributes, dict) else None
    if not isinstance(info, dict):
        raise StoreError(f"{source}: a Zarr group, but not a herostore store (no '{FORMAT_NAME}' attribute)")
    version = info.get("format_version")
    if version not in READABLE_VERSIONS:
        raise StoreError(f"{source}: store format version {version!r}; this herostore reads versions "
                         f"{', '.join(map(str, READABLE_VERSIONS))} (a newer herostore wrote it: upgrade)")
    preset = Preset.from_config(info.get("preset"), source=f"{source}/{META}")
    return StoreInfo(source, int(version), preset, info)


def root_document(preset: Preset, format_version: int = FORMAT_VERSION, **extra: Any) -> bytes:
    """The root ``zarr.json`` of a new store."""
    info = {"format_version": format_version, "layout": _LAYOUT_TEXT, "preset": preset.to_config(), **extra}
    return json_bytes({"zarr_format": 3, "node_type": "group", "attributes": {FORMAT_NAME: info}})


def json_bytes(document: Any) -> bytes:
    """Strict JSON (a non-finite number is an error, never a bare ``NaN`` token), UTF-8."""
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False).encode("utf-8")


def finite_list(values: np.ndarray, what: str) -> list[float]:
    """``values`` as a JSON list, refusing NaN and infinities (they are not JSON)."""
    out = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.isfinite(out).all():
        raise ValueError(f"{what}: {int((~np.isfinite(out)).sum())} non-finite values cannot be stored as JSON")
    return out.tolist()


# -- video documents ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoMeta:
    """What a video group's ``zarr.json`` says."""

    video_id: str
    transcript: str
    modalities: tuple[str, ...]  # the arrays the video has, in the spec's order
    arrays: dict[str, dict[str, Any]]  # consolidated Zarr metadata per array
    notes: dict[str, Any]  # facts the writer recorded (audio missing, extraction models, ...)
    deviations: list[str]  # how the source deviated from the spec
    chunk_crcs: dict[str, tuple[int, ...]] | None = None  # each array's chunks' crc32c (a sealed document)


def video_attributes(transcript: str, modalities: Sequence[str], deviations: Sequence[str],
                     notes: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of a video group, as ``parse_video`` reads them back."""
    clash = sorted(set(notes) & set(_BOOKKEEPING))
    if clash:
        raise ValueError(f"note keys {clash} are reserved by the store layout")
    return {TRANSCRIPT_KEY: transcript,
            FORMAT_NAME: {"modalities": list(modalities), "deviations": list(deviations), **dict(notes)}}


def seal_video(document: dict[str, Any], video_id: str, chunk_crcs: Mapping[str, Sequence[int]]) -> bytes:
    """A video document, sealed (format 3 on): it names its video, lists each chunk's crc32c, and carries a crc32c of
    itself (``digest``), so an edit of its transcript, notes or array metadata, a video renamed or copied under
    another id, and a chunk moved or copied from elsewhere are all errors when read."""
    info = document["attributes"][FORMAT_NAME]
    info["video_id"] = video_id
    info["chunks"] = {name: [int(crc) for crc in crcs] for name, crcs in chunk_crcs.items()}
    info.pop("digest", None)
    info["digest"] = f"{_digest(document):08x}"
    return json_bytes(document)


def _digest(document: dict[str, Any]) -> int:
    """crc32c of a document's canonical JSON text (sorted keys, no spaces), its own ``digest`` left out."""
    info = document["attributes"][FORMAT_NAME]
    stored = info.pop("digest", None)
    try:
        return crc32c(json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                 allow_nan=False).encode("utf-8"))
    finally:
        if stored is not None:
            info["digest"] = stored


# (crc32c of a raw document, video id) this process found sealed correctly: the check is a function of both
_SEALS_CHECKED: set[tuple[int, str]] = set()
_SEALS_LIMIT = 1 << 20


def _check_seal(data: bytes, document: dict[str, Any], info: dict[str, Any], video_id: str, where: str) -> None:
    raw = (crc32c(data), video_id)
    if raw in _SEALS_CHECKED:
        return
    digest = info.get("digest")
    if not isinstance(digest, str):
        raise CorruptStoreError(f"{where}: {META} is not sealed (no digest; format 3 seals every video document)")
    try:
        ok = int(digest, 16) == _digest(document)
    except (ValueError, TypeError, RecursionError):
        ok = False
    if not ok:
        raise CorruptStoreError(f"{where}: {META} does not match its digest: its transcript, notes or array "
                                "metadata were edited or damaged")
    if info.get("video_id") != video_id:
        raise CorruptStoreError(f"{where}: {META} belongs to video {str(info.get('video_id'))[:100]!r}: the folder "
                                "was renamed or copied")
    if len(_SEALS_CHECKED) >= _SEALS_LIMIT:
        _SEALS_CHECKED.clear()
    _SEALS_CHECKED.add(raw)


def parse_video(data: bytes, source: str, video_id: str, format_version: int = FORMAT_VERSION) -> VideoMeta:
    """Check a video group's ``zarr.json``; anything a herostore writer never produces is a ``CorruptStoreError``.

    From format 3 the document must be sealed (``seal_video``) and its seal is checked (once per process for a
    given document).
    """
    where = f"{source}: video {video_id!r}"
    document = parse_json(data, f"{where} ({META})")
    if not isinstance(document, dict) or document.get("node_type") != "group" or document.get("zarr_format") != 3:
        raise CorruptStoreError(f"{where}: {META} is not a Zarr v3 group document")
    attributes = document.get("attributes")
    attributes = attributes if isinstance(attributes, dict) else {}
    transcript = attributes.get(TRANSCRIPT_KEY)
    if not isinstance(transcript, str):
        found = ("no 'transcript' attribute" if transcript is None
                 else f"a transcript of type {type(transcript).__name__}")
        raise CorruptStoreError(f"{where}: {META} has {found}; expected the transcript as a string "
                                "(an empty one when there is no speech)")
    info = attributes.get(FORMAT_NAME)
    modalities = info.get("modalities") if isinstance(info, dict) else None
    if not isinstance(modalities, list) or not all(isinstance(m, str) and m in MODALITY_BY_NAME for m in modalities):
        raise CorruptStoreError(f"{where}: {META} has no '{FORMAT_NAME}' attribute listing its modalities "
                                "(not written by herostore, or edited)")
    consolidated = document.get("consolidated_metadata")
    metadata = consolidated.get("metadata") if isinstance(consolidated, dict) else None
    if not isinstance(metadata, dict):
        raise CorruptStoreError(f"{where}: {META} has no consolidated metadata of its arrays")
    unlisted = sorted(set(metadata) - set(modalities), key=str)
    if unlisted:
        names = ", ".join(repr(str(name)[:50]) for name in unlisted[:5])
        raise CorruptStoreError(f"{where}: {META} holds the metadata of {names} but "
                                f"lists the modalities {modalities[:8]} (edited or damaged: an array would be left out)")
    arrays = {}
    for name in modalities:
        meta = metadata.get(name)
        if not isinstance(meta, dict) or meta.get("node_type") != "array":
            raise CorruptStoreError(f"{where}: modality {name!r} is listed but its array metadata is missing")
        arrays[name] = meta
    deviations = info.get("deviations")
    notes = {k: v for k, v in info.items() if k not in _BOOKKEEPING}
    order = [m for m in MODALITY_BY_NAME if m in arrays]
    crcs = None
    if format_version >= SEALED_FROM:
        _check_seal(data, document, info, video_id, where)
        crcs = _chunk_crcs(info.get("chunks"), order, where)
    return VideoMeta(video_id, transcript, tuple(order), arrays, notes,
                     list(deviations) if isinstance(deviations, list) else [], crcs)


def _chunk_crcs(listed: Any, modalities: Sequence[str], where: str) -> dict[str, tuple[int, ...]]:
    if not isinstance(listed, dict) or sorted(listed) != sorted(modalities) or not all(
            isinstance(crcs, list) and all(type(c) is int and 0 <= c < 1 << 32 for c in crcs)
            for crcs in listed.values()):
        raise CorruptStoreError(f"{where}: {META} does not list its chunks' checksums for {list(modalities)}")
    return {name: tuple(crcs) for name, crcs in listed.items()}
