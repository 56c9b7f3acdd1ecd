"""Batches built once (``__getitems__`` + ``collate``, ``herostore.Loader``) equal today's ``collate`` of samples;
``read_into``; the Loader's order, ring and errors."""

from __future__ import annotations

import json
import multiprocessing
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_features
from test_dataset import _write_stats, store_from_npy
from torch.utils.data import DataLoader, DistributedSampler, Subset

from herostore import Loader, npyfile
from herostore.dataset import HeroDataset, collate, collate_samples
from herostore.errors import ArgumentError, ChecksumError, CorruptStoreError
from herostore.presets import PRESETS, get_preset
from herostore.read import NpyReader, ZarrReader

EMOTIONS = ["neutral", "happy", "sad"]
# (video_mae, clip, hubert, bert) rows; video 0's video_mae is long enough to be memory-mapped when subsampled
LENGTHS = [(200, 5, 40, 7), (3, 2, 9, 11), (20, 5, 1, 4), (6, 3, 12, 2), (1, 1, 2, 1)]
ROWS7 = replace(get_preset("lossless"), name="lossless-rows7", chunk_rows=7)  # many chunks, a padded compressed tail
SOURCES = ["npy", *PRESETS, ROWS7.name]
OPTIONS = [
    {},
    {"dtype": "float32"},
    {"dtype": "bfloat16"},
    {"dtype": "float16"},
    {"dtype": torch.float64},
    {"max_len": 8},
    {"max_len": 8, "truncate": "head"},
    {"max_len": {"video_mae": 150, "clip": 2}, "dtype": "bfloat16"},
    {"modalities": ["au", "bert"]},
    {"modalities": ["au"], "max_len": 2},
    {"normalize": True},
    {"normalize": True, "dtype": "float16"},
    {"normalize": True, "dtype": "bfloat16", "max_len": 5},
    {"normalize": True, "dtype": "float32", "max_len": 3, "truncate": "head"},
]
BATCHES = [[0, 1, 2, 3, 4], [3], [1, 3], [4, 2, 0]]


def write_wild(root: Path) -> Path:
    """A spec folder with what the wild holds: a 3-D clip, float64 arrays, videos without au, odd lengths."""
    (root / "features").mkdir(parents=True)
    labels = []
    for i, lengths in enumerate(LENGTHS):
        features = make_features(i, lengths=lengths, au=i in (1, 2, 4))
        if i == 2:
            features["clip"] = np.random.default_rng(i).standard_normal((3, 4, 1408)).astype(np.float32)
        if i == 1:
            features["hubert"] = features["hubert"].astype(np.float64) * 3
        npyfile.save_features(root / "features" / f"v{i}.npy", features)
        entry = {"video_id": f"v{i}", "emotion": EMOTIONS[i % 3]}
        if i == 3:
            entry.update(text="the label's own text", sentiment=0.5)
        labels.append(entry)
    (root / "labels.json").write_text(json.dumps(labels))
    (root / "classes.json").write_text(json.dumps(EMOTIONS))
    return root / "labels.json"


@pytest.fixture(scope="module")
def wild(tmp_path_factory) -> tuple[dict[str, Path], Path]:
    """The wild folder and a store of it in every preset (with statistics for ``normalize``)."""
    root = tmp_path_factory.mktemp("wild")
    ann = write_wild(root)
    rng = np.random.default_rng(1)
    stats = {m: {"mean": rng.standard_normal(d).tolist(), "std": (rng.uniform(0, 2, d) ** 3).tolist(), "count": 9}
             for m, d in (("video_mae", 1024), ("clip", 1408), ("hubert", 1024), ("bert", 768), ("au", 1024))}
    stats["hubert"]["std"][0] = 0.0
    roots = {"npy": root / "features"}
    for name in SOURCES[1:]:
        roots[name] = store_from_npy(root, ROWS7 if name == ROWS7.name else name, name=name)
        _write_stats(roots[name], stats)
    return roots, ann


def assert_same_batch(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key, value in a.items():
        if isinstance(value, torch.Tensor):
            other = b[key]
            assert (value.dtype, value.shape) == (other.dtype, other.shape), key
            assert value.is_contiguous() and torch.equal(value, other), key
        else:
            assert value == b[key], key


def reference(ds: HeroDataset, indices) -> dict:
    return collate_samples([ds[i] for i in indices])


# ------------------------------------------------------------------------------------------ one batch, built once


def _options_id(options: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in options.items()) or "default"


# a .npy folder has no statistics, so normalize is left out for it (it raises, tested in test_dataset)
@pytest.mark.parametrize("source, options", [
    pytest.param(source, options, id=f"{_options_id(options)}-{source}")
    for options in OPTIONS for source in SOURCES if not (source == "npy" and options.get("normalize"))])
def test_batch_built_once_equals_collate_of_samples(wild, source, options):
    roots, ann = wild
    ds = HeroDataset(roots[source], ann, **options)
    for indices in BATCHES:
        pending = ds.__getitems__(indices)
        assert len(pending) == len(indices)
        assert_same_batch(collate(pending), reference(ds, indices))


def test_subsampling_maps_the_long_array_instead_of_reading_it(wild, monkeypatch):
    roots, ann = wild
    ds = HeroDataset(roots["float16"], ann, modalities=["video_mae"], max_len=8)
    mapped = []
    location = type(ds.reader.location)
    original = location.map_chunk
    monkeypatch.setattr(location, "map_chunk", lambda self, *a, **k: mapped.append(a[1].key) or original(self, *a, **k))
    want = reference(ds, [0, 1])
    mapped.clear()
    assert_same_batch(collate(ds.__getitems__([0, 1])), want)
    assert mapped == ["video_mae/c/0/0"]  # only v0's 200 rows are large enough to map


def test_other_collate_functions_get_samples(wild):
    roots, ann = wild
    ds = HeroDataset(roots["float16"], ann, modalities=["bert"])
    pending = ds.__getitems__([1, 3])
    assert [s["video_id"] for s in pending] == ["v1", "v3"]
    assert torch.equal(pending[1]["bert"], ds[3]["bert"])


def test_batch_with_an_allocator(wild):
    roots, ann = wild
    ds = HeroDataset(roots["raw"], ann, modalities=["hubert", "au"])
    asked = []

    def allocate(specs):
        asked.append(list(specs))
        # garbage: padding and masks must be written, not assumed
        return {key: torch.full(shape, 7, dtype=dtype) for key, (shape, dtype) in specs.items()}

    assert_same_batch(ds.batch([2, 0], allocate), reference(ds, [2, 0]))
    assert asked == [["hubert", "hubert_lengths", "hubert_mask", "au", "au_lengths", "au_mask", "present", "label"]]
    with pytest.raises(ArgumentError, match="collate: empty batch"):
        ds.batch([])


def _collate_in_shared_memory(batch):
    out = collate(batch)
    tensors = [v for v in out.values() if isinstance(v, torch.Tensor)]
    out["not_shared"] = [k for k, v in out.items() if isinstance(v, torch.Tensor) and not v.is_shared()]
    out["segments"] = len({t.untyped_storage().data_ptr() for t in tensors})
    return out


@pytest.mark.parametrize("context", ["fork", "spawn", "forkserver"])
def test_dataloader_workers_build_batches_in_shared_memory(wild, context):
    roots, ann = wild
    mp_context = multiprocessing.get_context(context)
    if context == "forkserver":
        mp_context.set_forkserver_preload(["herostore.dataset"])
    for source in ("npy", "float16"):
        ds = HeroDataset(roots[source], ann, max_len=8)
        expected = [reference(ds, [0, 1]), reference(ds, [2, 3]), reference(ds, [4])]
        loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=_collate_in_shared_memory,
                            multiprocessing_context=mp_context)
        for got, want in zip(loader, expected, strict=True):
            assert got.pop("not_shared") == []  # built in shared memory by the worker: sending it copied nothing
            assert got.pop("segments") == 1  # one segment, one file descriptor per batch
            assert_same_batch(got, want)


# ------------------------------------------------------------------------------------------ read_into


@pytest.mark.parametrize("source", ["float16", "lossless", ROWS7.name, "npy"])
def test_read_into_rows_dtypes_and_shapes(wild, source):
    roots, _ = wild
    reader = NpyReader(roots[source]) if source == "npy" else ZarrReader(roots[source], zero_copy=True)
    full = reader.read("v0").arrays
    mae, clip = full["video_mae"], reader.read("v2").arrays["clip"]
    out = {"video_mae": np.full((150, 1024), np.nan, np.float32), "hubert": np.zeros((40, 1024), mae.dtype)}
    reader.read_into("v0", out, rows={"video_mae": 150})
    assert np.array_equal(out["video_mae"], mae[:150].astype(np.float32))
    assert np.array_equal(out["hubert"], full["hubert"])
    index = np.array([199, 0, 7, 7, 150])
    picked = np.empty((5, 1024), np.float64)
    reader.read_into("v0", {"video_mae": picked}, rows={"video_mae": index})
    assert np.array_equal(picked, mae[index].astype(np.float64))
    flat = np.empty((2 * 4, 1408), clip.dtype)  # a 3-D array's first two axes flattened
    reader.read_into("v2", {"clip": flat}, rows={"clip": 2})
    assert np.array_equal(flat, clip[:2].reshape(8, 1408))
    with pytest.raises(ArgumentError, match=r"destination of shape \[9, 1024\] for rows of shape \[8, 1024\]"):
        reader.read_into("v0", {"video_mae": np.empty((9, 1024), np.float32)}, rows={"video_mae": 8})
    with pytest.raises(ArgumentError, match=r"rows=201, expected 0 to 200"):
        reader.read_into("v0", {"video_mae": np.empty((201, 1024), np.float32)}, rows={"video_mae": 201})
    with pytest.raises(ArgumentError, match=r"row numbers from 0 to 200, the array has 200 rows"):
        reader.read_into("v0", {"video_mae": np.empty((2, 1024), np.float32)}, rows={"video_mae": np.array([0, 200])})
    with pytest.raises(ArgumentError, match=r"destination int32\[1, 768\], expected a writable C-contiguous float"):
        reader.read_into("v0", {"bert": np.empty((1, 768), np.int32)}, rows={"bert": 1})
    with pytest.raises(ArgumentError, match=r"'v0'.*'au'"):
        reader.read_into("v0", {"au": np.empty((1, 1024), np.float32)})


def test_read_into_a_compressed_padded_tail_reads_only_its_chunks(wild, tmp_path):
    roots, _ = wild
    reader = ZarrReader(roots[ROWS7.name])
    plan = reader.plan(reader.video_meta("v0"), "video_mae")
    assert (plan.chunk_rows, plan.n_chunks) == (7, 29)  # 203 stored rows for 200
    full = reader.read("v0", ["video_mae"]).arrays["video_mae"]
    out = np.empty((200, 1024), np.float32)
    reader.read_into("v0", {"video_mae": out})
    assert np.array_equal(out, full)
    head = np.empty((10, 1024), np.float32)
    reader.read_into("v0", {"video_mae": head}, rows={"video_mae": 10}, threads=1)
    assert np.array_equal(head, full[:10])


def test_read_into_checks_every_chunk_it_reads(wild, tmp_path):
    import shutil

    roots, _ = wild
    copy = tmp_path / "store"
    shutil.copytree(roots["float16"], copy)
    chunk = copy / "v3" / "hubert" / "c" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[10] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"video 'v3', modality 'hubert', chunk hubert/c/0/0: checksum mismatch"):
        ZarrReader(copy).read_into("v3", {"hubert": np.empty((12, 1024), np.float16)})


# ------------------------------------------------------------------------------------------ Loader


def _by_id(ds: HeroDataset) -> dict[str, int]:
    return {label.video_id: i for i, label in enumerate(ds.labels)}


@pytest.mark.parametrize("source", ["npy", "float16", ROWS7.name])
@pytest.mark.parametrize("options", [{}, {"dtype": "float32", "max_len": 8}, {"modalities": ["au", "clip"]}],
                         ids=["default", "float32-subsample", "au-clip"])
def test_loader_batches_equal_collate_of_samples(wild, source, options):
    roots, ann = wild
    ds = HeroDataset(roots[source], ann, **options)
    index = _by_id(ds)
    loader = Loader(ds, batch_size=2, shuffle=True, seed=3, threads=2)
    assert len(loader) == 3
    for _ in range(3):  # the ring is reused from epoch to epoch
        seen = []
        for batch in loader:
            ids = batch["video_id"]
            assert_same_batch(batch, reference(ds, [index[v] for v in ids]))
            seen += ids
        assert sorted(seen) == sorted(index)
    loader.close()


def test_loader_order_epochs_and_drop_last(wild):
    roots, ann = wild
    ds = HeroDataset(roots["float16"], ann, modalities=["bert"])
    order = lambda loader: [v for batch in loader for v in batch["video_id"]]
    assert order(Loader(ds, 2)) == ["v0", "v1", "v2", "v3", "v4"]
    loader = Loader(ds, 2, shuffle=True, seed=11, drop_last=True)
    assert len(loader) == 2
    expected = [[f"v{i}" for i in torch.randperm(5, generator=torch.Generator().manual_seed(11 + e)).tolist()][:4]
                for e in range(3)]
    assert [order(loader) for _ in range(3)] == expected  # each iteration takes the next epoch
    loader.set_epoch(1)
    assert order(loader) == expected[1]
    assert order(Loader(ds, 2, shuffle=True, seed=11, drop_last=True)) == expected[0]  # the same seed repeats
    torch.manual_seed(5)
    first = order(Loader(ds, 5, shuffle=True))
    torch.manual_seed(5)
    assert order(Loader(ds, 5, shuffle=True)) == first  # the default seed follows torch's global RNG


def test_loader_with_a_distributed_sampler_and_a_subset(wild):
    roots, ann = wild
    ds = HeroDataset(roots["float16"], ann, modalities=["hubert"])
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=3)
        loader = Loader(ds, 2, sampler=sampler)
        loader.set_epoch(4)
        assert sampler.epoch == 4
        seen.append([v for batch in loader for v in batch["video_id"]])
        sampler.set_epoch(4)
        assert seen[-1] == [ds.labels[i].video_id for i in sampler]
    assert sorted(seen[0] + seen[1][:2]) == [f"v{i}" for i in range(5)]  # 5 samples padded to 6
    subset = Subset(Subset(ds, [4, 3, 2, 1]), [3, 0])  # nested: v1, v4
    (batch,) = list(Loader(subset, 4))
    assert batch["video_id"] == ["v1", "v4"]
    assert_same_batch(batch, reference(ds, [1, 4]))


def test_loader_reuses_its_ring(wild):
    roots, ann = wild
    ds = HeroDataset(roots["float16"], ann)
    loader = Loader(ds, 2, shuffle=True, seed=0, threads=2)
    assert loader.prefetch == 2 and len(loader._slots) == 3
    list(loader)  # the first epoch grows the buffers to the largest batches
    ring = [slot.buffer.data_ptr() for slot in loader._slots]
    size = loader.memory_bytes()
    for _ in range(3):
        for batch in loader:
            assert {t.untyped_storage().data_ptr() for t in batch.values() if isinstance(t, torch.Tensor)} < set(ring)
    assert [slot.buffer.data_ptr() for slot in loader._slots] == ring  # no new memory after the first epoch
    assert loader.memory_bytes() == size


def test_loader_batches_are_valid_until_the_next_request_unless_copied(wild):
    roots, ann = wild
    ds = HeroDataset(roots["float16"], ann, modalities=["hubert"])
    loader = Loader(ds, 1, threads=1, prefetch=1)  # a ring of two batches
    it = iter(loader)
    first = next(it)
    held, kept = first["hubert"], first["hubert"].clone()
    next(it)
    next(it)  # the first batch's slot has been read into again
    assert not torch.equal(held, kept)
    copies = [b["hubert"] for b in Loader(ds, 1, threads=1, prefetch=1, copy=True)]
    assert all(torch.equal(c, reference(ds, [i])["hubert"]) for i, c in enumerate(copies))


def test_loader_errors_reach_the_caller_and_it_recovers(wild, tmp_path):
    import shutil

    roots, ann = wild
    copy = tmp_path / "store"
    shutil.copytree(roots["float16"], copy)
    (copy / "v2" / "bert" / "c" / "0" / "0").write_bytes(b"short")
    ds = HeroDataset(copy, ann, modalities=["bert"])
    loader = Loader(ds, 1, threads=2)
    with pytest.raises(CorruptStoreError, match=r"video 'v2', modality 'bert', chunk bert/c/0/0: chunk holds 5 bytes"):
        list(loader)
    assert [b["video_id"] for b in Loader(Subset(ds, [0, 1, 3, 4]), 2)] == [["v0", "v1"], ["v3", "v4"]]
    it = iter(loader)
    next(it)  # abandoned mid-epoch: the next iteration waits for its reads, then starts over
    with pytest.raises(CorruptStoreError):
        list(loader)


def test_loader_arguments(wild):
    roots, ann = wild
    ds = HeroDataset(roots["float16"], ann, modalities=["bert"])
    with pytest.raises(ArgumentError, match=r"Loader: batch_size=0, expected an int >= 1"):
        Loader(ds, 0)
    with pytest.raises(ArgumentError, match="sampler and shuffle=True"):
        Loader(ds, 2, shuffle=True, sampler=range(5))
    with pytest.raises(ArgumentError, match="dataset is a list, expected a HeroDataset or a Subset of one"):
        Loader([1, 2], 2)
    with pytest.raises(ArgumentError, match=r"threads=0"):
        Loader(ds, 2, threads=0)
    if not torch.cuda.is_available():
        with pytest.warns(UserWarning, match="pin_memory=True, but CUDA is not available"):
            loader = Loader(ds, 2, pin_memory=True)
        assert not loader.pin_memory
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (batch, *_) = Loader(ds, 2, device="cpu")
    assert batch["bert"].device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_loader_pinned_ring_to_cuda(wild):
    roots, ann = wild
    ds = HeroDataset(roots["float16"], ann, dtype="float32")
    loader = Loader(ds, 2, pin_memory=True, device="cuda", shuffle=True, seed=1)
    index = _by_id(ds)
    for _ in range(2):
        for batch in loader:
            assert batch["hubert"].is_cuda
            want = reference(ds, [index[v] for v in batch["video_id"]])
            assert_same_batch({k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}, want)
    assert all(slot.buffer is not None and slot.buffer.is_pinned() for slot in loader._slots)


def test_importing_herostore_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, herostore; assert 'torch' not in sys.modules and 'Loader' in dir(herostore); "
            "herostore.Loader; assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------ the benchmark


def test_loader_benchmark_quick_mode_runs_and_writes_its_report(tmp_path):
    pytest.importorskip("psutil")
    from benchmarks import loader as bench

    out = tmp_path / "results"
    results = bench.main(["--quick", "--out", str(out), "--workdir", str(tmp_path / "work")])
    assert sorted(p.name for p in out.iterdir()) == ["loader.json", "loader.md"]
    saved = json.loads((out / "loader.json").read_text())
    assert saved["mode"] == "quick" and saved["data"].startswith("trained")
    rates = [v["samples_per_s"] for table in ("in_process", "loops", "builds") for v in saved[table].values()]
    assert len(rates) == 12 + 2 * (1 + 2 * 4) + 12 and min(rates) > 0  # quick: one batch size, 0 and 2 workers
    assert len(saved["targets"]) == 7 == len(results["targets"])
    md = (out / "loader.md").read_text()
    assert "## Targets" in md and "copy limit" in md and "trained" in md
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["cache"]  # the data is removed
