"""A store on object storage or any fsspec filesystem (``s3://bucket/root/features``, ``memory://...``).

**Publishing without rename.** A video becomes visible by the order of its writes: every array document and
chunk first, the video group's ``zarr.json`` (the commit marker) last. Listings, ``has_video``, readers and
resumed runs count a video only when its marker exists, so a writer killed mid-video leaves nothing visible; the
next write of that video removes what the killed writer left, then writes it whole.

**Rewriting a video** (``overwrite``, or a video written again after ``delete_video``) removes the old marker
first, so the video disappears, then the old objects; new objects are written only ``rewrite_grace_s`` seconds
after the old marker went. A reader that read the old marker and fetches its chunks within that time gets the
old chunks or a missing chunk, never a new one; a reader slower than half of it checks, after fetching, that the
marker it planned from is still there unchanged, and otherwise raises ``VideoChangedError`` ("read it again").
So a reader sees the old video, no video, or the new video, never rows of two versions — with one exception it
cannot see: a rewrite whose marker is byte-identical to the old one (same shapes, transcript and notes) but
whose chunks differ, read by a reader slower than the grace. The local store's rename has no such window.

Listing cost: ``video_ids`` is one recursive listing of the store (about 11 keys per video; S3 returns 1,000
keys per request). A sample costs one GET for the marker and one per chunk it needs, sent concurrently over the
process's connection pool (``urls.S3_CONNECTIONS`` for ``s3://``). Credentials come the usual fsspec/AWS way
and are never written into a store or a message (see ``herostore.urls``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import CorruptStoreError, StoreError, VideoNotFoundError
from ..layout import META, check_video_id
from ..read.engine import ChunkJob, VerifiedChunks, decode_chunk
from ..urls import describe, display, error_code, is_missing, object_exists, open_filesystem, remote_errors

__all__ = ["REWRITE_GRACE_S", "RemoteDirectory", "VideoChangedError"]

REWRITE_GRACE_S = 2.0


class VideoChangedError(StoreError):
    """A video was overwritten or deleted while it was being read; reading it again gives one version."""


class RemoteDirectory:
    """The objects of a store under a URL prefix. Pickles without its filesystem object."""

    kind = "directory"
    rewrite_grace_s = REWRITE_GRACE_S

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None):
        self.url = os.fspath(url).rstrip("/")
        self.name = display(self.url)
        self.storage_options = dict(storage_options or {})
        self._fs: Any = None
        self._root = ""
        self._pid: int | None = None
        self._recent = threading.local()  # per thread: (video_id, start time, marker bytes) of the last read

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fs": None, "_pid": None, "_recent": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._recent = threading.local()

    def __repr__(self) -> str:
        return f"RemoteDirectory({self.name!r})"

    def filesystem(self) -> tuple[Any, str]:
        """This process's fsspec filesystem and the store's root path on it."""
        if self._fs is None or self._pid != os.getpid():
            self._fs, self._root = open_filesystem(self.url, self.storage_options)
            self._pid = os.getpid()
        return self._fs, self._root

    def _path(self, key: str) -> str:
        return f"{self.filesystem()[1]}/{key}"

    def _read_kwargs(self) -> dict[str, Any]:
        # s3fs sends a HEAD before every whole-object GET unless told to read with one connection per object
        return {"max_concurrency": 1} if hasattr(self.filesystem()[0], "max_concurrency") else {}

    def _fail(self, exc: BaseException, action: str) -> StoreError:
        return StoreError(describe(exc, self.url, action, self.storage_options))

    def _cat(self, key: str) -> bytes:
        """One object's bytes; ``FileNotFoundError`` when it is not there."""
        fs, _ = self.filesystem()
        try:
            return fs.cat_file(self._path(key), **self._read_kwargs())
        except remote_errors() as exc:
            if is_missing(exc):
                raise FileNotFoundError(key) from None
            raise self._fail(exc, f"reading {key}") from None

    def _exists(self, key: str) -> bool:
        fs, _ = self.filesystem()
        try:
            return object_exists(fs, self._path(key))
        except remote_errors() as exc:
            raise self._fail(exc, f"looking for {key}") from None

    def _listing(self, prefix: str = "") -> dict[str, int]:
        """Every object under the store (or under ``prefix``): key relative to the store -> size."""
        fs, root = self.filesystem()
        top = f"{root}/{prefix}".rstrip("/")
        try:
            found = fs.find(top, detail=True)
        except remote_errors() as exc:
            if isinstance(exc, FileNotFoundError) and error_code(exc) != "NoSuchBucket" and is_missing(exc):
                return {}
            raise self._fail(exc, "listing the store") from None
        start = len(root) + 1
        return {path[start:]: int(entry.get("size") or 0) for path, entry in found.items()
                if path.startswith(root + "/")}

    # -- listing -------------------------------------------------------------------------------------------------

    def read_root(self) -> bytes:
        try:
            return self._cat(META)
        except FileNotFoundError:
            raise StoreError(f"{self.name}: not a herostore store (no {META}); expected a store root") from None

    def _videos(self) -> tuple[list[str], list[str]]:
        """Complete videos and stray prefixes (objects but no marker), from one listing."""
        complete, prefixes = set(), set()
        for key in self._listing():
            parts = key.split("/")
            if len(parts) < 2 or parts[0].startswith("."):
                continue
            prefixes.add(parts[0])
            if len(parts) == 2 and parts[1] == META:
                complete.add(parts[0])
        return sorted(complete), sorted(prefixes - complete)

    def video_ids(self) -> list[str]:
        """Every complete video (a prefix holding the group ``zarr.json``), sorted; one recursive listing."""
        return self._videos()[0]

    def stray_folders(self) -> list[str]:
        """Prefixes with objects but no group ``zarr.json``: a writer was killed there (or is writing now)."""
        return self._videos()[1]

    def has_video(self, video_id: str) -> bool:
        return self._exists(f"{video_id}/{META}")

    def video_document(self, video_id: str) -> bytes:
        started = time.monotonic()
        try:
            document = self._cat(f"{video_id}/{META}")
        except FileNotFoundError:
            raise VideoNotFoundError(f"{self.name}: no video {video_id!r}") from None
        self._recent.last = (video_id, started, document)
        return document

    def entries(self, video_id: str) -> dict[str, tuple[str, int]]:
        """Every object of a video (one listing): ``{key: ("file", bytes)}``; object stores hold no links."""
        start = len(video_id) + 1
        return {key[start:]: ("file", size) for key, size in self._listing(f"{video_id}/").items()
                if key.startswith(f"{video_id}/")}

    def sizes(self, video_id: str) -> dict[str, int]:
        """Bytes of every object of a video, by key relative to the video (one listing)."""
        return {key: size for key, (_, size) in self.entries(video_id).items()}

    def read_key(self, video_id: str, key: str) -> bytes:
        """A whole object of a video; ``FileNotFoundError`` if missing."""
        return self._cat(f"{video_id}/{key}")

    # -- reading chunks ------------------------------------------------------------------------------------------

    def fill(self, video_id: str, jobs: Sequence[ChunkJob], where: Callable[[ChunkJob], str], *,
             threads: int, verified: VerifiedChunks) -> None:
        """Fetch the jobs' chunk objects concurrently, check the video did not change meanwhile, decode each."""
        if not jobs:
            return
        fs, _ = self.filesystem()
        paths = [self._path(f"{video_id}/{job.key}") for job in jobs]
        try:
            fetched = fs.cat(paths, on_error="return", **self._read_kwargs())
        except remote_errors() as exc:
            raise self._fail(exc, f"reading video {video_id!r}") from None
        missing = None
        for job, path in zip(jobs, paths):
            data = fetched.get(path) if isinstance(fetched, dict) else fetched
            if data is None or (isinstance(data, BaseException) and is_missing(data)):
                missing = missing or job
            elif isinstance(data, BaseException):
                raise self._fail(data, f"reading {where(job)}") from None
        self._check_unchanged(video_id, force=missing is not None)
        if missing is not None:
            raise CorruptStoreError(f"{where(missing)}: the chunk object is missing (the store is damaged)")
        for job, path in zip(jobs, paths):
            decode_chunk(job.plan, fetched[path], job.dest, where(job), expected=job.crc)

    def _check_unchanged(self, video_id: str, force: bool) -> None:
        """After a slow read (or a missing chunk), check the marker the read was planned from is still there."""
        last = getattr(self._recent, "last", None)
        if last is None or last[0] != video_id:
            return
        _, started, document = last
        if not force and time.monotonic() - started <= self.rewrite_grace_s / 2:
            return
        try:
            now = self._cat(f"{video_id}/{META}")
        except FileNotFoundError:
            now = None
        if now != document:
            raise VideoChangedError(f"{self.name}: video {video_id!r} was overwritten or deleted while it was "
                                    "read; read it again")

    def zarr_store(self) -> Any:
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(self.url, storage_options=self.storage_options, read_only=True)

    # -- writing -------------------------------------------------------------------------------------------------

    def create_root(self, document: bytes, accept: Callable[[bytes], None]) -> None:
        """Create the store's root document, or hand the existing one to ``accept`` to judge."""
        try:
            existing = self._cat(META)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            accept(existing)
            return
        if self._listing():
            raise StoreError(f"{self.name}: exists and is not empty; a new store needs a new or empty prefix")
        self._put({META: document})

    def update_root(self, change: Callable[[bytes], bytes]) -> None:
        """Replace the root document (object stores have no locks: do not run two updates at once)."""
        self._put({META: change(self.read_root())})

    def publish(self, video_id: str, files: Mapping[str, bytes], overwrite: bool) -> bool:
        """Write a video so that it is visible complete or not at all; False if it exists (and not ``overwrite``)."""
        check_video_id(video_id)
        if META not in files:
            raise StoreError(f"{self.name}: video {video_id!r}: no {META} among its files; not published")
        present = self._keys(video_id)
        if META in present and not overwrite:
            return False
        if present:
            self._retire(video_id, present)
        self._put({f"{video_id}/{key}": data for key, data in files.items() if key != META})
        self._put({f"{video_id}/{META}": files[META]})
        return True

    def delete_video(self, video_id: str) -> None:
        present = self._keys(check_video_id(video_id))
        if META not in present:
            raise VideoNotFoundError(f"{self.name}: no video {video_id!r}")
        self._remove(video_id, present)

    def _keys(self, video_id: str) -> list[str]:
        start = len(video_id) + 1
        return [key[start:] for key in self._listing(f"{video_id}/") if key.startswith(f"{video_id}/")]

    def _remove(self, video_id: str, keys: Sequence[str]) -> float:
        """Remove a video's objects, its marker first; the time the marker went (or the removal began)."""
        fs, _ = self.filesystem()
        try:
            if META in keys:
                fs.rm_file(self._path(f"{video_id}/{META}"))
            gone = time.monotonic()
            rest = [self._path(f"{video_id}/{key}") for key in keys if key != META]
            if rest:
                fs.rm(rest)
        except remote_errors() as exc:
            raise self._fail(exc, f"removing video {video_id!r}") from None
        return gone

    def _retire(self, video_id: str, keys: Sequence[str]) -> None:
        """Remove what is there, then wait until readers that planned from the old marker are done."""
        gone = self._remove(video_id, keys)
        time.sleep(max(0.0, self.rewrite_grace_s - (time.monotonic() - gone)))

    def _put(self, files: Mapping[str, bytes]) -> None:
        fs, _ = self.filesystem()
        try:
            fs.pipe({self._path(key): data for key, data in files.items()})
        except remote_errors() as exc:
            raise self._fail(exc, f"writing {next(iter(files), '')}") from None

    def clean_scratch(self, older_than: float = 0.0) -> int:
        """Nothing to clear: writers use no scratch space here. A killed writer's objects stay under the video's
        own prefix (invisible, listed by ``stray_folders``) until that video is written again."""
        return 0

    def tidy(self) -> None:
        pass

