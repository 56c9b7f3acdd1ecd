"""``Loader``: batches of a ``HeroDataset`` read by a few threads of the training process into reused buffers.

A ``DataLoader`` with workers builds each batch in a worker, in shared memory the worker has just allocated, and
the training process maps it: every batch costs fresh pages on both sides and a trip between processes. For
herostore's reads that is most of the time: the reads themselves are file reads, memory copies, blosc and crc32c,
which all release the GIL. So the ``Loader`` reads on a small thread pool inside the training process, each
thread building whole batches (``herostore.batching``) into one slot of a ring of buffers that are allocated once
(grown while batches grow, during the first epoch at most) and then reused: no process boundary, no fresh pages
in the steady state. ``pin_memory=True`` pins the ring, so ``device="cuda"`` copies batches asynchronously.

**A batch is valid until the next one is requested**: its tensors are views of a ring slot that is refilled
once the loop asks for the following batch. Keep a tensor longer with ``.clone()``, or pass ``copy=True`` to get
batches the caller owns (fresh memory every batch). Tensors moved to a ``device`` other than the CPU are the
caller's to keep.

Batches equal ``collate([dataset[i] for i in batch_indices])``. Worker-side transforms need the ``DataLoader``
path (``HeroDataset`` + ``collate``), which stays supported.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch
from torch.utils.data import Subset

from .batching import Specs, arena_bytes, build_batch, carve
from .dataset import HeroDataset
from .errors import ArgumentError
from .read.protocol import default_threads

__all__ = ["Loader", "ring_buffer"]

HUGE_PAGE = 2 << 20



class Loader:
    """Iterate over padded batches of ``dataset`` (a ``HeroDataset`` or a ``Subset`` of one).

    - ``batch_size``, ``shuffle``, ``drop_last``, ``sampler`` (e.g. ``DistributedSampler``): as ``DataLoader``'s.
    - ``seed``: shuffling draws ``torch.randperm`` from ``seed + epoch``; default: drawn from torch's global RNG
      at construction (so ``torch.manual_seed`` makes runs repeat). ``set_epoch(e)`` chooses the epoch of the
      next iteration (and calls the sampler's ``set_epoch``); without it each iteration takes the next epoch.
    - ``threads``: reading threads (default: the CPUs this process may use, at most 4); ``prefetch``: batches
      read ahead (default ``threads``). The ring holds ``prefetch + 1`` batches.
    - ``pin_memory``: the ring in page-locked memory (needs CUDA; otherwise a warning and ordinary memory).
    - ``device``: move each batch's tensors there (asynchronously from a pinned ring).
    - ``copy``: hand out copies the caller owns instead of views of the ring (see the module doc).
    """

    def __init__(self, dataset: HeroDataset | Subset, batch_size: int = 1, *, shuffle: bool = False,
                 drop_last: bool = False, sampler: Any = None, seed: int | None = None, threads: int | None = None,
                 prefetch: int | None = None, pin_memory: bool = False, device: str | torch.device | None = None,
                 copy: bool = False):
        self.dataset = dataset
        self._base, self._index = _resolve(dataset)
        self.batch_size = _positive("batch_size", batch_size)
        if sampler is not None and shuffle:
            raise ArgumentError("Loader: sampler and shuffle=True exclude each other (shuffle with the sampler)")
        self.shuffle, self.drop_last, self.sampler = bool(shuffle), bool(drop_last), sampler
        if seed is None:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
        self.seed = int(seed)
        self.threads = _positive("threads", threads if threads is not None else default_threads())
        self.prefetch = _positive("prefetch", prefetch if prefetch is not None else self.threads)
        if pin_memory and not torch.cuda.is_available():
            warnings.warn("Loader: pin_memory=True, but CUDA is not available: the batches stay in ordinary memory",
                          stacklevel=2)
            pin_memory = False
        self.pin_memory = bool(pin_memory)
        self.device = torch.device(device) if device is not None else None
        if self.device is not None and self.device.type == "cpu":
            self.device = None  # the batches are on the CPU already: handed out as views of the ring
        self.copy = bool(copy)
        self.epoch = 0
        self._bound = _Bound(self.batch_size)
        self._slots = [_Slot(self.pin_memory, self._bound) for _ in range(self.prefetch + 1)]
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid: int | None = None
        self._active: _Iteration | None = None

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """The epoch of the next iteration: its shuffle, and the sampler's (``DistributedSampler.set_epoch``)."""
        self.epoch = int(epoch)
        if self.sampler is not None and hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(self.epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._active is not None:
            self._active.close()  # its slots are about to be reused
        self._base.reader  # opened here, before the threads share it  # noqa: B018
        self._active = _Iteration(self, self._batches(self.epoch))
        self.epoch += 1
        return self._active

    def close(self) -> None:
        """Stop reading and release the threads; the ring's memory goes with the loader."""
        if self._active is not None:
            self._active.close()
            self._active = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter shutdown, the pool may be gone already
            self.close()

    def memory_bytes(self) -> int:
        """Bytes held by the ring's buffers."""
        return sum(slot.nbytes() for slot in self._slots)

    def __repr__(self) -> str:
        return (f"Loader({self._base!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, threads={self.threads}, "
                f"prefetch={self.prefetch})")

    # -- inside ------------------------------------------------------------------------------------------------

    def _batches(self, epoch: int) -> list[list[int]]:
        if self.sampler is not None:
            order: Sequence[int] = [int(i) for i in self.sampler]
        elif self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + epoch)
            order = torch.randperm(len(self.dataset), generator=generator).tolist()
        else:
            order = range(len(self.dataset))
        if self._index is not None:
            order = [self._index[i] for i in order]
        size = self.batch_size
        batches = [list(order[i : i + size]) for i in range(0, len(order), size)]
        if self.drop_last and batches and len(batches[-1]) < size:
            batches.pop()
        return batches

    def _submit(self, indices: list[int], slot: _Slot) -> Future:
        if self._pool is None or self._pool_pid != os.getpid():
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="herostore-loader")
            self._pool_pid = os.getpid()
        return self._pool.submit(self._build, indices, slot)

    def _build(self, indices: list[int], slot: _Slot) -> dict[str, Any]:
        slot.wait()
        return build_batch(self._base, indices, slot.allocate, threads=1)  # the loader's threads share the batches

    def _hand_out(self, batch: dict[str, Any], slot: _Slot) -> dict[str, Any]:
        if self.device is not None:
            out = {k: v.to(self.device, non_blocking=self.pin_memory) if isinstance(v, torch.Tensor) else v
                   for k, v in batch.items()}
            if self.pin_memory and self.device.type == "cuda":
                slot.event = torch.cuda.Event()
                slot.event.record()  # the slot is refilled only once these copies are done
            return out
        if self.copy:
            return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        return batch


class _Bound:
    """What any batch can need, from the batches seen so far: each tensor is ``[batch_size, rows, ...]`` with rows
    at most the longest sample's, so once every sample has been seen (one epoch) no batch of any order needs more."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self._largest: dict[str, int] = {}
        self._lock = threading.Lock()

    def see(self, specs: Specs) -> int:
        """Note a batch's tensors; the bytes a buffer needs for any batch of the samples seen so far."""
        with self._lock:
            for key, (shape, dtype) in specs.items():
                full = arena_bytes({key: ((self.batch_size, *shape[1:]), dtype)})
                self._largest[key] = max(self._largest.get(key, 0), full)
            return self.nbytes()

    def nbytes(self) -> int:
        return sum(self._largest.values())


class _Slot:
    """One batch's memory in the ring: one buffer every tensor of the batch is carved from, reused; when a batch
    needs more, it grows to what the largest batch seen so far needs."""

    def __init__(self, pin: bool, bound: _Bound):
        self.pin = pin
        self.bound = bound
        self.buffer: torch.UntypedStorage | None = None
        self.event: Any = None  # a CUDA event: the copies out of this slot

    def allocate(self, specs: Specs) -> dict[str, torch.Tensor]:
        need = max(arena_bytes(specs), self.bound.see(specs))
        if self.nbytes() < arena_bytes(specs):
            self.reserve(need)
        return carve(self.buffer, specs)

    def reserve(self, nbytes: int) -> None:
        if self.nbytes() < nbytes:
            self.buffer = None  # the old buffer goes before the new one comes
            self.buffer = ring_buffer(nbytes, pin=self.pin)

    def wait(self) -> None:
        if self.event is not None:
            self.event.synchronize()
            self.event = None

    def nbytes(self) -> int:
        return 0 if self.buffer is None else self.buffer.nbytes()


class _Iteration:
    """One pass over the batches: ``prefetch`` batches being read while the caller holds one."""

    def __init__(self, loader: Loader, batches: list[list[int]]):
        self.loader = loader
        self.batches = iter(batches)
        self.free: deque[_Slot] = deque(loader._slots)
        self.pending: deque[tuple[Future, _Slot]] = deque()
        self.held: _Slot | None = None
        self._fill()

    def __iter__(self) -> _Iteration:
        return self

    def __next__(self) -> dict[str, Any]:
        if self.held is not None:  # the batch handed out last is given up: its slot is read into again
            self.free.append(self.held)
            self.held = None
        self._fill()
        if not self.pending:
            for slot in self.loader._slots:  # a whole epoch seen: no later batch will need more than this
                slot.reserve(self.loader._bound.nbytes())
            raise StopIteration
        future, slot = self.pending.popleft()
        try:
            batch = future.result()
        except BaseException:
            self.close()
            raise
        self.held = slot
        return self.loader._hand_out(batch, slot)

    def _fill(self) -> None:
        while self.free:
            indices = next(self.batches, None)
            if indices is None:
                return
            slot = self.free.popleft()
            self.pending.append((self.loader._submit(indices, slot), slot))

    def close(self) -> None:
        """Cancel what has not started and wait for what has (it writes into the ring)."""
        self.batches = iter(())
        while self.pending:
            future, slot = self.pending.popleft()
            if not future.cancel():
                with contextlib.suppress(BaseException):  # an abandoned batch's error is nobody's
                    future.result()
            self.free.append(slot)


def ring_buffer(nbytes: int, *, pin: bool = False) -> torch.UntypedStorage:
    """Memory to be written again and again: page-locked when ``pin`` (torch's pinned allocator), else anonymous
    memory on 2 MiB pages where the kernel grants them (``MADV_HUGEPAGE``): a batch of tens of MB then takes a few
    TLB entries instead of thousands, which on a virtual machine makes copying into it markedly faster."""
    if pin:
        return torch.empty(nbytes, dtype=torch.uint8, pin_memory=True).untyped_storage()
    size = max(HUGE_PAGE, -(-nbytes // HUGE_PAGE) * HUGE_PAGE)
    region = mmap.mmap(-1, size + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # +: to start on 2 MiB
    if hasattr(mmap, "MADV_HUGEPAGE"):
        region.madvise(mmap.MADV_HUGEPAGE)
    start = (-torch.frombuffer(region, dtype=torch.uint8, count=1).data_ptr()) % HUGE_PAGE
    return torch.frombuffer(region, dtype=torch.uint8, offset=start, count=size).untyped_storage()  # keeps region


def _resolve(dataset: Any) -> tuple[HeroDataset, list[int] | None]:
    """The ``HeroDataset`` under ``dataset`` and the map from ``dataset``'s indices to its own (None: identity)."""
    index: list[int] | None = None
    while isinstance(dataset, Subset):
        inner = [int(i) for i in dataset.indices]
        index = inner if index is None else [inner[i] for i in index]
        dataset = dataset.dataset
    if not isinstance(dataset, HeroDataset):
        raise ArgumentError(f"Loader: dataset is a {type(dataset).__name__}, expected a HeroDataset or a Subset of "
                            "one (use torch's DataLoader with herostore.collate for anything else)")
    return dataset, index


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(f"Loader: {name}={value!r}, expected an int >= 1")
    return value
