"""Packing a store into zip shards (``herostore pack``) and back into a directory store (``herostore unpack``).

``pack`` lays out every shard before writing a byte (``plan_pack``: which videos go in which shard, the offset
of every member, each shard's size and closing records), then writes the shards in parallel over dask
(the bulk engine, one item per shard). A shard is written under a temporary name and renamed when
complete; its zip comment carries a digest of what it holds (the source files' names, sizes and modification
times), so a re-run skips the shards that are complete and rewrites the others. The index and then the manifest
are written last: until the manifest exists there is no packed dataset to read. Layout: docs/format.md.

``unpack`` writes every video back with ``LocalDirectory.publish`` (atomic, resumable), each member checked
against its zip CRC-32: every file of the store comes back byte for byte.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
import warnings
import zlib
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import BinaryIO, NamedTuple

from .bulk import JobReport, Outcome, map_videos
from .convert import copy_label_files
from .errors import ArgumentError, HerostoreError, StoreError
from .fsutil import (
    TEMP_SUFFIX,
    atomic_output,
    atomic_write,
    clean_stale_temporaries,
    fsync_dir,
    make_folder,
    short_list,
)
from .layout import FEATURES_DIR, META, parse_root, resolve_features
from .locations import is_packed
from .locations.local import LocalDirectory
from .locations.packed import PackedDataset
from .packlayout import INDEX, MANIFEST, SHARD_PATTERN, encode_index, manifest_bytes, shard_name
from .read.engine import crc32c
from .schema import ARRAY_KEYS
from .ziprecords import (
    central_header,
    central_header_size,
    end_records,
    end_records_size,
    local_header,
    local_header_size,
)

__all__ = ["DEFAULT_SHARD_SIZE", "ShardPlan", "pack", "plan_pack", "unpack"]

SHARD_SECONDS = 5.0  # a first guess of one shard's work, for the bulk engine
DEFAULT_SHARD_SIZE = 2_000_000_000  # below 2 GiB: shards of the default size need no ZIP64 records
_COMMENT = b"herostore-pack shard "  # + the digest of the shard's plan
_WRITEBACK_BYTES = 32 << 20
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)


# -- the plan ----------------------------------------------------------------------------------------------------


class SourceFile(NamedTuple):
    """A file of a video in the source store, as it was when the pack was planned."""

    key: str  # relative to the video
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ShardPlan:
    """One shard, laid out: its videos in order, each video's byte range, its size and its closing bytes."""

    number: int
    name: str
    videos: tuple[tuple[str, tuple[SourceFile, ...]], ...]
    ranges: tuple[tuple[int, int], ...]  # (offset, length) of each video's members in the shard
    size: int
    tail: bytes  # the end records, whose comment is the digest of this plan: a complete shard ends with them


class _Layout:
    """Bytes of a shard being laid out: members so far, central directory so far."""

    def __init__(self, root: bytes):
        self.data_end = local_header_size(META.encode(), len(root)) + len(root)
        self.directory = central_header_size(META.encode(), len(root), 0)
        self.count = 1

    def add(self, video_id: str, files: list[SourceFile]) -> tuple[int, int, int]:
        """Lay out one video's members after the others; returns (offset, length, data end) without keeping them."""
        start = pos = self.data_end
        directory = self.directory
        for file in files:
            name = f"{video_id}/{file.key}".encode()
            directory += central_header_size(name, file.size, pos)
            pos += local_header_size(name, file.size) + file.size
        return start, pos - start, directory

    def size_with(self, data_end: int, directory: int, count: int) -> int:
        return data_end + directory + end_records_size(count, data_end, directory, _COMMENT + b"0" * 32)


def plan_pack(features: Path, shard_size: int) -> tuple[bytes, list[ShardPlan], list[str]]:
    """The root document, the shards, and the folders that are not complete videos (not packed)."""
    location = LocalDirectory(features)
    root = location.read_root()
    parse_root(root, str(features))
    plans: list[ShardPlan] = []
    layout, videos, ranges = _Layout(root), [], []
    for video_id in location.video_ids():
        files = _video_files(features / video_id)
        offset, length, directory = layout.add(video_id, files)
        if videos and layout.size_with(offset + length, directory, layout.count + len(files)) > shard_size:
            plans.append(_finish_plan(len(plans), root, layout, videos, ranges))
            layout, videos, ranges = _Layout(root), [], []
            offset, length, directory = layout.add(video_id, files)
        layout.data_end, layout.directory, layout.count = offset + length, directory, layout.count + len(files)
        videos.append((video_id, tuple(files)))
        ranges.append((offset, length))
    plans.append(_finish_plan(len(plans), root, layout, videos, ranges))
    return root, plans, location.stray_folders()


def _finish_plan(number: int, root: bytes, layout: _Layout, videos: list, ranges: list) -> ShardPlan:
    digest = hashlib.blake2b(root, digest_size=16)
    digest.update(json.dumps(videos).encode())
    tail = end_records(layout.count, layout.data_end, layout.directory, _COMMENT + digest.hexdigest().encode())
    return ShardPlan(number, shard_name(number), tuple(videos), tuple(ranges),
                     layout.data_end + layout.directory + len(tail), tail)


def _video_files(folder: Path) -> list[SourceFile]:
    """Every file of a video folder, in shard order: the group document, then each array's document and chunks."""
    found, pending = [], [""]
    while pending:
        relative = pending.pop()
        with os.scandir(folder / relative) as entries:
            for entry in entries:
                key = f"{relative}/{entry.name}" if relative else entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append(key)
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    found.append(SourceFile(key, st.st_size, st.st_mtime_ns))
                else:
                    raise StoreError(f"{folder}/{key}: a symbolic link or special file; a store holds regular "
                                     "files only, and pack copies nothing else")
    return sorted(found, key=_member_order)


def _member_order(file: SourceFile) -> tuple:
    parts = file.key.split("/")
    if parts == [META]:
        return (0, 0, "", 0, (), file.key)
    name = parts[0]
    rank = ARRAY_KEYS.index(name) if name in ARRAY_KEYS else len(ARRAY_KEYS)
    if parts[1:] == [META]:
        return (1, rank, name, 0, (), file.key)
    if len(parts) > 2 and parts[1] == "c" and all(p.isdigit() for p in parts[2:]):
        return (1, rank, name, 1, tuple(int(p) for p in parts[2:]), file.key)
    return (1 if len(parts) > 1 else 2, rank, name, 2, (), file.key)


# -- writing shards ----------------------------------------------------------------------------------------------


def _pack_shard(name: str, plan: ShardPlan, *, features: str, folder: str, root: bytes) -> Outcome:
    """Write one shard (self-contained and picklable: it runs on any dask worker); skip it if already complete."""
    target = Path(folder) / name
    if _is_complete(target, plan):
        return Outcome(name, "skipped", value=plan.size)
    buffer = bytearray(1 << 20)  # reused for every member: no fresh pages to fault in per file
    written_back = 0
    with atomic_output(target) as out:
        directory: list[bytes] = []
        pos = _write_member(out, META.encode(), root, 0, directory)
        for (video_id, files), (offset, _) in zip(plan.videos, plan.ranges):
            if pos != offset:
                raise StoreError(f"{target}: video {video_id!r} at byte {pos}, planned at {offset}")
            for file in files:
                if file.size > len(buffer):
                    buffer = bytearray(max(file.size, 2 * len(buffer)))
                data = _read_source(Path(features) / video_id / file.key, file, memoryview(buffer)[: file.size])
                pos = _write_member(out, f"{video_id}/{file.key}".encode(), data, pos, directory)
            if pos - written_back >= _WRITEBACK_BYTES:
                written_back = _write_back(out, written_back, pos)
        out.write(b"".join(directory))
        out.write(plan.tail)
        if out.tell() != plan.size:
            raise StoreError(f"{target}: {out.tell()} bytes written, {plan.size} planned")
    return Outcome(name, "written", value=plan.size)


def _write_back(out: BinaryIO, start: int, end: int) -> int:
    """Start writing bytes ``start..end`` to the disk now (``POSIX_FADV_DONTNEED`` writes dirty pages back, then drops
    them from the page cache), so the shard's final fsync waits for little and the pack does not fill the cache."""
    out.flush()
    with contextlib.suppress(OSError):
        os.posix_fadvise(out.fileno(), start, end - start, os.POSIX_FADV_DONTNEED)
    return end


def _write_member(out: BinaryIO, name: bytes, data: bytes | memoryview, pos: int, directory: list[bytes]) -> int:
    crc = zlib.crc32(data)
    header = local_header(name, crc, len(data))
    directory.append(central_header(name, crc, len(data), pos))
    out.write(header)
    out.write(data)
    return pos + len(header) + len(data)


def _read_source(path: Path, file: SourceFile, into: memoryview) -> memoryview:
    """Read a source file, unchanged since it was planned, into ``into`` (its size)."""
    fd = os.open(path, _READ_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != file.size or st.st_mtime_ns != file.mtime_ns:
            raise StoreError(f"{path}: changed since the pack was planned ({st.st_size} bytes, expected {file.size}"
                             "); run pack again")
        got = 0
        while got < file.size:
            n = os.preadv(fd, [into[got:]], got)
            if n == 0:
                raise StoreError(f"{path}: ended after {got} bytes, expected {file.size}")
            got += n
        return into
    finally:
        os.close(fd)


def _is_complete(target: Path, plan: ShardPlan) -> bool:
    """Whether ``target`` is this plan's shard, written completely (its size and closing bytes match)."""
    try:
        fd = os.open(target, _READ_FLAGS)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        return (stat.S_ISREG(st.st_mode) and st.st_size == plan.size
                and os.pread(fd, len(plan.tail), plan.size - len(plan.tail)) == plan.tail)
    finally:
        os.close(fd)


# -- pack --------------------------------------------------------------------------------------------------------


def pack(src: str | os.PathLike, dst: str | os.PathLike, *, shard_size: int = DEFAULT_SHARD_SIZE,
         overwrite: bool = False, workers: int | None = None, scheduler: str | None = None,
         progress: bool = True) -> JobReport:
    """Pack a store (or a dataset root's ``features/``) into ``dst/features`` as a packed dataset; labels travel.

    Resumes: complete shards are skipped. A packed dataset already at the destination is replaced only with
    ``overwrite``; any other content there is refused. The report counts shards.
    """
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ArgumentError(f"shard_size={shard_size!r}: expected a number of bytes >= 1")
    features = resolve_features(src)
    if is_packed(features):
        raise StoreError(f"{features}: already a packed dataset; herostore unpack gives back a directory store")
    dst_root = Path(dst)
    out = dst_root / FEATURES_DIR
    if out.exists() and out.resolve() == features.resolve():
        raise StoreError(f"{out}: is the source store; pack into another dataset root")
    root, plans, strays = plan_pack(features, shard_size)
    if strays:
        warnings.warn(f"{features}: {len(strays)} folder(s) without {META} are not complete videos and were not "
                      f"packed: {short_list(strays)}", stacklevel=2)
    _claim_output(out, overwrite)
    make_folder(out, "the packed dataset's folder")
    copy_label_files(features, dst_root, overwrite=overwrite)
    clean_stale_temporaries(out)
    job = partial(_pack_shard, features=os.path.abspath(features), folder=os.path.abspath(out), root=root)
    report = map_videos(job, [(plan.name, plan) for plan in plans], workers=workers, scheduler=scheduler,
                        progress=progress, desc="pack", batch=1, item_seconds=SHARD_SECONDS,
                        check_paths=[features, out])
    if report.ok:
        _publish(out, root, plans)
    return report


def _claim_output(out: Path, overwrite: bool) -> None:
    """Refuse a destination holding anything but (an interrupted) packed dataset; retire a finished one's manifest."""
    if not out.exists():
        return
    if not out.is_dir():
        raise StoreError(f"{out}: exists and is not a folder; a packed dataset needs a new or empty folder")
    names = os.listdir(out)
    foreign = sorted(n for n in names if n not in (MANIFEST, INDEX) and not SHARD_PATTERN.fullmatch(n)
                     and not (n.startswith(".") and n.endswith(TEMP_SUFFIX)))
    if foreign:
        raise StoreError(f"{out}: holds {short_list(foreign)}, which pack did not write; a packed dataset needs a "
                         "new or empty folder")
    if MANIFEST in names:
        if not overwrite:
            raise StoreError(f"{out}: a packed dataset is already there; pass --overwrite to replace it")
        os.unlink(out / MANIFEST)  # from here on there is no dataset to read until the new manifest is written
        fsync_dir(out)


def _publish(out: Path, root: bytes, plans: list[ShardPlan]) -> None:
    """Write the index, then the manifest; then remove what the dataset does not use."""
    entries = [(video_id, plan.number, offset, length) for plan in plans
               for (video_id, _), (offset, length) in zip(plan.videos, plan.ranges)]
    index = encode_index(entries)
    atomic_write(out / INDEX, index)
    shards = [(plan.name, plan.size, len(plan.videos)) for plan in plans]
    atomic_write(out / MANIFEST, manifest_bytes(root, shards, len(index), crc32c(index), len(entries)))
    used = {plan.name for plan in plans}
    for name in os.listdir(out):
        if SHARD_PATTERN.fullmatch(name) and name not in used:
            os.unlink(out / name)  # a shard of the dataset this one replaced
        elif name.startswith(".") and name.endswith(TEMP_SUFFIX):
            _remove_if_unlocked(out / name)


def _remove_if_unlocked(path: Path) -> None:
    """Remove a temporary file whose writer is gone (its writer holds an ``flock`` while alive)."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path.unlink()
    except OSError:
        pass
    finally:
        os.close(fd)


# -- unpack ------------------------------------------------------------------------------------------------------


def unpack(src: str | os.PathLike, dst: str | os.PathLike, *, overwrite: bool = False, workers: int | None = None,
           scheduler: str | None = None, progress: bool = True) -> JobReport:
    """Write a packed dataset back as the directory store ``dst/features``, every file byte for byte; labels travel.

    Resumes into a store with the same root document (complete videos are skipped unless ``overwrite``); a
    store with another root is refused. The report counts shards; each outcome's value is (written, skipped).
    """
    folder = resolve_features(src)
    if not is_packed(folder):
        raise StoreError(f"{folder}: not a packed dataset (no {MANIFEST}); unpack reads what herostore pack wrote")
    dataset = PackedDataset(folder)
    root = dataset.root_file()
    parse_root(root, str(folder))
    dst_root = Path(dst)
    out = dst_root / FEATURES_DIR
    if out.exists() and out.resolve() == folder.resolve():
        raise StoreError(f"{out}: is the packed dataset itself; unpack into another dataset root")
    make_folder(dst_root, "the destination dataset root")

    def accept(existing: bytes) -> None:
        if existing != root:
            raise StoreError(f"{out}: a store with another root document is there; unpack into a new folder")

    target = LocalDirectory(out)
    target.create_root(root, accept)
    copy_label_files(folder, dst_root, overwrite=overwrite)
    target.clean_scratch()
    items = [(dataset.manifest.shards[number][0], tuple(ids)) for number, ids in sorted(dataset.index().shards_of()
                                                                                       .items())]
    job = partial(_unpack_shard, src=os.path.abspath(folder), dst=os.path.abspath(out), overwrite=overwrite)
    return map_videos(job, items, workers=workers, scheduler=scheduler, progress=progress, desc="unpack", batch=1,
                      item_seconds=SHARD_SECONDS, check_paths=[folder, out])


@lru_cache(maxsize=2)
def _packed(src: str) -> PackedDataset:
    return PackedDataset(src)  # one open (index read) per worker process, whatever the number of shards


def _unpack_shard(name: str, video_ids: tuple[str, ...], *, src: str, dst: str, overwrite: bool) -> Outcome:
    """Publish every video of one shard into the directory store; a video that fails does not stop the others."""
    dataset, target = _packed(src), LocalDirectory(dst)
    written = skipped = 0
    failed = []
    for video_id in video_ids:
        try:
            if not overwrite and target.has_video(video_id):
                skipped += 1
            elif target.publish(video_id, dataset.files(video_id), overwrite):
                written += 1
            else:
                skipped += 1
        except (HerostoreError, OSError) as exc:
            failed.append(str(exc))
    with contextlib.suppress(OSError):
        target.tidy()
    if failed:
        return Outcome(name, "failed", f"{len(failed)} of {len(video_ids)} videos failed; first: {failed[0]}",
                       value=(written, skipped))
    return Outcome(name, "written" if written else "skipped", f"{written} videos written, {skipped} already there",
                   value=(written, skipped))
