"""A packed dataset (``herostore pack``), read-only: a video is one contiguous range of one zip shard.

Opening reads the manifest and the index once (the index must match the crc32c the manifest gives, every entry
must lie inside its shard). Reading a video finds it in the index (a binary search: the cost does not grow with
the number of videos), takes its range in one read (``shards``: a slice of the shard memory-mapped once per
process, or one ranged request), walks the zip local headers inside it as far as the read needs, checks that
they are this video's members, and decodes the chunks a read asks for with the chunk engine. The video read last
stays cached, so ``video_document`` then ``fill`` (what ``ZarrReader.read`` does) cost one read, one request
remotely. A batch announces its videos first (``prefetch``): remotely their ranges are then requested all at once,
one request each, and kept for the batch's reads (per thread, until its next batch).

Metadata members are checked against their zip CRC-32 on every read; chunks against their crc32c (format 2 on) or
their zip CRC-32 (format 1), once per process for a local shard (by the shard file's identity and the offset).
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ChecksumError, CorruptStoreError, StoreError, VideoNotFoundError
from ..layout import META
from ..packlayout import MANIFEST, MAX_INDEX_BYTES, MAX_MANIFEST_BYTES, Manifest, PackIndex, parse_manifest
from ..read.engine import ChunkJob, VerifiedChunks, check_crc, crc32c, decode_chunk
from ..ziprecords import LOCAL_HEADER_BYTES, Member, member_extent, next_member, walk_members
from .chunk_files import PARALLEL_MIN_BYTES, run_all, thread_pool
from .shards import LocalFiles, RemoteFiles

__all__ = ["PackedDataset"]


class _Video:
    """The video read last: its range, and its members as far as they have been walked.

    Members are parsed lazily, in order, as reads ask for them: the group document comes first, and a read of a
    few modalities does not parse the headers of the members after the last one it needs.
    """

    def __init__(self, video_id: str, shard: int, offset: int, data: Any, identity: Any, where: str):
        self.video_id, self.pid, self.shard, self.offset = video_id, os.getpid(), shard, offset
        self.data = data  # the range (a memoryview of a mapped shard, or bytes)
        self.identity = identity  # the local shard file's identity, else None: remote bytes are checked every time
        self.where = where
        self._view = memoryview(data).cast("B")
        self._prefix = f"{video_id}/"
        self._next = 0  # where the next member's local header starts
        self.members: dict[str, Member] = {}  # by key relative to the video

    def member(self, key: str) -> Member | None:
        while key not in self.members and self._next < len(self._view):
            self._step()
        return self.members.get(key)

    def walked(self) -> dict[str, Member]:
        """Every member of the range (the range holding nothing else)."""
        while self._next < len(self._view):
            self._step()
        return self.members

    def _step(self) -> None:
        member = next_member(self._view, self._next, self.offset, self.where)
        prefix = self._prefix
        if not member.name.startswith(prefix) or (not self.members and member.name != prefix + META):
            raise CorruptStoreError(f"{self.where}: the index points at member {member.name!r}; a video's range "
                                    f"starts with {prefix + META} and holds only its own members")
        self.members[member.name[len(prefix) :]] = member
        self._next = member.start + member.size


class PackedDataset:
    """The read API of a store location over a packed dataset (a folder or a URL). Pickles without open files."""

    kind = "packed"

    def __init__(self, path: str | os.PathLike, storage_options: Mapping[str, Any] | None = None):
        from . import is_url

        text = os.fspath(path)
        self.name = text.rstrip("/") if is_url(text) else text.removeprefix("file://")
        self.path = None if is_url(text) else Path(self.name)  # the folder of a local dataset
        self.storage_options = dict(storage_options or {})
        self._files: Any = RemoteFiles(self.name, self.storage_options) if is_url(text) else LocalFiles(self.name)
        self.manifest: Manifest = parse_manifest(self._files.read(MANIFEST, MAX_MANIFEST_BYTES),
                                                 f"{self.name}/{MANIFEST}")
        self._index: PackIndex | None = None
        self._ids: list[str] | None = None
        self._current: _Video | None = None
        self._batches: threading.local | None = None  # each thread's prefetched videos, by id

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_index": None, "_ids": None, "_current": None, "_batches": None}

    def __repr__(self) -> str:
        return f"PackedDataset({self.name!r})"

    def index(self) -> PackIndex:
        """The index, read once (its crc32c and every entry checked)."""
        if self._index is None:
            m = self.manifest
            source = f"{self.name}/{m.index_name}"
            if m.index_size > MAX_INDEX_BYTES:
                raise CorruptStoreError(f"{source}: the manifest gives it {m.index_size} bytes, more than any "
                                        f"index needs ({MAX_INDEX_BYTES >> 20} MiB)")
            data = self._files.read(m.index_name, m.index_size, exact=m.index_size)
            found = crc32c(data)
            if found != m.index_crc32c:
                raise ChecksumError(f"{source}: crc32c {found:08x}, the manifest says {m.index_crc32c:08x}: "
                                    "the index is damaged")
            self._index = PackIndex(data, source, [size for _, size in m.shards], m.videos)
        return self._index

    # -- listing -------------------------------------------------------------------------------------------------

    def read_root(self) -> bytes:
        """The store's root document (kept in the manifest)."""
        return self.manifest.root

    def video_ids(self) -> list[str]:
        if self._ids is None:
            self._ids = self.index().video_ids()
        return self._ids

    def stray_folders(self) -> list[str]:
        return []  # a packed dataset holds complete videos only

    def has_video(self, video_id: str) -> bool:
        return self.index().find(video_id) is not None

    def shard_of(self, video_id: str) -> str:
        """The file name of the shard holding a video."""
        return self.manifest.shards[self._video(video_id).shard][0]

    # -- one video's range ---------------------------------------------------------------------------------------

    def _range(self, shard: int, offset: int, length: int) -> tuple[Any, Any]:
        return self._files.range(*self._within(shard, offset, length), offset, length)

    def _within(self, shard: int, offset: int, length: int) -> tuple[str, int]:
        """The shard's name and size, the range checked to lie inside it."""
        name, size = self.manifest.shards[shard]
        if offset + length > size:
            raise CorruptStoreError(f"{self.name}/{name}: bytes {offset}+{length} asked for, the shard holds {size}")
        return name, size

    def prefetch(self, video_ids: Sequence[str]) -> None:
        """Fetch these videos' ranges together (remotely: one request each, sent at once) and keep them for this
        thread's reads until its next ``prefetch``. A local shard is mapped, so there is nothing to fetch."""
        if not isinstance(self._files, RemoteFiles):
            return
        if self._batches is None:
            self._batches = threading.local()
        self._batches.videos = {}
        wanted = []
        for video_id in dict.fromkeys(video_ids):
            entry = self.index().find(video_id)
            if entry is not None:  # a missing video is an error when it is read
                wanted.append((video_id, *entry))
        if not wanted:
            return
        for data, (video_id, shard, offset, length) in zip(
                self._files.ranges([(*self._within(shard, offset, length), offset, length)
                                    for _, shard, offset, length in wanted]), wanted):
            self._batches.videos[video_id] = _Video(video_id, shard, offset, data, None,
                                                    f"{self.name}/{self.manifest.shards[shard][0]}: video {video_id!r}")

    def _video(self, video_id: str) -> _Video:
        current = self._current
        if current is not None and current.video_id == video_id and current.pid == os.getpid():
            return current
        batch = getattr(self._batches, "videos", None) if self._batches is not None else None
        if batch and video_id in batch and batch[video_id].pid == os.getpid():
            return batch[video_id]
        entry = self.index().find(video_id)
        if entry is None:
            raise VideoNotFoundError(f"{self.name}: no video {video_id!r}")
        shard, offset, length = entry
        data, identity = self._range(shard, offset, length)
        current = _Video(video_id, shard, offset, data, identity,
                         f"{self.name}/{self.manifest.shards[shard][0]}: video {video_id!r}")
        self._current = current
        return current

    def _member(self, video: _Video, key: str, where: str, verified: VerifiedChunks | None) -> memoryview:
        """A member's bytes, checked against its zip CRC-32 (once per process where ``verified`` remembers it)."""
        member = video.member(key)
        if member is None:
            what = "document" if key.endswith(META) else "chunk"
            raise CorruptStoreError(f"{where}: the {what} is missing from {self.manifest.shards[video.shard][0]} "
                                    f"(herostore writes every {what}: the packed dataset is damaged)")
        data = memoryview(video.data)[member.start : member.start + member.size]
        identity = None if video.identity is None else (video.identity, video.offset + member.start)
        if verified is None or identity is None or identity not in verified:
            found = zlib.crc32(data)
            if found != member.crc:
                raise ChecksumError(f"{where}: zip CRC-32 {member.crc:08x} stored, the bytes give {found:08x}: "
                                    "the shard is damaged")
            if verified is not None and identity is not None:
                verified.add(identity)
        return data

    def video_document(self, video_id: str) -> bytes:
        """A video group's ``zarr.json`` (checked against its zip CRC-32)."""
        video = self._video(video_id)
        return bytes(self._member(video, META, f"{self.name}: video {video_id!r}: {META}", None))

    def sizes(self, video_id: str) -> dict[str, int]:
        """Bytes of every member of a video, by key relative to the video."""
        return {key: member.size for key, member in self._video(video_id).walked().items()}

    def files(self, video_id: str) -> dict[str, bytes]:
        """Every file of a video as a directory store holds it, each checked against its zip CRC-32."""
        video = self._video(video_id)
        where = f"{self.name}: video {video_id!r}"
        return {key: bytes(self._member(video, key, f"{where}: {key}", None)) for key in list(video.walked())}

    def root_file(self) -> bytes:
        """The store's root ``zarr.json`` exactly as packed: the first member of the first shard."""
        name, size = self.manifest.shards[0]
        where = f"{self.name}/{name}"
        head, _ = self._range(0, 0, min(size, LOCAL_HEADER_BYTES))
        data, _ = self._range(0, 0, member_extent(head, where))
        members = walk_members(data, 0, where)
        if [m.name for m in members] != [META]:
            raise CorruptStoreError(f"{where}: starts with {members[0].name!r}; a shard starts with the root {META}")
        found = zlib.crc32(memoryview(data)[members[0].start : members[0].start + members[0].size])
        if found != members[0].crc:
            raise ChecksumError(f"{where}: {META}: zip CRC-32 {members[0].crc:08x} stored, the bytes give "
                                f"{found:08x}: the shard is damaged")
        return bytes(memoryview(data)[members[0].start : members[0].start + members[0].size])

    # -- reading chunks ------------------------------------------------------------------------------------------

    def fill(self, video_id: str, jobs: Sequence[ChunkJob], where: Callable[[ChunkJob], str], *,
             threads: int, verified: VerifiedChunks) -> None:
        """Decode every job's chunk from the video's range into its ``dest``."""
        if not jobs:
            return
        video = self._video(video_id)

        def one(job: ChunkJob) -> None:
            self._decode(video, job, where(job), verified)

        decoded = sum(len(job.dest) for job in jobs if job.plan.encoding.codec is not None)
        if threads > 1 and len(jobs) > 1 and decoded >= PARALLEL_MIN_BYTES:
            for job in jobs:
                video.member(job.key)  # walked here: the walk is not shared among threads
            run_all(thread_pool(threads), [partial(one, job) for job in sorted(jobs, key=lambda job: -len(job.dest))])
        else:
            for job in jobs:
                one(job)

    def _decode(self, video: _Video, job: ChunkJob, where: str, verified: VerifiedChunks) -> None:
        if not job.plan.encoding.checksum:  # format 1: the zip CRC-32 is the chunk's only check
            decode_chunk(job.plan, self._member(video, job.key, where, verified), job.dest, where, verified=True)
            return
        member = video.member(job.key)
        if member is None:
            self._member(video, job.key, where, verified)  # raises: missing
        identity = None if video.identity is None else (video.identity, video.offset + member.start, job.key)
        data = memoryview(video.data)[member.start : member.start + member.size]
        decode_chunk(job.plan, data, job.dest, where, verified=identity is not None and identity in verified,
                     expected=job.crc)
        if identity is not None:
            verified.add(identity)

    def map_chunk(self, video_id: str, job: ChunkJob, nbytes: int, where: str,
                  verified: VerifiedChunks) -> np.ndarray:
        """The first ``nbytes`` of a raw chunk as a read-only view of the shard (checked once per process)."""
        key, plan = job.key, job.plan
        video = self._video(video_id)
        member = video.member(key)
        if member is None:
            self._member(video, key, where, verified)  # raises: missing
        if member.size != plan.raw_size:
            raise CorruptStoreError(f"{where}: chunk holds {member.size} bytes, expected {plan.raw_size}")
        identity = None if video.identity is None else (video.identity, video.offset + member.start, key)
        data = memoryview(video.data)[member.start : member.start + member.size]
        if plan.encoding.checksum and (identity is None or identity not in verified):
            check_crc(data[: plan.chunk_bytes], data[plan.chunk_bytes :], where, job.crc)
        elif not plan.encoding.checksum:
            self._member(video, key, where, verified)
        if identity is not None:
            verified.add(identity)
        return np.frombuffer(video.data, np.uint8, count=nbytes, offset=member.start)

    def zarr_store(self) -> Any:
        """A read-only zarr-python store over the dataset (the reference read)."""
        from zarr.storage import MemoryStore

        return MemoryStore(_ZarrKeys(self), read_only=True)

    # -- a packed dataset is read-only ---------------------------------------------------------------------------

    def _read_only(self, *_: Any, **__: Any) -> Any:
        raise StoreError(f"{self.name}: a packed dataset is read-only; unpack it (herostore unpack) to change it")

    create_root = update_root = publish = delete_video = _read_only

    def clean_scratch(self, older_than: float = 0.0) -> int:
        return 0

    def tidy(self) -> None:
        pass


class _ZarrKeys(Mapping):
    """The dataset's files by Zarr key, read when zarr-python asks for them."""

    def __init__(self, dataset: PackedDataset):
        self.dataset = dataset

    def __getitem__(self, key: str) -> Any:
        from zarr.core.buffer import cpu

        if key == META:
            return cpu.Buffer.from_bytes(self.dataset.read_root())
        video_id, _, rest = key.partition("/")
        if not rest or not self.dataset.has_video(video_id):
            raise KeyError(key)
        video = self.dataset._video(video_id)
        if video.member(rest) is None:
            raise KeyError(key)
        return cpu.Buffer.from_bytes(bytes(self.dataset._member(video, rest, f"{self.dataset.name}/{key}", None)))

    def __iter__(self) -> Iterator[str]:
        yield META
        for video_id in self.dataset.video_ids():
            yield from (f"{video_id}/{key}" for key in self.dataset.sizes(video_id))

    def __len__(self) -> int:
        return sum(1 for _ in self)

