"""Reading chunk files into their destinations: size and checksum checks, direct reads, page-cache hints.

A sample's chunk files are opened together and, when not cached, announced to the kernel
(``POSIX_FADV_WILLNEED``) so cold reads overlap; raw chunks are read straight into the output rows; compressed
ones are decoded on a small per-process thread pool when there is enough decoding to share (Blosc releases the
GIL). A chunk whose checksum this process verified once is recognised by its file identity and not hashed again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from typing import Any

import numpy as np

from ..errors import CorruptStoreError
from ..read.engine import CRC_BYTES, ChunkJob, VerifiedChunks, check_crc, crc32c, decode_chunk
from ..read.rows import scratch

__all__ = ["BLOSC_OVERHEAD", "PARALLEL_MIN_BYTES", "fill_from_files", "identity"]

# A sample's chunks are decoded on several threads only when they decode to at least this much.
PARALLEL_MIN_BYTES = 512 * 1024
BLOSC_OVERHEAD = 1024  # a blosc chunk is never this much larger than its decoded size


def fill_from_files(jobs: Sequence[ChunkJob], open_chunk: Callable[[ChunkJob], int],
                    where: Callable[[ChunkJob], str], *, threads: int, verified: VerifiedChunks) -> None:
    """Open every job's chunk file with ``open_chunk`` (which raises for a missing or refused file), read it and
    decode it into the job's destination."""
    if not jobs:
        return
    fds: list[int] = []
    try:
        for job in jobs:
            fd = open_chunk(job)
            fds.append(fd)
            if len(jobs) > 1 and not _first_page_cached(fd):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        decoded = sum(len(job.dest) for job in jobs if job.plan.encoding.codec is not None)
        if threads > 1 and len(jobs) > 1 and decoded and decoded >= PARALLEL_MIN_BYTES:
            run_all(thread_pool(threads), [partial(fill_one, jobs[i], fds[i], where, verified)
                                            for i in sorted(range(len(jobs)), key=lambda i: -len(jobs[i].dest))])
        else:
            for job, fd in zip(jobs, fds):
                fill_one(job, fd, where, verified)
    finally:
        for fd in fds:
            os.close(fd)


def identity(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def fill_one(job: ChunkJob, fd: int, where: Callable[[ChunkJob], str], verified: VerifiedChunks) -> None:
    plan, dest = job.plan, job.dest
    st = os.fstat(fd)
    key = (job.key, *identity(st))  # the path too: an intact chunk renamed into another's place is not that chunk
    known = key in verified
    if plan.raw_size is not None:
        if st.st_size != plan.raw_size:
            raise CorruptStoreError(f"{where(job)}: chunk holds {st.st_size} bytes, expected {plan.raw_size}")
        if known or not plan.encoding.checksum:
            _pread_into(fd, [dest], 0, where(job))
            return
        rest = bytearray(plan.chunk_bytes - len(dest))
        stored = bytearray(CRC_BYTES)
        _pread_into(fd, [dest, rest, stored], 0, where(job))
        listed = int.from_bytes(stored, "little")
        if crc32c(rest, crc32c(dest)) != listed or (job.crc is not None and listed != job.crc):
            check_crc(bytes(dest) + bytes(rest), stored, where(job), job.crc)  # raises, saying which
        verified.add(key)
        return
    limit = plan.chunk_bytes + BLOSC_OVERHEAD + CRC_BYTES
    if st.st_size > limit:
        raise CorruptStoreError(f"{where(job)}: compressed chunk of {st.st_size} bytes, more than its "
                                f"{plan.chunk_bytes} decoded bytes can need")
    data = scratch("compressed-chunk", np.uint8, (st.st_size,))  # this thread's, reused: no fresh pages per chunk
    _pread_into(fd, [data], 0, where(job))
    decode_chunk(plan, data, dest, where(job), verified=known, expected=job.crc)
    if plan.encoding.checksum:
        verified.add(key)


def _pread_into(fd: int, buffers: list[Any], offset: int, where: str) -> None:
    """Fill ``buffers`` in order from ``offset``; a short file is damage."""
    want = sum(len(b) for b in buffers)
    got = 0
    views = [memoryview(b).cast("B") for b in buffers]
    while got < want:
        n = os.preadv(fd, _remaining(views, got), offset + got)
        if n == 0:
            raise CorruptStoreError(f"{where}: chunk ended after {got} bytes, expected {want}")
        got += n


def _remaining(views: list[memoryview], skip: int) -> list[memoryview]:
    out = []
    for v in views:
        if skip >= len(v):
            skip -= len(v)
            continue
        out.append(v[skip:])
        skip = 0
    return out


def _first_page_cached(fd: int) -> bool:
    """Whether the file's first page is in the page cache (a one-byte read that may not wait for the disk).

    Announcing a cached file to the kernel costs a walk over its pages, so only uncached files are announced.
    """
    if _RWF_NOWAIT is None:
        return False
    try:
        return os.preadv(fd, [bytearray(1)], 0, _RWF_NOWAIT) == 1
    except OSError:
        return False


_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", None)
_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def run_all(pool: ThreadPoolExecutor, calls: Sequence[Callable[[], None]]) -> None:
    """Run ``calls`` on ``pool`` and wait for every one before raising the first error: no call may still be
    using a file descriptor or a buffer after the caller has closed or reused it."""
    futures = [pool.submit(call) for call in calls]
    wait(futures)
    for future in futures:
        future.result()


def thread_pool(threads: int) -> ThreadPoolExecutor:
    """This process's pool of ``threads`` threads (a pool never crosses a fork)."""
    key = (os.getpid(), threads)
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = ThreadPoolExecutor(threads, thread_name_prefix="herostore-read")
    return pool


