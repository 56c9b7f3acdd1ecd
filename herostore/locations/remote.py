"""A store on object storage or any fsspec filesystem (``s3://bucket/features``, ``memory://...``).

Object stores have no rename, so a video becomes visible by the order of its writes: every array document and
chunk first, the video group's ``zarr.json`` last. Readers, listings and resumed runs count a video only when
that document exists, so a writer killed mid-video leaves nothing visible; the next write of that video first
removes what the killed writer left. ``overwrite`` removes the old group document first (the video disappears),
then the rest, then writes the new one in the same order: there is never a visible mix of two versions.

Credentials come the usual fsspec/AWS way (environment, profile, ``storage_options``) and are never written into
a store or a message. Reads fetch a sample's chunk objects concurrently (fsspec's async pool bounds the
connections per process).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import CorruptStoreError, StoreError, VideoNotFoundError
from ..layout import META, check_video_id
from ..read.engine import ChunkJob, VerifiedChunks, decode_chunk

__all__ = ["RemoteDirectory"]


class RemoteDirectory:
    """The objects of a store under a URL prefix. Pickles without its filesystem object."""

    kind = "directory"

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None):
        self.url = url.rstrip("/")
        self.name = self.url
        self.storage_options = dict(storage_options or {})
        self._fs: Any = None
        self._root: str = ""
        self._pid: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fs": None, "_pid": None}

    def __repr__(self) -> str:
        return f"RemoteDirectory({self.url!r})"

    def filesystem(self) -> tuple[Any, str]:
        """This process's fsspec filesystem and the store's root path on it."""
        if self._fs is None or self._pid != os.getpid():
            import fsspec

            try:
                self._fs, self._root = fsspec.core.url_to_fs(self.url, **self.storage_options)
            except (ImportError, ValueError) as exc:
                raise StoreError(f"{self.url}: cannot open this URL ({exc})") from None
            self._root = self._root.rstrip("/")
            self._pid = os.getpid()
        return self._fs, self._root

    def _path(self, key: str) -> str:
        return f"{self.filesystem()[1]}/{key}"

    def _cat(self, key: str) -> bytes:
        fs, _ = self.filesystem()
        try:
            return fs.cat_file(self._path(key))
        except FileNotFoundError:
            raise
        except PermissionError as exc:
            raise StoreError(f"{self.url}: access denied reading {key} ({_reason(exc)})") from None
        except OSError as exc:
            if _is_missing(exc):
                raise FileNotFoundError(key) from None
            raise StoreError(f"{self.url}: cannot read {key} ({_reason(exc)})") from None

    # -- listing -------------------------------------------------------------------------------------------------

    def read_root(self) -> bytes:
        try:
            return self._cat(META)
        except FileNotFoundError:
            raise StoreError(f"{self.url}: not a herostore store (no {META}); expected a store root") from None

    def video_ids(self) -> list[str]:
        """Every complete video (a prefix holding the group ``zarr.json``), sorted; one recursive listing."""
        fs, root = self.filesystem()
        found = fs.find(root)
        start = len(root) + 1
        ids = []
        for path in found:
            parts = path[start:].split("/")
            if len(parts) == 2 and parts[1] == META and not parts[0].startswith("."):
                ids.append(parts[0])
        return sorted(ids)

    def stray_folders(self) -> list[str]:
        """Prefixes with objects but no group ``zarr.json``: a writer was killed there."""
        fs, root = self.filesystem()
        start = len(root) + 1
        prefixes = {p[start:].split("/")[0] for p in fs.find(root) if "/" in p[start:]}
        return sorted(prefixes - set(self.video_ids()))

    def has_video(self, video_id: str) -> bool:
        fs, _ = self.filesystem()
        return bool(fs.exists(self._path(f"{video_id}/{META}")))

    def video_document(self, video_id: str) -> bytes:
        try:
            return self._cat(f"{video_id}/{META}")
        except FileNotFoundError:
            raise VideoNotFoundError(f"{self.url}: no video {video_id!r}") from None

    def entries(self, video_id: str) -> dict[str, tuple[str, int]]:
        """Every object of a video: ``{key: ("file", bytes)}`` (object stores hold no links or special files)."""
        fs, _ = self.filesystem()
        prefix = self._path(video_id)
        found = fs.find(prefix, detail=True)
        return {path[len(prefix) + 1 :]: ("file", int(entry.get("size") or 0)) for path, entry in found.items()}

    def sizes(self, video_id: str) -> dict[str, int]:
        """Bytes of every object of a video, by key relative to the video."""
        return {key: size for key, (_, size) in self.entries(video_id).items()}

    def read_key(self, video_id: str, key: str) -> bytes:
        """A whole object of a video; ``FileNotFoundError`` if missing."""
        return self._cat(f"{video_id}/{key}")

    # -- reading chunks ------------------------------------------------------------------------------------------

    def fill(self, video_id: str, jobs: Sequence[ChunkJob], where: Callable[[ChunkJob], str], *,
             threads: int, verified: VerifiedChunks) -> None:
        """Fetch the jobs' chunk objects concurrently, then check and decode each."""
        if not jobs:
            return
        fs, _ = self.filesystem()
        paths = [self._path(f"{video_id}/{job.key}") for job in jobs]
        fetched = fs.cat(paths, on_error="return")
        for job, path in zip(jobs, paths):
            data = fetched.get(path) if isinstance(fetched, dict) else fetched
            if isinstance(data, BaseException) or data is None:
                if data is None or isinstance(data, FileNotFoundError) or _is_missing(data):
                    raise CorruptStoreError(f"{where(job)}: the chunk object is missing (the store is damaged)")
                raise StoreError(f"{where(job)}: cannot read the chunk ({_reason(data)})")
            decode_chunk(job.plan, data, job.dest, where(job))

    def zarr_store(self) -> Any:
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(self.url, storage_options=self.storage_options, read_only=True)

    # -- writing -------------------------------------------------------------------------------------------------

    def create_root(self, document: bytes, accept: Callable[[bytes], None]) -> None:
        """Create the store's root document, or hand the existing one to ``accept`` to judge."""
        fs, root = self.filesystem()
        try:
            existing = self._cat(META)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            accept(existing)
            return
        if fs.exists(root) and fs.ls(root):
            raise StoreError(f"{self.url}: exists and is not empty; a new store needs a new or empty prefix")
        self._put({META: document})

    def update_root(self, change: Callable[[bytes], bytes]) -> None:
        """Replace the root document (object stores have no locks: do not run two updates at once)."""
        self._put({META: change(self.read_root())})

    def publish(self, video_id: str, files: Mapping[str, bytes], overwrite: bool) -> bool:
        """Write a video so that it is visible complete or not at all; False if it exists (and not ``overwrite``)."""
        check_video_id(video_id)
        if self.has_video(video_id):
            if not overwrite:
                return False
            self.delete_video(video_id)
        else:
            self._remove_prefix(video_id)  # what a killed writer left
        self._put({f"{video_id}/{key}": data for key, data in files.items() if key != META})
        self._put({f"{video_id}/{META}": files[META]})
        return True

    def delete_video(self, video_id: str) -> None:
        fs, _ = self.filesystem()
        document = self._path(f"{video_id}/{META}")
        if not fs.exists(document):
            raise VideoNotFoundError(f"{self.url}: no video {video_id!r}")
        fs.rm_file(document)  # invisible first, then the rest
        self._remove_prefix(video_id)

    def _remove_prefix(self, video_id: str) -> None:
        fs, _ = self.filesystem()
        prefix = self._path(video_id)
        leftovers = fs.find(prefix)
        if leftovers:
            fs.rm(leftovers)

    def _put(self, files: Mapping[str, bytes]) -> None:
        fs, _ = self.filesystem()
        try:
            fs.pipe({self._path(key): data for key, data in files.items()})
        except PermissionError as exc:
            raise StoreError(f"{self.url}: access denied writing ({_reason(exc)})") from None
        except OSError as exc:
            raise StoreError(f"{self.url}: cannot write ({_reason(exc)})") from None

    def clean_scratch(self, older_than: float = 0.0) -> int:
        return 0  # nothing is written outside the videos' own prefixes

    def tidy(self) -> None:
        pass


def _is_missing(exc: BaseException) -> bool:
    return isinstance(exc, FileNotFoundError) or "NoSuchKey" in str(exc) or "Not Found" in str(exc)


def _reason(exc: BaseException) -> str:
    """An exception as one short line (the first line of its message)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
