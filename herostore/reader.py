"""Read feature videos through one interface, from a herostore store or a spec npy folder.

``open_reader(path)`` picks the reader: ``ZarrReader`` for a herostore store,
``NpyReader`` for the spec's ``features/`` folder of pickled-dict ``.npy`` files.
Both return a ``VideoRecord`` per video and nothing else, so a dataset codes
against one API.

The fast path (``ZarrReader(fast=True)``, the default, local stores only) skips
zarr-python: per read it parses the video's ``zarr.json`` once (its inline
consolidated metadata describes every array), computes the chunk file names and
decodes them with numcodecs straight into one preallocated output array. Only the
chunks that cover the requested rows are opened. Uncompressed arrays that fit in
one chunk are returned zero-copy as a **read-only** view of a memory map of the
chunk file (``np.array(x)`` for a writable copy). What the fast path does not
understand (another codec, a non-regular grid, sharding, a remote store, another
store format version) is read through zarr-python, which is also the reference
the tests compare with.

Readers are picklable and fork-safe: ``__init__`` opens nothing that outlives it;
zarr objects are created lazily and kept per process (keyed by ``os.getpid()``),
and pickling drops every cache. Nothing is cached per video, so memory stays flat
however many videos are read; only decoder objects (one per codec config) are kept.
The reader is also safe to share between threads.

A sample's chunk files are opened together, announced to the kernel
(``POSIX_FADV_WILLNEED``, so cold reads overlap), and read and decoded on a small
per-process thread pool when the sample is large enough (``threads``; by default 1
inside a DataLoader worker, else up to 4). Blosc releases the GIL, so chunks decode
in parallel. ``benchmarks/`` measures the choices.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from . import npyfile
from .errors import InvalidVideoIdError, SpecError, StoreError, VideoNotFoundError
from .schema import check_features, check_modalities
from .store import FORMAT_NAME, FORMAT_VERSION, GROUP_META, check_video_id, is_store

__all__ = ["NpyReader", "VideoRecord", "ZarrReader", "open_reader"]

# Uncompressed one-chunk arrays at least this large are memory-mapped (zero-copy);
# smaller ones are read with one read() into the output, which measured faster than
# mmap + munmap + page faults for tiny files.
MMAP_MIN_BYTES = 256 * 1024
# A sample's chunks are shared among threads only when they decode to at least this
# much: below it, handing work to threads costs more than it saves.
PARALLEL_MIN_BYTES = 512 * 1024

_DTYPES = {
    name: np.dtype(name)
    for name in (
        "float16", "float32", "float64",
        "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    )
}
_LITTLE = {d: d.newbyteorder("<") for d in _DTYPES.values()}
_BIG = {d: d.newbyteorder(">") for d in _DTYPES.values()}
_SPECIAL_FILLS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_SHUFFLES = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
_NOTE_SKIP = ("modalities", "deviations")  # bookkeeping in the herostore attribute, not notes


@dataclass
class VideoRecord:
    """One video as read: the requested arrays it has, its transcript and notes."""

    video_id: str
    arrays: dict[str, np.ndarray]  # stored dtype and shape ([T, D], or 3-D as stored)
    transcript: str
    notes: dict[str, Any] = field(default_factory=dict)  # e.g. {"audio": "missing"}; {} for npy


# -- low-level file access (tests patch ``_open_fd`` to see what is opened) ----------


def _open_fd(path: str) -> int:
    return os.open(path, os.O_RDONLY)


def _read_into(fd: int, dest: memoryview) -> int:
    """Fill ``dest`` from ``fd``; returns the bytes read (short only at end of file)."""
    got, want = 0, len(dest)
    while got < want:
        n = os.readv(fd, [dest[got:]])
        if n == 0:
            break
        got += n
    return got


def _read_all(fd: int) -> bytes:
    """The whole file in one read() into a new buffer.

    Measured on the project's VMs, reading into a fresh buffer (which malloc recycles
    anyway) was several times faster than reading into a long-lived reused one.
    """
    size = os.fstat(fd).st_size
    data = os.read(fd, size)
    if len(data) < size:  # one read() stops at ~2 GiB
        data += b"".join(iter(lambda: os.read(fd, 1 << 30), b""))
    return data


def _read_file(path: str) -> bytes:
    fd = _open_fd(path)
    try:
        return _read_all(fd)
    finally:
        os.close(fd)


_CODECS: dict[Any, Any] = {}


def _blosc(config: Mapping[str, Any]) -> Any:
    """A numcodecs Blosc decoder for a v3 blosc codec config, cached by the config."""
    try:
        key: Any = tuple(sorted(config.items()))
        codec = _CODECS.get(key)
    except TypeError:  # an unhashable value: key by the JSON text
        key = json.dumps(config, sort_keys=True)
        codec = _CODECS.get(key)
    if codec is None:
        from numcodecs import Blosc

        codec = Blosc(
            cname=config.get("cname", "lz4"),
            clevel=int(config.get("clevel", 5)),
            shuffle=_SHUFFLES.get(config.get("shuffle", "noshuffle"), 0),
            blocksize=int(config.get("blocksize", 0)),
        )
        _CODECS[key] = codec
    return codec


# -- what the fast path understands -----------------------------------------------


class _Plan(NamedTuple):
    shape: tuple[int, ...]
    chunk_rows: int
    stored: np.dtype  # with the bytes codec's byte order
    native: np.dtype
    swap: bool  # stored byte order differs from the machine's
    codec: Any  # numcodecs Blosc, or None for raw bytes
    fill: float | int
    prefix: str  # chunk key before the row index, e.g. "c/"
    suffix: str  # chunk key after it, e.g. "/0" (2-D) or "/0/0" (3-D)


def _plan(meta: Mapping[str, Any]) -> _Plan | None:
    """How to read one array from its v3 metadata; None if the fast path cannot."""
    try:
        if meta.get("zarr_format") != 3 or meta.get("node_type") != "array" or meta.get("storage_transformers"):
            return None
        shape = tuple(int(n) for n in meta["shape"])
        dtype = _DTYPES.get(meta["data_type"]) if isinstance(meta["data_type"], str) else None
        grid = meta["chunk_grid"]
        if dtype is None or not shape or grid.get("name") != "regular":
            return None
        chunks = tuple(int(n) for n in grid["configuration"]["chunk_shape"])
        if len(chunks) != len(shape) or chunks[1:] != shape[1:] or chunks[0] < 1:
            return None  # chunked along the first axis only
        encoding = meta["chunk_key_encoding"]
        sep = encoding.get("configuration", {}).get("separator")
        if encoding.get("name") == "default":
            sep = sep or "/"
            prefix = "c" + sep
        elif encoding.get("name") == "v2":
            sep = sep or "."
            prefix = ""
        else:
            return None
        if sep not in ("/", "."):
            return None
        codecs = meta["codecs"]
        if not codecs or codecs[0].get("name") != "bytes" or len(codecs) > 2:
            return None
        endian = (codecs[0].get("configuration") or {}).get("endian", "little")
        if endian not in ("little", "big"):
            return None
        codec = None
        if len(codecs) == 2:
            if codecs[1].get("name") != "blosc":
                return None
            codec = _blosc(codecs[1].get("configuration") or {})
        fill = meta.get("fill_value", 0)
        if isinstance(fill, str):
            if fill not in _SPECIAL_FILLS:
                return None  # hex-encoded bit patterns: leave them to zarr-python
            fill = _SPECIAL_FILLS[fill]
        if isinstance(fill, bool) or not isinstance(fill, (int, float)):
            return None
        stored = _LITTLE[dtype] if endian == "little" else _BIG[dtype]
        swap = stored.itemsize > 1 and not stored.isnative
        suffix = sep + sep.join("0" * (len(shape) - 1)) if len(shape) > 1 else ""
        return _Plan(shape, chunks[0], stored, dtype, swap, codec, fill, prefix, suffix)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


class _ChunkJob(NamedTuple):
    """One chunk file to read (and decode) into its rows of an output array."""

    path: str
    dest: memoryview  # the output's bytes for the chunk's rows (stored byte order until swapped)
    plan: _Plan
    chunk_bytes: int  # the chunk's full decoded size


def _prepare_array(array_dir: str, plan: _Plan, limit: int | None, zero_copy: bool
                   ) -> tuple[np.ndarray, list[_ChunkJob]]:
    """The output for rows ``[:limit]`` of one array and the chunk jobs that fill it.

    Only the chunk files that cover those rows get a job. A large uncompressed one-chunk
    array is returned as a read-only memory map with no job (``zero_copy``).
    """
    shape = plan.shape
    rows = shape[0] if limit is None else min(limit, shape[0])
    out_shape = (rows,) + shape[1:]
    row_bytes = math.prod(shape[1:]) * plan.stored.itemsize
    chunk_rows = plan.chunk_rows
    chunk_bytes = chunk_rows * row_bytes
    n_chunks = -(-rows // chunk_rows)

    def chunk_path(i: int) -> str:
        return f"{array_dir}/{plan.prefix}{i}{plan.suffix}"

    if zero_copy and plan.codec is None and n_chunks == 1 and rows * row_bytes >= MMAP_MIN_BYTES:
        mapped = _map_chunk(chunk_path(0), chunk_bytes)
        if mapped is not None:
            view = np.frombuffer(mapped, dtype=plan.stored, count=rows * row_bytes // plan.stored.itemsize)
            view = view.reshape(out_shape)
            return (view.astype(plan.native) if plan.swap else view), []

    out = np.empty(out_shape, plan.native)
    raw = out.reshape(-1).view(np.uint8)
    jobs = [
        _ChunkJob(chunk_path(i), memoryview(raw[i * chunk_rows * row_bytes : min((i + 1) * chunk_rows, rows) * row_bytes]),
                  plan, chunk_bytes)
        for i in range(n_chunks)
    ]
    return out, jobs


def _run_jobs(jobs: Sequence[_ChunkJob], threads: int) -> None:
    """Read and decode every chunk job, on ``threads`` threads when there is enough decoding to share.

    All chunk files are opened first and the kernel is told that those not in the page
    cache will be needed (``POSIX_FADV_WILLNEED``), so on a cold cache their reads proceed
    together while the first chunks are read and decoded. Blosc releases the GIL, so threads decode in parallel; plain
    copies of uncompressed chunks measured faster on one thread.
    """
    if not jobs:
        return
    fds: list[int | None] = []
    try:
        for job in jobs:
            try:
                fd = _open_fd(job.path)
            except FileNotFoundError:
                fd = None  # never written: the fill value
            else:
                if len(jobs) > 1 and not _first_page_cached(fd):
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            fds.append(fd)
        decoded = sum(len(job.dest) for job in jobs if job.plan.codec is not None)
        if threads > 1 and len(jobs) > 1 and decoded and decoded >= PARALLEL_MIN_BYTES:
            order = sorted(range(len(jobs)), key=lambda i: -len(jobs[i].dest))  # largest first
            for _ in _thread_pool(threads).map(lambda i: _run_job(jobs[i], fds[i]), order):
                pass
        else:
            for job, fd in zip(jobs, fds):
                _run_job(job, fd)
    finally:
        for fd in fds:
            if fd is not None:
                os.close(fd)


def _first_page_cached(fd: int) -> bool:
    """Whether the file's first page is in the page cache: a one-byte read that may not wait for the disk.

    Telling the kernel about a cached file costs a walk over its pages (~50 us for 3 MB), so only
    files that are not cached are announced.
    """
    if _RWF_NOWAIT is None:
        return False
    try:
        return os.preadv(fd, [bytearray(1)], 0, _RWF_NOWAIT) == 1
    except OSError:  # BlockingIOError: not cached; EOPNOTSUPP: the filesystem cannot tell
        return False


_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", None)


def _run_job(job: _ChunkJob, fd: int | None) -> None:
    plan, dest = job.plan, job.dest
    if fd is None:
        np.frombuffer(dest, dtype=plan.stored)[:] = plan.fill
    elif plan.codec is None:
        got = _read_into(fd, dest)
        if got != len(dest):
            raise StoreError(f"{job.path}: chunk holds {got} bytes, expected at least {len(dest)}")
    else:
        _decode(plan.codec, _read_all(fd), dest, job.chunk_bytes, job.path)


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _thread_pool(threads: int) -> ThreadPoolExecutor:
    """This process's pool of ``threads`` threads (a pool never crosses a fork)."""
    key = (os.getpid(), threads)
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = ThreadPoolExecutor(threads, thread_name_prefix="herostore-read")
    return pool


def default_threads() -> int:
    """Threads a reader uses per sample: 1 inside a DataLoader worker (the workers already use the
    cores), else the CPUs this process may run on, at most 4."""
    torch_data = sys.modules.get("torch.utils.data")
    if torch_data is not None and torch_data.get_worker_info() is not None:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cpus))


def _decode(codec: Any, data: bytes, dest: memoryview, chunk_bytes: int, path: str) -> None:
    """Decode one blosc chunk into ``dest``: the whole chunk, or its first rows."""
    nbytes = int.from_bytes(data[4:8], "little") if len(data) >= 16 else -1
    if nbytes != chunk_bytes:
        raise StoreError(f"{path}: blosc chunk decodes to {nbytes} bytes, expected {chunk_bytes}")
    try:
        if len(dest) == chunk_bytes:
            codec.decode(data, out=dest)
        else:  # the edge chunk (zarr writes it full size) or a max_rows prefix
            dest[:] = memoryview(codec.decode(data))[: len(dest)]
    except (RuntimeError, ValueError) as exc:
        raise StoreError(f"{path}: corrupt blosc chunk ({exc})") from None


def _map_chunk(path: str, chunk_bytes: int) -> mmap.mmap | None:
    """A read-only map of a raw chunk file, or None when the file is missing."""
    try:
        fd = _open_fd(path)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size < chunk_bytes:
            raise StoreError(f"{path}: chunk holds {size} bytes, expected {chunk_bytes}")
        return mmap.mmap(fd, chunk_bytes, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)


def _check_max_rows(max_rows: Mapping[str, int] | None) -> dict[str, int]:
    if not max_rows:
        return {}
    check_modalities(list(max_rows))
    for key, value in max_rows.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise SpecError(f"max_rows[{key!r}] = {value!r}: expected an int >= 0")
    return {k: int(v) for k, v in max_rows.items()}


def _notes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    info = attributes.get(FORMAT_NAME) or {}
    return {k: v for k, v in info.items() if k not in _NOTE_SKIP}


def _is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


# -- readers -----------------------------------------------------------------------


class ZarrReader:
    """Read videos from a herostore store (local path, or a URL through zarr-python).

    ``fast=False`` reads every array through zarr-python. ``zero_copy=True`` makes
    the fast path return large uncompressed one-chunk arrays as read-only views of a
    memory map of the chunk file instead of reading them into fresh writable arrays:
    faster when only some rows are used (subsampling 64 of 1568 rows), slower when
    every row is copied anyway. ``threads`` shares the decoding of a sample's
    compressed chunks among that many threads (``None``: ``default_threads()``). ``storage_options`` are passed to fsspec for URLs
    (``s3://bucket/features``).
    """

    format = "zarr"

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fast: bool = True,
        zero_copy: bool = False,
        threads: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ):
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads={threads!r}: expected an int >= 1, or None for the default")
        text = os.fspath(path)
        text = text.removeprefix("file://")
        self.url: str | None = text.rstrip("/") if _is_url(text) else None
        self.path = Path(text)
        self.storage_options = dict(storage_options or {})
        self.fast = fast
        self.zero_copy = zero_copy
        self.threads = threads
        self._root_info: dict[str, Any] | None = None
        self._ids: list[str] | None = None
        self._proc: dict[str, Any] = {}
        if self.url is None:
            self._root_info = self._local_root_info()
        # the fast path needs a local store of the version it was written for
        self._use_fast = fast and self.url is None and self._root_info.get("format_version") == FORMAT_VERSION

    def _local_root_info(self) -> dict[str, Any]:
        meta_path = self.path / GROUP_META
        try:
            document = json.loads(_read_file(str(meta_path)))
        except (FileNotFoundError, NotADirectoryError):
            raise StoreError(f"{self.path}: not a herostore store (no {GROUP_META}); expected a store root") from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"{meta_path}: unreadable Zarr metadata: {exc}") from None
        info = document.get("attributes", {}).get(FORMAT_NAME) if isinstance(document, dict) else None
        if not isinstance(info, dict):
            raise StoreError(f"{self.path}: a Zarr node, but not a herostore store (no '{FORMAT_NAME}' attribute)")
        return info

    def __repr__(self) -> str:
        return f"ZarrReader({self.url or str(self.path)!r}, fast={self.fast})"

    def _where(self) -> str:
        return self.url or str(self.path)

    # -- pickling and per-process state ---------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_proc"] = {}
        state["_ids"] = None  # a million ids are cheaper to list again than to pickle
        return state

    def close(self) -> None:
        """Drop cached state (zarr objects, the id list); the reader stays usable."""
        self._proc = {}
        self._ids = None

    def _process_state(self) -> dict[str, Any]:
        """Objects that must not cross a fork (zarr stores, fsspec filesystems)."""
        if self._proc.get("pid") != os.getpid():
            self._proc = {"pid": os.getpid()}
        return self._proc

    def _fsstore(self) -> Any:
        state = self._process_state()
        if "store" not in state:
            from zarr.storage import FsspecStore

            state["store"] = FsspecStore.from_url(self.url, storage_options=self.storage_options, read_only=True)
        return state["store"]

    def _root_attributes(self) -> dict[str, Any]:
        if self._root_info is None:
            import zarr

            try:
                group = zarr.open_group(self._fsstore(), mode="r", zarr_format=3, use_consolidated=False)
            except (FileNotFoundError, KeyError) as exc:
                raise StoreError(f"{self.url}: not a herostore store ({exc})") from None
            info = group.attrs.asdict().get(FORMAT_NAME)
            if not isinstance(info, dict):
                raise StoreError(f"{self.url}: a Zarr group, but not a herostore store (no '{FORMAT_NAME}' attribute)")
            self._root_info = info
        return self._root_info

    # -- listing -------------------------------------------------------------------

    def video_ids(self) -> list[str]:
        """Every video folder, sorted (one directory listing, cached; no per-video metadata is read).

        Writes are atomic, so every video folder a writer made is complete; a folder put into the store by
        hand without a ``zarr.json`` is listed too, is not ``in`` the reader, and reading it raises
        ``VideoNotFoundError`` (``herostore validate`` reports it).
        """
        if self._ids is None:
            if self.url is None:
                with os.scandir(self.path) as entries:
                    ids = [e.name for e in entries if not e.name.startswith(".") and e.is_dir()]
            else:
                import fsspec

                fs, root = fsspec.core.url_to_fs(self.url, **self.storage_options)
                ids = [
                    e["name"].rstrip("/").rsplit("/", 1)[-1]
                    for e in fs.ls(root, detail=True)
                    if e.get("type") == "directory"
                ]
                ids = [i for i in ids if not i.startswith(".")]
            self._ids = sorted(ids)
        return self._ids

    def __contains__(self, video_id: object) -> bool:
        try:
            video_id = check_video_id(video_id)
        except InvalidVideoIdError:
            return False
        if self.url is None:
            return os.path.isfile(os.path.join(self.path, video_id, GROUP_META))
        return video_id in self.video_ids()

    def __len__(self) -> int:
        return len(self.video_ids())

    # -- store facts ---------------------------------------------------------------

    def stats(self) -> dict[str, dict[str, np.ndarray]] | None:
        """Per-modality statistics recorded in the store, or None.

        ``{modality: {"mean": float32 [D], "std": float32 [D], "count": int64 0-d}}``.
        """
        raw = self._root_attributes().get("stats")
        if not isinstance(raw, dict):
            return None
        return {
            modality: {
                name: np.asarray(value, dtype=np.int64 if name == "count" else np.float32)
                for name, value in entry.items()
            }
            for modality, entry in raw.items()
            if isinstance(entry, dict)
        }

    def preset_name(self) -> str | None:
        preset = self._root_attributes().get("preset")
        return preset.get("name") if isinstance(preset, dict) else None

    # -- reading -------------------------------------------------------------------

    def read(
        self,
        video_id: str,
        modalities: Sequence[str] | None = None,
        max_rows: Mapping[str, int] | None = None,
    ) -> VideoRecord:
        """The requested modalities the video has (all by default), rows ``[:max_rows[key]]``."""
        wanted = check_modalities(modalities)
        limits = _check_max_rows(max_rows)
        check_video_id(video_id)
        if not self._use_fast:
            return self._read_zarr(video_id, wanted, limits)
        video_dir = os.path.join(self.path, video_id)
        try:
            document = json.loads(_read_file(os.path.join(video_dir, GROUP_META)))
        except (FileNotFoundError, NotADirectoryError):
            raise self._not_found(video_id) from None
        except ValueError as exc:
            raise StoreError(f"{video_dir}/{GROUP_META}: unreadable Zarr metadata: {exc}") from None
        attributes = document.get("attributes") or {}
        consolidated = document.get("consolidated_metadata")
        metadata = consolidated.get("metadata") if isinstance(consolidated, dict) else None
        if not isinstance(metadata, dict):
            return self._read_zarr(video_id, wanted, limits)
        arrays: dict[str, np.ndarray] = {}
        slow: list[str] = []
        jobs: list[_ChunkJob] = []
        swapped: list[np.ndarray] = []
        for key in wanted:
            meta = metadata.get(key)
            if not isinstance(meta, dict) or meta.get("node_type") != "array":
                continue
            plan = _plan(meta)
            if plan is None:
                slow.append(key)
                arrays[key] = None  # type: ignore[assignment]  # keeps the requested order
                continue
            arrays[key], array_jobs = _prepare_array(f"{video_dir}/{key}", plan, limits.get(key), self.zero_copy)
            jobs += array_jobs
            if array_jobs and plan.swap:
                swapped.append(arrays[key])
        _run_jobs(jobs, self.threads if self.threads is not None else default_threads())
        for array in swapped:
            array.byteswap(inplace=True)
        if slow:
            group = self._open_group(video_id)
            for key in slow:
                arrays[key] = _zarr_rows(group[key], limits.get(key))
        return VideoRecord(video_id, arrays, self._transcript(video_id, attributes), _notes(attributes))

    def _transcript(self, video_id: str, attributes: Mapping[str, Any]) -> str:
        transcript = attributes.get("transcript")
        if not isinstance(transcript, str):
            found = "no 'transcript' attribute" if transcript is None else f"a {type(transcript).__name__}"
            raise SpecError(f"{self._where()}: video {video_id!r} has {found}; expected the transcript as a str "
                            "(an empty string when there is no speech)")
        return transcript

    def _not_found(self, video_id: str) -> VideoNotFoundError:
        return VideoNotFoundError(f"{self._where()}: no video {video_id!r}")

    def _open_group(self, video_id: str) -> Any:
        import zarr

        try:
            if self.url is None:
                return zarr.open_group(os.path.join(self.path, video_id), mode="r", zarr_format=3)
            return zarr.open_group(self._fsstore(), path=video_id, mode="r", zarr_format=3)
        except (FileNotFoundError, KeyError):
            raise self._not_found(video_id) from None

    def _read_zarr(self, video_id: str, wanted: Sequence[str], limits: Mapping[str, int]) -> VideoRecord:
        """The reference read through zarr-python (``fast=False`` and the fallback)."""
        if self.url is None and not os.path.isfile(os.path.join(self.path, video_id, GROUP_META)):
            raise self._not_found(video_id)
        group = self._open_group(video_id)
        present = set(group.array_keys())
        arrays = {key: _zarr_rows(group[key], limits.get(key)) for key in wanted if key in present}
        attributes = group.attrs.asdict()
        return VideoRecord(video_id, arrays, self._transcript(video_id, attributes), _notes(attributes))


def _zarr_rows(array: Any, limit: int | None) -> np.ndarray:
    return np.asarray(array[...] if limit is None else array[: min(limit, array.shape[0])])




class NpyReader:
    """Read videos from the spec's ``features/`` folder of ``<video_id>.npy`` dicts.

    Files are unpickled with herostore's allow-listed unpickler (no arbitrary code)
    and normalised by ``check_features`` (a leading ``[1, T, D]`` axis is squeezed).
    ``max_rows`` truncates after loading: the format has no partial reads.
    """

    format = "npy"

    def __init__(self, path: str | os.PathLike, *, fast: bool = True):
        self.path = Path(path)
        self.fast = fast  # accepted for symmetry with ZarrReader; npy has one read path
        if not self.path.is_dir():
            raise StoreError(f"{self.path}: not a folder; expected a folder of <video_id>.npy feature files")
        self._ids: list[str] | None = None

    def __repr__(self) -> str:
        return f"NpyReader({str(self.path)!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_ids"] = None
        return state

    def close(self) -> None:
        """Drop the cached id list; the reader stays usable (it holds nothing open)."""
        self._ids = None

    def video_ids(self) -> list[str]:
        """Every ``<video_id>.npy`` in the folder, sorted (one directory listing, cached)."""
        if self._ids is None:
            self._ids = npyfile.list_video_ids(self.path)
        return self._ids

    def __contains__(self, video_id: object) -> bool:
        try:
            video_id = check_video_id(video_id)
        except InvalidVideoIdError:
            return False
        return os.path.isfile(os.path.join(self.path, video_id + npyfile.SUFFIX))

    def __len__(self) -> int:
        return len(self.video_ids())

    def stats(self) -> None:
        return None

    def preset_name(self) -> None:
        return None

    def read(
        self,
        video_id: str,
        modalities: Sequence[str] | None = None,
        max_rows: Mapping[str, int] | None = None,
    ) -> VideoRecord:
        wanted = check_modalities(modalities)
        limits = _check_max_rows(max_rows)
        path = self.path / (check_video_id(video_id) + npyfile.SUFFIX)
        try:
            raw = npyfile.load_dict(path)
        except VideoNotFoundError:
            raise VideoNotFoundError(f"{self.path}: no video {video_id!r} (no {path.name})") from None
        checked = check_features(raw, source=str(path))
        arrays = {}
        for key in wanted:
            if key in checked.arrays:
                array = checked.arrays[key]
                arrays[key] = array[: limits[key]] if key in limits else array
        return VideoRecord(video_id, arrays, checked.transcript, {})


def open_reader(
    feature_root: str | os.PathLike,
    *,
    fast: bool = True,
    zero_copy: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> ZarrReader | NpyReader:
    """The reader for a herostore store (``ZarrReader``) or a folder of spec ``.npy`` files (``NpyReader``)."""
    text = os.fspath(feature_root)
    if _is_url(text):
        return ZarrReader(text, fast=fast, zero_copy=zero_copy, storage_options=storage_options)
    path = Path(text.removeprefix("file://"))
    if is_store(path):
        return ZarrReader(path, fast=fast, zero_copy=zero_copy)
    expected = "expected a herostore store (zarr.json with a 'herostore' attribute) or a folder of <video_id>.npy files"
    if not path.exists():
        raise StoreError(f"{path}: no such file or folder; {expected}")
    if path.is_dir():
        with os.scandir(path) as entries:
            if any(e.name.endswith(npyfile.SUFFIX) and not e.name.startswith(".") for e in entries):
                return NpyReader(path, fast=fast)
        raise StoreError(f"{path}: neither a herostore store nor a folder of .npy files; {expected}")
    raise StoreError(f"{path}: is a file; {expected}")
