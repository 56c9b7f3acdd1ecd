"""``ZarrReader``: herostore's fast read path over a store, wherever its bytes are.

Per read it parses the video's ``zarr.json`` once (its consolidated metadata describes every array), plans each
requested array (``engine.plan_array``), and asks the store's location to fill the output rows: chunk files of a
local folder, objects of a bucket, or members of a packed shard. Only the chunks that cover the requested rows
are read; every chunk's size and checksum are checked before its bytes are used (a chunk verified once is
remembered for the rest of the process). ``zero_copy=True`` returns uncompressed one-chunk arrays of a local
store as **read-only** memory maps (``np.array(x)`` for a writable copy); ``fast=False`` reads through
zarr-python instead, the reference the tests compare with.

Readers are picklable and fork-safe: nothing opened outlives a process, and pickling drops the id list.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ArgumentError, CorruptStoreError, InvalidVideoIdError
from ..layout import META, StoreInfo, VideoMeta, check_video_id, parse_json, parse_root, parse_video
from ..schema import check_modalities
from .engine import VERIFIED, ArrayPlan, ChunkJob, VerifiedChunks, plan_array
from .protocol import VideoRecord, check_max_rows, check_threads, default_threads
from .rows import Rows, check_rows, copy_rows, destination, scratch

__all__ = ["MMAP_MIN_BYTES", "ZarrReader"]

# Uncompressed one-chunk arrays at least this large are memory-mapped when zero_copy is asked for; smaller ones
# are read into the output (faster than mmap + munmap + page faults for small files).
MMAP_MIN_BYTES = 256 * 1024
# Format-1 arrays whose own zarr.json this process found equal to their consolidated copy (by store, video, array
# and plan): planning them again the same way skips the comparison. Format 2 seals the video document instead.
AGREED = VerifiedChunks(limit=1 << 16)


class ZarrReader:
    """Read videos from a herostore store through its location (see ``herostore.locations``)."""

    format = "zarr"

    def __init__(self, location: Any, *, fast: bool = True, zero_copy: bool = False, threads: int | None = None,
                 storage_options: Mapping[str, Any] | None = None):
        if isinstance(location, (str, os.PathLike)):
            from ..locations import open_location

            location = open_location(location, storage_options)
        self.location = location
        self.fast = fast
        self.zero_copy = zero_copy
        self.threads = check_threads(threads)
        self.info: StoreInfo = parse_root(location.read_root(), location.name)
        self._ids: list[str] | None = None

    def __repr__(self) -> str:
        return f"ZarrReader({self.location.name!r}, fast={self.fast})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_ids"] = None  # a million ids are cheaper to list again than to pickle
        return state

    def close(self) -> None:
        """Drop the cached id list; the reader stays usable."""
        self._ids = None

    # -- listing and store facts ---------------------------------------------------------------------------------

    def video_ids(self) -> list[str]:
        """Every complete video, sorted (listed once, then cached)."""
        if self._ids is None:
            self._ids = self.location.video_ids()
        return self._ids

    def __contains__(self, video_id: object) -> bool:
        try:
            return self.location.has_video(check_video_id(video_id))
        except InvalidVideoIdError:
            return False

    def __len__(self) -> int:
        return len(self.video_ids())

    def stats(self) -> dict[str, dict[str, np.ndarray]] | None:
        """Per-modality statistics recorded in the store (``herostore stats``), or None."""
        return self.info.stats()

    def preset_name(self) -> str:
        return self.info.preset.name

    # -- reading -------------------------------------------------------------------------------------------------

    def video_meta(self, video_id: str) -> VideoMeta:
        """The video's parsed ``zarr.json`` (transcript, notes, array metadata), its seal checked (format 3 on)."""
        return parse_video(self.location.video_document(check_video_id(video_id)), self.location.name, video_id,
                           self.info.format_version)

    def plan(self, meta: VideoMeta, modality: str) -> ArrayPlan:
        """How to read one array, from the video document's consolidated metadata."""
        where = f"{self.location.name}: video {meta.video_id!r}"
        preset = self.info.preset if self.info.format_version >= 2 else None
        crcs = None if meta.chunk_crcs is None else meta.chunk_crcs[modality]
        plan = plan_array(modality, meta.arrays[modality], where, checksums=self.info.checksums, preset=preset,
                          crcs=crcs)
        if meta.chunk_crcs is None:
            self._check_array_document(meta, modality, plan)
        return plan

    def _check_array_document(self, meta: VideoMeta, name: str, plan: ArrayPlan) -> None:
        """Formats 1 and 2 have no seal: the array's own ``zarr.json`` must say what its consolidated copy says (what
        decides the bytes read), checked once per process for a plan, so that an edit of that copy alone (a shape
        grown into the last chunk's padding, a byte order) cannot change the data read without an error. Local
        stores only: elsewhere it would cost a request per array (``herostore verify`` compares them there)."""
        encoding = plan.encoding
        identity = (self.location.name, meta.video_id, name, plan.shape, plan.chunk_rows, encoding.stored.str,
                    encoding.codec is not None, encoding.checksum)
        if not getattr(self.location, "small_reads_are_cheap", False) or identity in AGREED:
            return
        where = f"{self.location.name}: video {meta.video_id!r}, modality {name!r}"
        key = f"{name}/{META}"
        try:
            own = parse_json(self.location.read_key(meta.video_id, key), f"{where}: {key}")
        except FileNotFoundError:
            raise CorruptStoreError(f"{where}: {key} is missing") from None
        if own != meta.arrays[name]:
            raise CorruptStoreError(f"{where}: {key} disagrees with the consolidated metadata in {META} (edited "
                                    "or damaged)")
        AGREED.add(identity)

    def prefetch(self, video_ids: Sequence[str]) -> None:
        """Announce the videos about to be read (a batch): a location that can fetch them together does."""
        prefetch = getattr(self.location, "prefetch", None)
        if prefetch is not None and self.fast:
            prefetch(video_ids)

    def read(self, video_id: str, modalities: Sequence[str] | None = None,
             max_rows: Mapping[str, int] | None = None) -> VideoRecord:
        """The requested modalities the video has (all by default), rows ``[:max_rows[key]]``."""
        wanted = check_modalities(modalities)
        limits = check_max_rows(max_rows)
        check_video_id(video_id)
        if not self.fast:
            from .reference import read_with_zarr_python

            return read_with_zarr_python(self.location, video_id, wanted, limits)
        meta = self.video_meta(video_id)
        arrays: dict[str, np.ndarray] = {}
        jobs: list[ChunkJob] = []
        swapped: list[np.ndarray] = []
        for key in wanted:
            if key not in meta.arrays:
                continue
            plan = self.plan(meta, key)
            arrays[key], array_jobs = self._prepare(video_id, plan, limits.get(key))
            jobs += array_jobs
            if array_jobs and not plan.encoding.stored.isnative:
                swapped.append(arrays[key])
        self.fill(video_id, jobs)
        for array in swapped:
            array.byteswap(inplace=True)
        return VideoRecord(video_id, arrays, meta.transcript, meta.notes)

    def read_into(self, video_id: str, dests: Mapping[str, np.ndarray], *, rows: Mapping[str, Rows] | None = None,
                  plans: Mapping[str, ArrayPlan] | None = None, threads: int | None = None) -> None:
        """Read the video's arrays into memory the caller already has: ``dests[modality]``.

        ``rows[modality]`` selects rows: None (all, the default), an int n (the first n: only their chunks are
        read) or an int array of row numbers (a subsample; with ``zero_copy`` an uncompressed one-chunk array is
        memory-mapped rather than read whole). A destination holds exactly the selected rows: shape
        ``[n, *row_shape]`` or any C-contiguous shape of that size (a 3-D array's rows may be flattened), any float
        dtype. Chunk bytes go straight into it when its dtype is the stored one and it takes leading rows;
        otherwise they go through this thread's scratch buffer and are cast once. ``plans``: the arrays' plans
        (``plan``) when the caller has them, so the video's metadata is not parsed again. ``threads``: for this
        read, instead of the reader's.
        """
        check_video_id(video_id)
        selections = rows or {}
        if plans is None:
            meta = self.video_meta(video_id)
            absent = [m for m in dests if m not in meta.arrays]
            if absent:
                raise ArgumentError(f"{self.location.name}: video {video_id!r} has no {', '.join(map(repr, absent))} "
                                    f"array (it has {', '.join(map(repr, meta.arrays))})")
            plans = {m: self.plan(meta, m) for m in dests}
        jobs: list[ChunkJob] = []
        after: list[Any] = []  # copies once the chunks are in: padded tails, casts, subsamples
        for key, dest in dests.items():
            plan = plans[key]
            where = f"{self.location.name}: video {video_id!r}, modality {key!r}"
            need, index = check_rows(selections.get(key), plan.shape[0], where)
            out = destination(dest, (need if index is None else len(index),) + plan.shape[1:], where)
            stored = plan.encoding.stored
            if index is None and dest.dtype == stored:
                jobs += self._jobs_into(plan, out, need, after)
                continue
            src = self._mapped(video_id, plan, need) if index is not None else None
            if src is None:
                src = scratch(f"read_into:{key}", stored, (need,) + plan.shape[1:])
                jobs += self._jobs_into(plan, src, need, after)
            after.append(lambda src=src, out=out, index=index: copy_rows(src, out, index))
        self.fill(video_id, jobs, threads=threads)
        for step in after:
            step()

    def fill(self, video_id: str, jobs: Sequence[ChunkJob], *, threads: int | None = None) -> None:
        """Read and decode ``jobs`` (chunks of one video) into their destinations."""
        name = self.location.name

        def where(job: ChunkJob) -> str:
            return f"{name}: video {video_id!r}, modality {job.plan.name!r}, chunk {job.key}"

        if threads is None:
            threads = self.threads if self.threads is not None else default_threads()
        self.location.fill(video_id, jobs, where, threads=threads, verified=VERIFIED)

    def _jobs_into(self, plan: ArrayPlan, out: np.ndarray, rows: int, after: list[Any]) -> list[ChunkJob]:
        """Chunk jobs filling rows ``[:rows]`` of ``out`` (stored dtype); a compressed chunk that ends past them is
        decoded into this thread's scratch, and its head copied over in ``after``."""
        raw = out.reshape(-1).view(np.uint8)
        step = plan.chunk_bytes
        end = rows * plan.row_bytes
        jobs = []
        for i in range(-(-rows // plan.chunk_rows)):
            dest = raw[i * step : min((i + 1) * step, end)]
            if plan.encoding.codec is not None and len(dest) < step:
                whole = scratch(f"chunk:{plan.name}", np.uint8, (step,))
                jobs.append(plan.job(i, memoryview(whole)))
                after.append(lambda dest=dest, whole=whole: np.copyto(dest, whole[: len(dest)]))
            else:
                jobs.append(plan.job(i, memoryview(dest)))
        return jobs

    def _mapped(self, video_id: str, plan: ArrayPlan, rows: int) -> np.ndarray | None:
        """Rows ``[:rows]`` of an uncompressed one-chunk array, memory-mapped (read-only), if ``zero_copy`` allows."""
        nbytes = rows * plan.row_bytes
        if not (self.zero_copy and plan.encoding.codec is None and plan.n_chunks == 1 and plan.encoding.stored.isnative
                and nbytes >= MMAP_MIN_BYTES and hasattr(self.location, "map_chunk")):
            return None
        job = plan.job(0, memoryview(b""))
        where = f"{self.location.name}: video {video_id!r}, modality {plan.name!r}, chunk {job.key}"
        view = self.location.map_chunk(video_id, job, nbytes, where, VERIFIED)
        return view.view(plan.encoding.native).reshape((rows,) + plan.shape[1:])

    def _prepare(self, video_id: str, plan: ArrayPlan, limit: int | None) -> tuple[np.ndarray, list[ChunkJob]]:
        """The output for rows ``[:limit]`` of one array and the chunk jobs that fill it."""
        rows = plan.shape[0] if limit is None else min(limit, plan.shape[0])
        out_shape = (rows,) + plan.shape[1:]
        row_bytes = plan.row_bytes
        n_chunks = -(-rows // plan.chunk_rows)
        mapped = self._mapped(video_id, plan, rows)
        if mapped is not None:
            return mapped, []
        out = np.empty(out_shape, plan.encoding.native)
        raw = out.reshape(-1).view(np.uint8)
        step = plan.chunk_rows * row_bytes
        end = rows * row_bytes
        jobs = [plan.job(i, memoryview(raw[i * step : min((i + 1) * step, end)])) for i in range(n_chunks)]
        return out, jobs

