"""``HeroDataset``: a lazy PyTorch dataset over a spec ``features/`` folder or a herostore store.

Construction reads only the labels (and classes) and the reader's list of video ids, and, with
``normalize=True``, the store's statistics. A sample reads only the modalities asked for: a job that needs
``hubert`` and ``bert`` never touches ``video_mae`` or ``clip``. The reader is opened lazily in the process that
reads (each DataLoader worker opens its own; a reader opened before a fork is never used after it), and the
dataset pickles without it, so fork, spawn, forkserver, ``persistent_workers`` and ``DistributedSampler`` work.

A sample is a dict::

    {<modality>: Tensor [T, D] (native shape), "transcript": str, "text": str, "label": int,
     "emotion": str, "sentiment": str | float | None, "video_id": str, "present": {modality: bool}}

``text`` is the label's ``text`` if given, else the transcript (spec section 3). A video without ``au`` (the one
substitution the spec allows) gets ``au = zeros([1, 1024])`` and ``present["au"] = False``; this is marked per
sample, not counted up front, because counting would mean reading every video. ``collate`` gives such a
modality length 0 and an all-False mask: the fill row is never counted as data. No other substitution is made:
unknown labels, duplicate ids and ids without features are errors at construction (``skip_missing=True`` turns
ids without features into a warning and drops them).

``collate`` pads every modality to the longest sequence of the batch (see its docstring). A DataLoader asks for
whole batches (``__getitems__``), and ``collate`` then builds each batch once, reading the samples' rows straight
into it (``herostore.batching``); ``herostore.Loader`` builds them into reused buffers in the training process.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from . import urls
from .batching import (
    AU_FILL_SHAPE,
    PendingBatch,
    build_batch,
    new_tensors,
    shared_tensors,
    subsample_index,
    torch_dtype,
)
from .errors import ArgumentError, LabelError, SpecError, StoreError
from .fsutil import short_list
from .labels import Label, check_labels_against_classes, load_label_set, read_labels
from .schema import check_modalities

__all__ = ["AU_FILL_SHAPE", "HeroDataset", "collate", "collate_samples", "subsample_index"]

TRUNCATE_MODES = ("subsample", "head")


class HeroDataset(Dataset):
    """Labelled HERO features from a spec ``features/`` folder of ``.npy`` dicts or a herostore store.

    - ``feature_root``: the ``features/`` folder or the store root; the format is detected (``open_reader``).
    - ``ann_path``: the spec ``labels.json``.
    - ``modalities``: which arrays a sample holds, in this order (default: all five of the spec).
    - ``classes``: a ``classes.json`` path or a list of class names; default ``classes.json`` beside
      ``ann_path``, else the sorted emotions found. ``label`` is the index into ``classes``.
    - ``dtype``: tensor dtype of the arrays; ``None`` keeps the stored precision (float16 for the float16 preset).
    - ``max_len``: an int for every modality or a ``{modality: int}`` dict; longer sequences are cut to that many
      rows along the first axis, by ``truncate="subsample"`` (rows ``torch.linspace(0, T-1, max_len).long()``, the
      reference loader's rule) or ``"head"`` (the first rows; only the chunks holding them are read).
    - ``normalize``: ``(x - mean) / std`` per feature with the store's statistics (``herostore stats``), computed
      in float32 and returned in ``dtype`` (or the stored dtype); a zero std counts as 1. The zero-filled ``au``
      stays zero. Raises ``StoreError`` if the store has no statistics for a requested modality.
    - ``skip_missing``: drop labelled ids without features with a warning instead of raising ``LabelError``.
    - ``fast``: passed to ``open_reader`` (the direct chunk reader rather than zarr-python).
    - ``storage_options``: fsspec options when ``feature_root`` / ``ann_path`` / ``classes`` are URLs
      (``s3://bucket/root/features``); credentials otherwise come from the usual environment. They travel to
      DataLoader workers inside the pickled dataset, never into a message.
    """

    def __init__(
        self,
        feature_root: str | os.PathLike,
        ann_path: str | os.PathLike,
        *,
        modalities: Sequence[str] | str | None = None,
        classes: str | os.PathLike | Sequence[str] | None = None,
        dtype: torch.dtype | np.dtype | str | None = None,
        max_len: int | Mapping[str, int] | None = None,
        truncate: str = "subsample",
        normalize: bool = False,
        skip_missing: bool = False,
        fast: bool = True,
        storage_options: Mapping[str, Any] | None = None,
    ):
        self.feature_root: Any = _path(feature_root)
        self.ann_path: Any = _path(ann_path)
        self.storage_options = dict(storage_options or {})
        self.modalities: tuple[str, ...] = check_modalities(modalities)
        if len(set(self.modalities)) != len(self.modalities):
            raise ArgumentError(f"modalities {list(self.modalities)}: each modality may be asked for once")
        if truncate not in TRUNCATE_MODES:
            raise ArgumentError(f"truncate={truncate!r}: expected one of {', '.join(map(repr, TRUNCATE_MODES))}")
        self.truncate = truncate
        self.max_len: dict[str, int] = _check_max_len(max_len, self.modalities)
        self.dtype: torch.dtype | None = _check_dtype(dtype)
        self.fast = fast

        labels, self.classes = _load_labels(self.ann_path, classes, self.storage_options)
        if not labels:
            raise LabelError(f"{urls.display(self.ann_path)}: no labelled videos (an empty list); a dataset needs at "
                             'least one {"video_id": ..., "emotion": ...} entry')
        reader = _open(self.feature_root, fast, storage_options=self.storage_options)
        try:
            known = set(reader.video_ids())
            self.format: str = reader.format
            self.stats = _load_stats(reader, self.feature_root, self.modalities) if normalize else None
        finally:
            _close(reader)  # never carried into a forked worker
        self.normalize = normalize

        missing = [label.video_id for label in labels if label.video_id not in known]
        if missing:
            where = f"{self.ann_path}: {len(missing)} labelled video id(s) have no features in {self.feature_root}"
            if not skip_missing:
                raise LabelError(f"{where}: {short_list(missing)}; add their features, remove them from the "
                                 f"labels, or pass skip_missing=True to drop them")
            warnings.warn(f"{where}; skipping them: {short_list(missing)}", stacklevel=2)
            dropped = set(missing)
            labels = [label for label in labels if label.video_id not in dropped]
        self.skipped: list[str] = missing if skip_missing else []
        self.labels: list[Label] = labels
        self.class_to_index: dict[str, int] = {c: i for i, c in enumerate(self.classes)}
        self._reader: Any = None
        self._reader_pid: int | None = None

    # -- the reader, opened lazily per process ---------------------------------------

    @property
    def reader(self):
        """This process's reader, opened on first use (and again after a fork)."""
        if self._reader is None or self._reader_pid != os.getpid():
            # subsampling keeps a few rows of long arrays: map uncompressed chunks instead of reading them whole
            zero_copy = bool(self.max_len) and self.truncate == "subsample"
            self._reader = _open(self.feature_root, self.fast, zero_copy=zero_copy,
                                 storage_options=self.storage_options)
            self._reader_pid = os.getpid()
        return self._reader

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_reader"] = None
        state["_reader_pid"] = None
        return state

    # -- Dataset -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, indices: Sequence[int]) -> PendingBatch:
        """A whole batch of indices, as the DataLoader asks for it: ``collate`` then builds the padded batch once,
        reading every sample's rows straight into it (in a worker, into shared memory). Any other collate function
        gets the samples one by one, as from ``__getitem__``."""
        return PendingBatch(self, indices)

    def batch(self, indices: Sequence[int], allocate=new_tensors) -> dict[str, Any]:
        """``collate([self[i] for i in indices])`` built in one go; ``allocate({key: (shape, dtype)})`` gives the
        tensors (see ``herostore.batching``)."""
        return build_batch(self, indices, allocate)

    def __getitem__(self, index: int) -> dict[str, Any]:
        label = self.labels[index]
        max_rows = {m: n for m, n in self.max_len.items() if m in self.modalities} if self.truncate == "head" else None
        record = self.reader.read(label.video_id, self.modalities, max_rows=max_rows or None)
        sample: dict[str, Any] = {}
        present: dict[str, bool] = {}
        fill_dtype = self.dtype or _first_dtype(record.arrays.values())
        for m in self.modalities:
            array = record.arrays.get(m)
            if array is None:
                if m != "au":
                    raise SpecError(f"{self.feature_root}: video {label.video_id!r} has no {m!r} array "
                                    f"(required by the spec; only 'au' may be missing)")
                sample[m] = torch.zeros(AU_FILL_SHAPE, dtype=fill_dtype)
                present[m] = False
                continue
            sample[m] = self._tensor(m, array)
            present[m] = True
        transcript = record.transcript
        sample.update(
            transcript=transcript,
            text=label.text if label.text is not None else transcript,
            label=self.class_to_index[label.emotion],
            emotion=label.emotion,
            sentiment=label.sentiment,
            video_id=label.video_id,
            present=present,
        )
        return sample

    def _tensor(self, modality: str, array: np.ndarray) -> torch.Tensor:
        n = self.max_len.get(modality)
        if n is not None and array.shape[0] > n:
            if self.truncate == "head":
                array = array[:n]  # the reader already stopped at n rows; this only guards
            else:
                array = array[subsample_index(array.shape[0], n).numpy()]
        stored = torch_dtype(array.dtype)
        if self.stats is not None:
            mean, std = self.stats[modality]
            if array.shape[-1] != mean.shape[0]:
                raise SpecError(f"{self.feature_root}: {modality!r} has last dim {array.shape[-1]}, "
                                f"its statistics have {mean.shape[0]}")
            array = (np.asarray(array, dtype=np.float32) - mean) / std
        if not array.flags.writeable or not array.flags.c_contiguous:
            array = np.array(array, order="C")  # torch refuses read-only (memory-mapped) buffers
        return torch.from_numpy(array).to(self.dtype or stored)

    def __repr__(self) -> str:
        return (f"HeroDataset({urls.display(self.feature_root)!r}, {len(self)} samples, format={self.format!r}, "
                f"modalities={list(self.modalities)}, classes={self.classes})")


def collate(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Pad each modality of a batch of ``HeroDataset`` samples to the batch's longest sequence, with zeros.

    Given what ``HeroDataset.__getitems__`` returns (the DataLoader's path), the batch is built once, each sample's
    rows read straight into it; inside a DataLoader worker it is built in shared memory, so handing it to the
    training process copies nothing. Given a list of samples, they are padded and copied (``collate_samples``).
    Both give the same batch:

    Returns ``{modality: [B, Tmax, D], f"{modality}_lengths": LongTensor [B], f"{modality}_mask": BoolTensor
    [B, Tmax] (True = a real row), "present": BoolTensor [B, n_modalities] (modalities in the requested order),
    "label": LongTensor [B]}`` plus the lists ``transcript``, ``text``, ``emotion``, ``sentiment``, ``video_id``.
    A 3-D array (wild data such as a clip of ``[frames, patches, D]``) is flattened over its first two axes,
    so its length counts frames x patches.

    A modality a sample does not have (``present`` False: the zero-filled ``au``) has length 0 and an all-False
    mask, so its fill row is never taken for data; its padded rows are zeros. ``Tmax`` is at least 1, so the
    tensor shapes stay valid when no sample of the batch has the modality.
    """
    if isinstance(batch, PendingBatch):
        in_worker = torch.utils.data.get_worker_info() is not None
        return batch.build(shared_tensors if in_worker else new_tensors)
    return collate_samples(batch)


def collate_samples(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``collate`` of a list of samples: each modality zero-padded to the longest (the reference ``collate``)."""
    if not batch:
        raise ArgumentError("collate: empty batch (expected at least one sample)")
    modalities = list(batch[0]["present"])
    out: dict[str, Any] = {}
    for m in modalities:
        tensors = [_as_2d(s[m], m, s["video_id"]) for s in batch]
        dims = {t.shape[1] for t in tensors}
        if len(dims) > 1:
            found = ", ".join(f"{s['video_id']!r}: {t.shape[1]}" for s, t in zip(batch, tensors))
            raise SpecError(f"collate: {m!r} has different last dims in one batch ({found})")
        lengths = torch.tensor([t.shape[0] if s["present"][m] else 0 for s, t in zip(batch, tensors)],
                               dtype=torch.long)
        t_max = max(1, int(lengths.max()))
        padded = tensors[0].new_zeros((len(batch), t_max, tensors[0].shape[1]))
        for i, (t, n) in enumerate(zip(tensors, lengths.tolist())):
            padded[i, :n] = t[:n]
        out[m] = padded
        out[f"{m}_lengths"] = lengths
        out[f"{m}_mask"] = torch.arange(t_max)[None, :] < lengths[:, None]
    out["present"] = torch.tensor([[bool(s["present"][m]) for m in modalities] for s in batch], dtype=torch.bool)
    out["present"] = out["present"].reshape(len(batch), len(modalities))
    out["label"] = torch.tensor([int(s["label"]) for s in batch], dtype=torch.long)
    for key in ("transcript", "text", "emotion", "sentiment", "video_id"):
        out[key] = [s[key] for s in batch]
    return out


HeroDataset.collate = staticmethod(collate)  # type: ignore[attr-defined]  # ds.collate pickles by name


# -- helpers ------------------------------------------------------------------------------


def _path(path: str | os.PathLike) -> Any:
    """A local ``Path``, or a URL kept as a string."""
    return os.fspath(path) if urls.is_url(path) else urls.local(path)


def _open(feature_root: Any, fast: bool, zero_copy: bool = False,
          storage_options: Mapping[str, Any] | None = None):
    from .read import open_reader  # imported here so that importing the dataset stays cheap

    return open_reader(feature_root, fast=fast, zero_copy=zero_copy, storage_options=storage_options)


def _close(reader: Any) -> None:
    close = getattr(reader, "close", None)
    if callable(close):
        close()


def _load_labels(ann_path: Any, classes: Any,
                 storage_options: Mapping[str, Any] | None = None) -> tuple[list[Label], list[str]]:
    if classes is None or isinstance(classes, (str, os.PathLike)):
        return load_label_set(ann_path, classes, storage_options)
    classes = list(classes)
    if not classes or not all(isinstance(c, str) and c for c in classes) or len(set(classes)) != len(classes):
        raise LabelError(f"classes {classes!r}: expected a non-empty list of unique non-empty strings")
    labels = read_labels(ann_path, storage_options)
    check_labels_against_classes(labels, classes, f"{urls.display(ann_path)} (classes given as a list)")
    return labels, classes


def _load_stats(reader: Any, root: Any, modalities: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    stats = reader.stats()
    hint = f"compute them with `herostore stats {urls.display(root)}` or pass normalize=False"
    if not stats:
        raise StoreError(f"{root}: normalize=True, but this {reader.format} feature source has no statistics; {hint}")
    absent = [m for m in modalities if m not in stats]
    if absent:
        raise StoreError(f"{root}: normalize=True, but the stored statistics have no "
                         f"{', '.join(map(repr, absent))} (they cover {', '.join(map(repr, stats))}); {hint}")
    out = {}
    for m in modalities:
        mean = np.asarray(stats[m]["mean"], dtype=np.float32).reshape(-1)
        std = np.asarray(stats[m]["std"], dtype=np.float32).reshape(-1)
        if mean.shape != std.shape:
            raise StoreError(f"{root}: statistics of {m!r} have mean {list(mean.shape)} and std {list(std.shape)}")
        out[m] = (mean, np.where(std > 0, std, np.float32(1)))
    return out


def _check_max_len(max_len: Any, modalities: Sequence[str]) -> dict[str, int]:
    if max_len is None:
        return {}
    if isinstance(max_len, Mapping):
        check_modalities(list(max_len))  # names must be modalities; ones not requested are ignored
        items = dict(max_len)
    else:
        items = {m: max_len for m in modalities}
    for m, n in items.items():
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ArgumentError(f"max_len for {m!r} is {n!r}: expected a positive int")
    return {m: int(n) for m, n in items.items()}


_FLOAT_DTYPES = {str(d).removeprefix("torch."): d for d in (torch.float16, torch.bfloat16, torch.float32, torch.float64)}


def _check_dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        name = str(dtype).removeprefix("torch.")
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:  # "bfloat16" is not a numpy dtype
            name = str(dtype).removeprefix("torch.")
    if name not in _FLOAT_DTYPES:
        raise ArgumentError(f"dtype {dtype!r}: expected a floating-point dtype, one of {', '.join(_FLOAT_DTYPES)}")
    return _FLOAT_DTYPES[name]


def _first_dtype(arrays: Any) -> torch.dtype:
    for array in arrays:
        return torch_dtype(array.dtype)
    return torch.float32


def _as_2d(t: torch.Tensor, modality: str, video_id: str) -> torch.Tensor:
    if t.ndim == 2:
        return t
    if t.ndim == 3:
        return t.reshape(t.shape[0] * t.shape[1], t.shape[2])
    raise SpecError(f"collate: video {video_id!r} key {modality!r} has shape {list(t.shape)}, expected [T, D]")
