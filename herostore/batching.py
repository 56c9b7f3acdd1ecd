"""A padded batch of ``HeroDataset`` samples, built once, straight into memory the caller chooses.

``build_batch(dataset, indices, allocate)`` gives exactly what ``collate_samples([dataset[i] for i in indices])``
gives, without making a single sample: it reads each video's metadata (for the ``.npy`` folder, which has no
partial reads, the whole file), works out the batch's shapes, asks ``allocate`` for every tensor of the batch,
zeroes only the padding and has the reader put each sample's rows in place (``read_into``). Only a cast that
``read_into`` cannot do (to bfloat16) or ``normalize`` goes through a per-thread scratch buffer.

``allocate(specs)`` gives every tensor of the batch at once (``specs``: ``{key: (shape, dtype)}``) and so decides
where the batch lives: fresh memory (``new_tensors``), shared memory inside a DataLoader worker
(``shared_tensors``: one segment per batch, so the batch crosses to the training process without a copy and with one
file descriptor), or the reused ring of ``herostore.Loader`` (``carve`` over a buffer it keeps).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .errors import ArgumentError, SpecError
from .read.rows import Rows, scratch
from .schema import MODALITY_BY_NAME

if TYPE_CHECKING:
    from .dataset import HeroDataset
    from .labels import Label

__all__ = [
    "AU_FILL_SHAPE",
    "Allocate",
    "PendingBatch",
    "Specs",
    "arena_bytes",
    "build_batch",
    "carve",
    "new_tensors",
    "shared_tensors",
    "subsample_index",
]

AU_FILL_SHAPE = (1, MODALITY_BY_NAME["au"].dim)
TEXT_KEYS = ("transcript", "text", "emotion", "sentiment", "video_id")
ALIGN = 64  # bytes: every tensor carved from one buffer starts on a cache line

Specs = dict[str, tuple[tuple[int, ...], torch.dtype]]
Allocate = Callable[[Specs], dict[str, torch.Tensor]]


def new_tensors(specs: Specs) -> dict[str, torch.Tensor]:
    """Each tensor in ordinary (fresh) memory."""
    return {key: torch.empty(shape, dtype=dtype) for key, (shape, dtype) in specs.items()}


def shared_tensors(specs: Specs) -> dict[str, torch.Tensor]:
    """Every tensor in one shared-memory segment, as ``default_collate`` makes a batch in a worker: sending the batch
    to another process copies nothing and passes one file descriptor (the storage is pickled once)."""
    return carve(torch.UntypedStorage._new_shared(arena_bytes(specs)), specs)


def arena_bytes(specs: Specs) -> int:
    """Bytes of one buffer holding every tensor of ``specs``, each aligned (at least 1)."""
    return max(1, sum(_aligned(_nbytes(shape, dtype)) for shape, dtype in specs.values()))


def carve(storage: torch.UntypedStorage, specs: Specs) -> dict[str, torch.Tensor]:
    """Contiguous tensors of ``specs`` laid out one after the other in ``storage`` (``arena_bytes`` long at least)."""
    out, offset = {}, 0
    for key, (shape, dtype) in specs.items():
        out[key] = torch.empty(0, dtype=dtype).set_(storage, offset // dtype.itemsize, shape)
        offset += _aligned(_nbytes(shape, dtype))
    return out


def _nbytes(shape: tuple[int, ...], dtype: torch.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def subsample_index(length: int, n: int) -> torch.Tensor:
    """The reference loader's rows for cutting ``length`` rows to ``n``: ``torch.linspace(0, length-1, n).long()``."""
    return torch.linspace(0, length - 1, n).long()


def torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


@dataclass
class _Sample:
    """One sample of a batch before its rows are read: what it has and which rows it keeps."""

    label: Label
    transcript: str
    shapes: dict[str, tuple[int, ...]]  # the stored shape of each requested modality the video has
    dtypes: dict[str, np.dtype]  # their stored dtypes, in the requested order
    rows: dict[str, Rows]  # the rows to read of each
    lengths: dict[str, int]  # rows in the batch (a 3-D array's first two axes flattened); 0 when absent
    source: dict[str, Any]  # what read_into needs besides (plans, or the loaded record)


def _describe(ds: HeroDataset, reader: Any, index: int) -> _Sample:
    label = ds.labels[index]
    video_id = label.video_id
    head = ds.max_len if ds.truncate == "head" else {}
    if hasattr(reader, "video_meta"):  # a store: the video's metadata is enough to plan
        meta = reader.video_meta(video_id)
        plans = {m: reader.plan(meta, m) for m in ds.modalities if m in meta.arrays}
        shapes = {m: p.shape for m, p in plans.items()}
        dtypes = {m: p.encoding.native for m, p in plans.items()}
        transcript, source = meta.transcript, {"plans": plans}
    else:  # a format without partial reads: load the file
        limits = {m: n for m, n in head.items() if m in ds.modalities}
        record = reader.read(video_id, ds.modalities, max_rows=limits or None)
        shapes = {m: a.shape for m, a in record.arrays.items()}
        dtypes = {m: a.dtype for m, a in record.arrays.items()}
        transcript, source = record.transcript, {"record": record}
    rows: dict[str, Rows] = {}
    lengths: dict[str, int] = {}
    for m in ds.modalities:
        shape = shapes.get(m)
        if shape is None:
            if m != "au":
                raise SpecError(f"{ds.feature_root}: video {video_id!r} has no {m!r} array "
                                f"(required by the spec; only 'au' may be missing)")
            lengths[m] = 0
            continue
        kept, rows[m] = shape[0], None
        n = ds.max_len.get(m)
        if n is not None and shape[0] > n:
            kept, rows[m] = n, n if ds.truncate == "head" else subsample_index(shape[0], n).numpy()
        lengths[m] = kept * math.prod(shape[1:-1])
        if ds.stats is not None and shape[-1] != ds.stats[m][0].shape[0]:
            raise SpecError(f"{ds.feature_root}: {m!r} has last dim {shape[-1]}, its statistics have "
                            f"{ds.stats[m][0].shape[0]}")
    return _Sample(label, transcript, shapes, dtypes, rows, lengths, source)


def build_batch(ds: HeroDataset, indices: Sequence[int], allocate: Allocate = new_tensors, *,
                threads: int | None = None) -> dict[str, Any]:
    """The batch ``collate_samples([ds[i] for i in indices])`` would give, its tensors from ``allocate``.

    ``threads``: threads a store's reader may use per sample (default: the reader's).
    """
    if not len(indices):
        raise ArgumentError("collate: empty batch (expected at least one sample)")
    reader = ds.reader
    if hasattr(reader, "prefetch"):
        reader.prefetch([ds.labels[int(i)].video_id for i in indices])
    samples = [_describe(ds, reader, int(i)) for i in indices]
    size, modalities = len(samples), ds.modalities
    first = samples[0]
    fill_dtype = ds.dtype or (torch_dtype(next(iter(first.dtypes.values()))) if first.dtypes else torch.float32)
    specs: Specs = {}
    lengths: dict[str, list[int]] = {}
    for m in modalities:
        dims = [s.shapes[m][-1] if m in s.shapes else AU_FILL_SHAPE[1] for s in samples]
        if len(set(dims)) > 1:
            found = ", ".join(f"{s.label.video_id!r}: {d}" for s, d in zip(samples, dims))
            raise SpecError(f"collate: {m!r} has different last dims in one batch ({found})")
        lengths[m] = [s.lengths[m] for s in samples]
        t_max = max(1, *lengths[m])
        specs[m] = ((size, t_max, dims[0]), ds.dtype or (torch_dtype(first.dtypes[m]) if m in first.dtypes
                                                          else fill_dtype))
        specs[f"{m}_lengths"] = ((size,), torch.long)
        specs[f"{m}_mask"] = ((size, t_max), torch.bool)
    specs["present"] = ((size, len(modalities)), torch.bool)
    specs["label"] = ((size,), torch.long)
    out: dict[str, Any] = allocate(specs)
    for m in modalities:
        out[f"{m}_lengths"].numpy()[:] = lengths[m]
        t_max = specs[m][0][1]
        np.less(np.arange(t_max)[None, :], np.asarray(lengths[m])[:, None], out=out[f"{m}_mask"].numpy())
    arrays = [_rows_of(out[m]) for m in modalities]  # numpy views: slicing them costs far less than torch's
    for i, s in enumerate(samples):
        _fill_sample(ds, reader, s, [a[i] for a in arrays], threads)
    out["present"].numpy()[:] = [[m in s.shapes for m in modalities] for s in samples]
    out["label"].numpy()[:] = [ds.class_to_index[s.label.emotion] for s in samples]
    for key in TEXT_KEYS:
        out[key] = [_text(s, key) for s in samples]
    return out


def _fill_sample(ds: HeroDataset, reader: Any, s: _Sample, blocks: list[Any], threads: int | None) -> None:
    """Read one sample's rows into its ``[t_max, D]`` block of each modality's batch tensor; zero the rest."""
    dests: dict[str, np.ndarray] = {}
    finish: list[Callable[[], None]] = []
    for m, block in zip(ds.modalities, blocks):
        n = s.lengths[m]
        if n < block.shape[0]:
            block[n:] = 0  # the buffer may be reused: padding is written, not assumed
        if not n:
            continue
        target = block[:n]
        if ds.stats is not None:
            mean, std = ds.stats[m]
            is_f32 = isinstance(target, np.ndarray) and target.dtype == np.float32
            values = target if is_f32 else scratch(f"batch:{m}", np.float32, tuple(target.shape))
            dests[m] = values
            finish.append(lambda v=values, t=target, mean=mean, std=std: _normalize_into(v, mean, std, t))
        elif isinstance(target, torch.Tensor):  # bfloat16, which numpy lacks: read as stored, then torch casts
            stored = scratch(f"batch:{m}", s.dtypes[m], tuple(target.shape))
            dests[m] = stored
            finish.append(lambda v=stored, t=target: t.copy_(torch.from_numpy(v)))
        else:
            dests[m] = target
    if dests:
        keywords = {"threads": threads} if "plans" in s.source else {}
        reader.read_into(s.label.video_id, dests, rows={m: s.rows[m] for m in dests}, **s.source, **keywords)
    for step in finish:
        step()


def _rows_of(tensor: torch.Tensor) -> Any:
    """The batch tensor as numpy, or the tensor itself for a dtype numpy lacks (bfloat16)."""
    return tensor if tensor.dtype == torch.bfloat16 else tensor.numpy()


def _normalize_into(values: np.ndarray, mean: np.ndarray, std: np.ndarray, target: Any) -> None:
    """``(x - mean) / std`` in float32, as ``HeroDataset.__getitem__`` computes it, then cast into ``target``
    (by torch, as ``__getitem__`` casts)."""
    np.subtract(values, mean, out=values)
    np.divide(values, std, out=values)
    if values is not target:
        t = target if isinstance(target, torch.Tensor) else torch.from_numpy(target)
        t.copy_(torch.from_numpy(values))


def _text(s: _Sample, key: str) -> Any:
    label = s.label
    if key == "transcript":
        return s.transcript
    if key == "text":
        return label.text if label.text is not None else s.transcript
    return getattr(label, key)


class PendingBatch(Sequence):
    """What ``HeroDataset.__getitems__`` returns: a batch's indices, for ``collate`` to build in one go.

    Any other collate function sees a sequence of ordinary samples (read on first access, one by one).
    """

    def __init__(self, dataset: HeroDataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = list(indices)
        self._samples: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: Any) -> Any:
        if self._samples is None:
            self._samples = [self.dataset[j] for j in self.indices]
        return self._samples[i]

    def build(self, allocate: Allocate = new_tensors) -> dict[str, Any]:
        return build_batch(self.dataset, self.indices, allocate)
