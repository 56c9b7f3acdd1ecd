"""A store in a local folder (or a mounted cluster filesystem): reading chunk files, publishing videos atomically.

Reading opens files only as regular files beneath the store (``beneath.open_beneath``: no links, no way out, no
blocking on a FIFO) and reads chunks with ``chunk_files``.

Writing builds a video in ``.tmp/<random>/``, a folder its writer holds an ``flock`` on for as long as it works
(the kernel drops the lock when the writer dies, in any pid namespace), checks it is complete, and renames it into
place in one ``rename(2)``: readers see the whole video or nothing. ``clean_scratch`` removes scratch entries
whose lock nobody holds and that are older than ``fsutil.STALE_AFTER_S`` (``scratch.Scratch``); the scratch folder
itself is removed when it empties, so a finished store holds only Zarr nodes.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import shutil
import stat
import uuid
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptStoreError, StoreError, VideoNotFoundError
from ..fsutil import STALE_AFTER_S, atomic_write, fsync_dir, make_folder
from ..layout import META, check_video_id
from ..read.engine import ChunkJob, VerifiedChunks, check_crc
from . import beneath
from .beneath import Refused
from .chunk_files import fill_from_files
from .chunk_files import identity as file_identity
from .scratch import RETIRED_SUFFIX, Scratch

__all__ = ["LocalDirectory"]

class LocalDirectory:
    """The files of a store in a local folder. Pickles without its open file descriptors."""

    kind = "directory"
    small_reads_are_cheap = True  # a system call, not a request: the reader can afford its metadata cross-checks

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).absolute()  # workers of a cluster may run in another folder
        self.name = str(path)
        self._root_fd: int | None = None
        self._pid: int | None = None
        self._closer: weakref.finalize | None = None
        self.scratch = Scratch(self.path, self.name)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_root_fd": None, "_pid": None, "_closer": None}

    def __repr__(self) -> str:
        return f"LocalDirectory({self.name!r})"

    # -- listing -------------------------------------------------------------------------------------------------

    def read_root(self) -> bytes:
        """The root ``zarr.json`` (a regular file, never a link, FIFO or device); a ``StoreError`` if there is none."""
        try:
            fd = self._open(META)
        except (FileNotFoundError, NotADirectoryError):
            raise StoreError(f"{self.name}: not a herostore store (no {META}); expected a store root") from None
        except Refused as exc:
            raise StoreError(f"{self.name}/{META} {exc}; expected the store's root document") from None
        try:
            return os.pread(fd, os.fstat(fd).st_size, 0)
        finally:
            os.close(fd)

    def _folders(self) -> list[tuple[str, bool]]:
        with os.scandir(self.path) as entries:
            return [(e.name, os.path.isfile(os.path.join(e.path, META)))
                    for e in entries if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]

    def video_ids(self) -> list[str]:
        """Every complete video (a folder holding ``zarr.json``), sorted."""
        return sorted(name for name, complete in self._folders() if complete)

    def stray_folders(self) -> list[str]:
        """Folders that are not videos (no ``zarr.json``: an interrupted copy, something else's), sorted."""
        return sorted(name for name, complete in self._folders() if not complete)

    def has_video(self, video_id: str) -> bool:
        return os.path.isfile(os.path.join(self.path, video_id, META))

    def video_document(self, video_id: str) -> bytes:
        """A video group's ``zarr.json``; ``VideoNotFoundError`` when the video is not complete in the store."""
        try:
            fd = self._open(f"{video_id}/{META}")
        except FileNotFoundError:
            raise VideoNotFoundError(f"{self.name}: no video {video_id!r}") from None
        except Refused as exc:
            raise CorruptStoreError(f"{self.name}: video {video_id!r}: {META} {exc}") from None
        try:
            size = os.fstat(fd).st_size
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)

    def entries(self, video_id: str) -> dict[str, tuple[str, int]]:
        """Everything under a video's folder, never following links: ``{key: (kind, bytes)}`` with kind ``file``,
        ``folder``, ``link`` or ``special`` (FIFO, socket, device), keys relative to the video."""
        root = self.path / video_id
        out: dict[str, tuple[str, int]] = {}
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(folder, name)
                st = os.lstat(path)
                kind = ("link" if stat.S_ISLNK(st.st_mode) else "folder" if stat.S_ISDIR(st.st_mode)
                        else "file" if stat.S_ISREG(st.st_mode) else "special")
                out[os.path.relpath(path, root).replace(os.sep, "/")] = (kind, st.st_size)
        return out

    def sizes(self, video_id: str) -> dict[str, int]:
        """Bytes of every file of a video, by key relative to the video (``hubert/c/0/0``, ``zarr.json``)."""
        return {key: size for key, (kind, size) in self.entries(video_id).items() if kind == "file"}

    def read_key(self, video_id: str, key: str) -> bytes:
        """A whole file of a video, read as a regular file beneath the store; ``FileNotFoundError`` if missing,
        ``CorruptStoreError`` if it is a link, leaves the store or is not a regular file."""
        try:
            fd = self._open(f"{video_id}/{key}")
        except Refused as exc:
            raise CorruptStoreError(f"{self.name}: video {video_id!r}: {key} {exc}") from None
        try:
            return os.pread(fd, os.fstat(fd).st_size, 0)
        finally:
            os.close(fd)

    # -- reading chunks ------------------------------------------------------------------------------------------

    def _root(self) -> int:
        """This process's descriptor of the store folder (opened again after a fork)."""
        if self._pid != os.getpid() or self._root_fd is None:
            if self._closer is not None:
                self._closer.detach()  # another process's descriptor: never closed here, whatever its number is now
            self._root_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self._pid = os.getpid()
            self._closer = weakref.finalize(self, os.close, self._root_fd)  # closed when the location is dropped
        return self._root_fd

    def _open(self, relative: str) -> int:
        """A regular file beneath the store, opened read-only without following links or blocking."""
        root = self._root()  # a store path that is not a folder raises here, as itself
        try:
            fd = beneath.open_beneath(root, relative)
        except NotADirectoryError:
            raise Refused("is below a file where a folder should be") from None
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            os.close(fd)
            raise
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise Refused("is not a regular file")
        return fd

    def fill(self, video_id: str, jobs: Sequence[ChunkJob], where: Callable[[ChunkJob], str], *,
             threads: int, verified: VerifiedChunks) -> None:
        """Read and decode every job's chunk into its ``dest``."""

        def open_chunk(job: ChunkJob) -> int:
            try:
                return self._open(f"{video_id}/{job.key}")
            except FileNotFoundError:
                raise CorruptStoreError(f"{where(job)}: the chunk file is missing (herostore writes every "
                                        "chunk: the store is damaged)") from None
            except Refused as exc:
                raise CorruptStoreError(f"{where(job)}: the chunk {exc}") from None

        fill_from_files(jobs, open_chunk, where, threads=threads, verified=verified)

    def map_chunk(self, video_id: str, job: ChunkJob, nbytes: int, where: str,
                  verified: VerifiedChunks) -> np.ndarray:
        """The first ``nbytes`` of a raw chunk, read-only and memory-mapped (checksum verified once per process)."""
        plan = job.plan
        try:
            fd = self._open(f"{video_id}/{job.key}")
        except FileNotFoundError:
            raise CorruptStoreError(f"{where}: the chunk file is missing (the store is damaged)") from None
        except Refused as exc:
            raise CorruptStoreError(f"{where}: the chunk {exc}") from None
        try:
            st = os.fstat(fd)
            if st.st_size != plan.raw_size:
                raise CorruptStoreError(f"{where}: chunk holds {st.st_size} bytes, expected {plan.raw_size}")
            mapped = mmap.mmap(fd, st.st_size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        identity = (job.key, *file_identity(st))
        if plan.encoding.checksum and identity not in verified:
            check_crc(memoryview(mapped)[: plan.chunk_bytes], mapped[plan.chunk_bytes :], where, job.crc)
            verified.add(identity)
        return np.frombuffer(mapped, np.uint8, count=nbytes)

    def zarr_store(self) -> Any:
        from zarr.storage import LocalStore

        return LocalStore(self.path, read_only=True)

    # -- writing -------------------------------------------------------------------------------------------------

    def create_root(self, document: bytes, accept: Callable[[bytes], None]) -> None:
        """Create the store with ``document`` as its root, or hand the existing root to ``accept`` to judge.

        Two processes creating the same store at once both succeed: the root appears with one hard link,
        which fails for the second, who then judges the first one's document instead.
        """
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"{self.name}: exists and is not a folder; a new store needs a new or empty folder")
        if (self.path / META).exists():
            accept(self.read_root())
            return
        if self.path.is_dir() and any(not e.name.startswith(".") for e in os.scandir(self.path)):
            raise StoreError(f"{self.name}: exists and is not empty; a new store needs a new or empty folder")
        make_folder(self.path, "the store folder")
        tmp = self.path / f".{META}.{uuid.uuid4().hex}.tmp"
        try:
            atomic_write(tmp, document)
            try:
                os.link(tmp, self.path / META)
            except FileExistsError:
                accept(self.read_root())
                return
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(self.path)

    def update_root(self, change: Callable[[bytes], bytes]) -> None:
        """Replace the root ``zarr.json`` with ``change(old)``, under a lock shared by every writer."""
        with self.scratch.lock("root.lock"):
            atomic_write(self.path / META, change(self.read_root()))

    def publish(self, video_id: str, files: Mapping[str, bytes], overwrite: bool) -> bool:
        """Make a video visible with exactly ``files``, all at once; False if it exists (and not ``overwrite``)."""
        target = self.path / check_video_id(video_id)
        if not overwrite and (target / META).is_file():
            return False
        if target.exists() and not (target / META).is_file():
            self._set_aside(target)
        with self.scratch.entry() as scratch:
            for key, data in files.items():
                _write_file(scratch / key, data)
            _check_complete(scratch, files, video_id)
            fsync_dir(scratch)
            return self._rename_into_place(scratch, target, overwrite)

    def _rename_into_place(self, scratch: Path, target: Path, overwrite: bool) -> bool:
        try:
            os.rename(scratch, target)
            fsync_dir(self.path)
            return True
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        if not overwrite:
            return False  # another writer finished this video first
        # The old copy waits in a locked .tmp/<random>.old/ until the new one is in place. Any error puts it
        # back; if this process dies between the two renames, clean_scratch finds the video missing and puts
        # the old copy back.
        retired, fd = self.scratch.locked_folder(RETIRED_SUFFIX)
        try:
            os.rename(target, retired / target.name)
            try:
                os.rename(scratch, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.rename(retired / target.name, target)
                raise
            fsync_dir(self.path)
            shutil.rmtree(retired, ignore_errors=True)
        finally:
            with contextlib.suppress(OSError):
                os.rmdir(retired)  # only when empty: an old copy that could not be put back stays for clean_scratch
            os.close(fd)
        return True

    def _set_aside(self, folder: Path) -> None:
        """Move a folder that is not a complete video (no ``zarr.json``) out of the way, keeping its files."""
        aside = folder.with_name(f".{folder.name}.incomplete-{uuid.uuid4().hex[:8]}")
        with contextlib.suppress(FileNotFoundError):
            os.rename(folder, aside)
            warnings.warn(f"{self.name}: {folder.name!r} had no {META} (an interrupted copy, not a video); "
                          f"moved aside to {aside.name} and written again", stacklevel=4)

    def delete_video(self, video_id: str) -> None:
        target = self.path / check_video_id(video_id)
        if not target.exists():
            raise VideoNotFoundError(f"{self.name}: no video {video_id!r}")
        with self.scratch.entry() as scratch:
            os.rename(target, scratch / video_id)

    def tidy(self) -> None:
        self.scratch.tidy()

    def clean_scratch(self, older_than: float = STALE_AFTER_S) -> int:
        """Clear what writers that are gone left in the scratch folder (``Scratch.clean``); returns how many."""
        return self.scratch.clean(older_than)


# -- writing -----------------------------------------------------------------------------------------------------


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _check_complete(scratch: Path, files: Mapping[str, bytes], video_id: str) -> None:
    """Every file of the video is in its scratch folder at its full size; else the video is not published."""
    for key, data in files.items():
        try:
            size = (scratch / key).stat().st_size
        except FileNotFoundError:
            size = -1
        if size != len(data):
            raise StoreError(f"{scratch}: video {video_id!r}: {key} is {'missing' if size < 0 else f'{size} bytes'}"
                             f", expected {len(data)} bytes; the video was not published")
