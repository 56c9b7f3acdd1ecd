"""The readers: the fast path equals zarr-python byte for byte, reads only what it must,
falls back where it cannot, and survives pickling, fork and spawn."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import shutil
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import make_features

from herostore import npyfile
from herostore import reader as reader_module
from herostore.errors import SpecError, StoreError, VideoNotFoundError
from herostore.presets import get_preset
from herostore.reader import NpyReader, VideoRecord, ZarrReader, open_reader
from herostore.schema import ARRAY_KEYS

PRESETS = ["lossless", "float16", "float16-lz4", "bitround", "bitround:5", "raw"]


def zarr_ref(root: Path, video_id: str, key: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return zarr.open_group(str(root), mode="r")[video_id][key][...]


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    assert np.array_equal(actual, expected, equal_nan=True)


def add_odd_videos(store, *, long_raw: bool = False) -> None:
    """Videos longer than a chunk, with T=1, and with 3-D clip arrays."""
    rng = np.random.default_rng(7)
    long = make_features(10, lengths=(1300, 3, 513, 2))
    store.write_video("long", long, notes={"audio": "missing"})
    store.write_video("tiny", make_features(11, lengths=(1, 1, 1, 1), au=True))
    clip3d = make_features(12)
    clip3d["clip"] = rng.standard_normal((2, 257, 1408), dtype=np.float32)
    store.write_video("clip3d", clip3d)
    if long_raw:  # longer than the raw preset's 4096-row chunks
        store.write_video("longraw", make_features(13, lengths=(4100, 1, 1, 1)))


@pytest.fixture
def spy_open(monkeypatch):
    """Record every path the fast path opens."""
    opened: list[str] = []
    real = reader_module._open_fd

    def spy(path: str) -> int:
        opened.append(path)
        return real(path)

    monkeypatch.setattr(reader_module, "_open_fd", spy)
    return opened


def chunk_paths(opened: list[str], key: str) -> list[str]:
    return sorted(p.split(f"/{key}/", 1)[1] for p in opened if f"/{key}/" in p)


# -- the fast path equals zarr-python ------------------------------------------------


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("preset", PRESETS)
def test_fast_path_equals_zarr_python(store_factory, preset, threads, monkeypatch):
    monkeypatch.setattr(reader_module, "PARALLEL_MIN_BYTES", 0)  # share even small samples among the threads
    store = store_factory(preset, n=2)
    add_odd_videos(store, long_raw=preset == "raw")
    fast, slow = ZarrReader(store.path, threads=threads), ZarrReader(store.path, fast=False)
    workers: set[str] = set()
    real_run_job = reader_module._run_job

    def spy_run_job(job, fd):
        workers.add(threading.current_thread().name)
        return real_run_job(job, fd)

    monkeypatch.setattr(reader_module, "_run_job", spy_run_job)
    assert fast.preset_name() == preset
    for vid in fast.video_ids():
        record, reference = fast.read(vid), slow.read(vid)
        assert isinstance(record, VideoRecord) and record.video_id == vid
        assert list(record.arrays) == list(reference.arrays)
        assert set(record.arrays) == set(store.shapes(vid))
        for key, array in record.arrays.items():
            expected = zarr_ref(store.path, vid, key)
            assert_same(array, expected)
            assert_same(reference.arrays[key], expected)
        assert record.transcript == reference.transcript == store.open_video(vid).attrs["transcript"]
        assert record.notes == reference.notes
    assert fast.read("long").notes == {"audio": "missing"}
    compressed = get_preset(preset).cname is not None  # only decoding is shared among threads
    assert any(name.startswith("herostore-read") for name in workers) == (threads > 1 and compressed)
    assert fast.read("clip3d").arrays["clip"].shape == (2, 257, 1408)
    assert fast.read("tiny").arrays["au"].shape[1:] == (1024,)


@pytest.mark.parametrize("threads", [1, 2])
def test_missing_chunk_files_read_as_fill_value(store_factory, threads, monkeypatch):
    monkeypatch.setattr(reader_module, "PARALLEL_MIN_BYTES", 0)
    for preset in ("lossless", "raw"):
        store = store_factory(preset, n=1)
        add_odd_videos(store)
        # lossless: at most 512 rows per chunk, so 1300 rows are 3 chunks of 434 and video_mae loses rows
        # 434..867, hubert (513 rows: 2 chunks of 257) rows 0..256; raw: one chunk each, all of it
        mae_chunk = "1" if preset == "lossless" else "0"
        os.remove(store.path / "long" / "video_mae" / "c" / mae_chunk / "0")
        os.remove(store.path / "long" / "hubert" / "c" / "0" / "0")
        record = ZarrReader(store.path, threads=threads).read("long")
        for key in ("video_mae", "hubert", "clip"):
            assert_same(record.arrays[key], zarr_ref(store.path, "long", key))
        mae, hubert = record.arrays["video_mae"], record.arrays["hubert"]
        if preset == "lossless":
            assert not mae[434:868].any() and mae[:434].all() and mae[868:].all()
            assert not hubert[:257].any() and hubert[257:].all()
        else:
            assert not mae.any() and not hubert.any()


def test_zero_copy_gives_read_only_views_of_raw_one_chunk_arrays(store_factory):
    store = store_factory("raw", n=1)
    record = ZarrReader(store.path, zero_copy=True).read("video_000")
    big = record.arrays["clip"]  # 5 x 1408 float32 is below the mmap threshold: a plain read
    assert big.flags.writeable
    add_odd_videos(store)
    long = ZarrReader(store.path, zero_copy=True).read("long").arrays["video_mae"]  # 1300 x 1024, memory-mapped
    assert not long.flags.writeable
    assert_same(np.array(long), zarr_ref(store.path, "long", "video_mae"))
    copied = ZarrReader(store.path).read("long", max_rows={"video_mae": 700}).arrays["video_mae"]  # the default
    assert copied.flags.writeable and copied.flags.owndata
    assert_same(copied, long[:700])


# -- reading only what is asked --------------------------------------------------------


@pytest.mark.parametrize("preset", ["float16-lz4", "raw"])
def test_max_rows_reads_only_the_covering_chunks(store_factory, spy_open, preset):
    store = store_factory(preset, n=0)
    add_odd_videos(store)
    reader = ZarrReader(store.path)
    full = zarr_ref(store.path, "long", "video_mae")
    cases = {64: ["c/0/0"], 600: ["c/0/0", "c/1/0"], 5000: ["c/0/0", "c/1/0", "c/2/0"], 0: []}
    if preset == "raw":  # one 4096-row chunk
        cases = {64: ["c/0/0"], 600: ["c/0/0"], 5000: ["c/0/0"], 0: []}
    for rows, chunks in cases.items():
        spy_open.clear()
        record = reader.read("long", ["video_mae"], max_rows={"video_mae": rows})
        assert_same(record.arrays["video_mae"], full[:rows])
        assert chunk_paths(spy_open, "video_mae") == chunks
        assert [Path(p).name for p in spy_open if "/video_mae/" not in p] == ["zarr.json"]
    # limits for other modalities leave the rest whole
    record = reader.read("long", max_rows={"hubert": 3})
    assert record.arrays["hubert"].shape == (3, 1024)
    assert_same(record.arrays["video_mae"], full)


def test_max_rows_through_zarr_python_matches(store_factory):
    store = store_factory("float16", n=0)
    add_odd_videos(store)
    fast, slow = ZarrReader(store.path), ZarrReader(store.path, fast=False)
    limits = {"video_mae": 700, "clip": 1, "hubert": 512, "bert": 0}
    a, b = fast.read("long", max_rows=limits), slow.read("long", max_rows=limits)
    for key in a.arrays:
        assert_same(a.arrays[key], b.arrays[key])
    assert a.arrays["bert"].shape == (0, 768)


def test_bad_max_rows_and_modalities(store_factory):
    reader = ZarrReader(store_factory("float16", n=1).path)
    with pytest.raises(SpecError, match="unknown modality 'audio'"):
        reader.read("video_000", ["audio"])
    with pytest.raises(SpecError, match="unknown modality 'vmae'"):
        reader.read("video_000", max_rows={"vmae": 3})
    with pytest.raises(SpecError, match=r"max_rows\['bert'\] = -1: expected an int >= 0"):
        reader.read("video_000", max_rows={"bert": -1})


def test_modality_subset_opens_only_those_arrays(store_factory, spy_open):
    store = store_factory("lossless", n=2)
    reader = ZarrReader(store.path)
    spy_open.clear()  # opening read the root zarr.json
    record = reader.read("video_001", ["bert", "hubert", "au"])
    assert list(record.arrays) == ["bert", "hubert", "au"]
    touched = {Path(p).relative_to(store.path / "video_001").parts[0] for p in spy_open}
    assert touched == {"zarr.json", "bert", "hubert", "au"}
    spy_open.clear()
    assert list(reader.read("video_000", ["au", "clip"]).arrays) == ["clip"]  # video_000 has no au
    assert {Path(p).relative_to(store.path / "video_000").parts[0] for p in spy_open} == {"zarr.json", "clip"}
    assert list(reader.read("video_000", "bert").arrays) == ["bert"]
    assert list(reader.read("video_001").arrays) == list(ARRAY_KEYS)


# -- fallbacks to zarr-python ------------------------------------------------------------


def _write_group(path: Path, arrays: dict, **create_kwargs) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        group = zarr.create_group(
            zarr.storage.LocalStore(path),
            zarr_format=3,
            attributes={"transcript": "odd codecs", "herostore": {"modalities": list(arrays), "deviations": []}},
        )
        for key, (data, kwargs) in arrays.items():
            group.create_array(key, shape=data.shape, dtype=data.dtype, fill_value=0, **kwargs)[...] = data
        zarr.consolidate_metadata(zarr.storage.LocalStore(path))


def test_unknown_codecs_fall_back_to_zarr_python(store_factory, monkeypatch):
    from zarr.codecs import BloscCodec, BytesCodec, GzipCodec

    store = store_factory("lossless", n=1)
    rng = np.random.default_rng(3)
    data = {
        "video_mae": rng.standard_normal((600, 1024), dtype=np.float32),
        "hubert": rng.standard_normal((40, 1024), dtype=np.float32),
        "bert": rng.standard_normal((9, 768), dtype=np.float32).astype(np.float16),
        "clip": rng.standard_normal((300, 1408), dtype=np.float32),
    }
    _write_group(
        store.path / "odd",
        {
            "video_mae": (data["video_mae"], {"chunks": (256, 1024), "compressors": [GzipCodec(level=1)]}),
            "bert": (data["bert"], {"chunks": (4, 768), "shards": (8, 768)}),
            # big-endian bytes stay on the fast path (swapped), compressed and raw (mmap-sized)
            "hubert": (data["hubert"], {"chunks": (16, 1024), "serializer": BytesCodec(endian="big"),
                                        "compressors": [BloscCodec(cname="zstd")]}),
            "clip": (data["clip"], {"chunks": (300, 1408), "serializer": BytesCodec(endian="big"),
                                    "compressors": None}),
        },
    )
    calls = []
    real_open_group = ZarrReader._open_group
    monkeypatch.setattr(ZarrReader, "_open_group", lambda self, vid: calls.append(vid) or real_open_group(self, vid))
    reader = ZarrReader(store.path)
    record = reader.read("odd", max_rows={"hubert": 20})
    assert calls == ["odd"]
    for key, array in record.arrays.items():
        expected = data[key][:20] if key == "hubert" else data[key]
        assert_same(array, expected)
        assert_same(array, zarr_ref(store.path, "odd", key)[: len(expected)])
    calls.clear()
    reader.read("odd", ["hubert", "clip"])
    reader.read("video_000")
    assert calls == []  # bytes/blosc arrays never touch zarr-python


def test_other_format_version_reads_through_zarr_python(store_factory, monkeypatch):
    store = store_factory("float16", n=1)
    meta_path = store.path / "zarr.json"
    document = json.loads(meta_path.read_text())
    document["attributes"]["herostore"]["format_version"] = 2
    meta_path.write_text(json.dumps(document))
    monkeypatch.setattr(reader_module, "_prepare_array", lambda *a: pytest.fail("fast path used"))
    record = ZarrReader(store.path).read("video_000")
    assert_same(record.arrays["clip"], zarr_ref(store.path, "video_000", "clip"))


def test_video_without_consolidated_metadata_reads_through_zarr_python(store_factory, monkeypatch):
    store = store_factory("lossless", n=1)
    meta_path = store.path / "video_000" / "zarr.json"
    document = json.loads(meta_path.read_text())
    del document["consolidated_metadata"]
    meta_path.write_text(json.dumps(document))
    monkeypatch.setattr(reader_module, "_prepare_array", lambda *a: pytest.fail("fast path used"))
    record = ZarrReader(store.path).read("video_000", max_rows={"bert": 2})
    assert_same(record.arrays["bert"], zarr_ref(store.path, "video_000", "bert")[:2])
    assert record.transcript == store.open_video("video_000").attrs["transcript"]


def test_corrupt_chunk_is_a_store_error(store_factory):
    store = store_factory("lossless", n=1)
    chunk = store.path / "video_000" / "hubert" / "c" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:10])
    with pytest.raises(StoreError, match=r"hubert/c/0/0"):
        ZarrReader(store.path).read("video_000", ["hubert"])


def test_remote_url_reads_through_zarr_python(store_factory):
    fsspec = pytest.importorskip("fsspec")
    store = store_factory("float16", n=2)
    fs = fsspec.filesystem("memory")
    fs.put(str(store.path), "/herostore-test/features", recursive=True)
    try:
        remote = ZarrReader("memory://herostore-test/features")
        assert remote.video_ids() == ["video_000", "video_001"]
        assert "video_001" in remote and "video_009" not in remote
        assert remote.preset_name() == "float16"
        record = remote.read("video_001", max_rows={"video_mae": 3})
        assert_same(record.arrays["video_mae"], zarr_ref(store.path, "video_001", "video_mae")[:3])
        with pytest.raises(VideoNotFoundError, match="memory://herostore-test/features: no video 'nope'"):
            remote.read("nope")
    finally:
        fs.rm("/herostore-test", recursive=True)


# -- store facts, listing, errors -----------------------------------------------------------


def test_listing_stats_and_preset(store_factory):
    store = store_factory("bitround:5", n=3)
    (store.path / ".tmp" / "123-scratch").mkdir(parents=True)
    reader = ZarrReader(store.path)
    assert reader.video_ids() == ["video_000", "video_001", "video_002"] == store.video_ids()
    assert len(reader) == 3
    assert "video_002" in reader and "video_003" not in reader and ".tmp" not in reader and "../x" not in reader
    assert reader.preset_name() == "bitround:5"
    assert reader.stats() is None
    meta_path = store.path / "zarr.json"
    document = json.loads(meta_path.read_text())
    document["attributes"]["herostore"]["stats"] = {"bert": {"mean": [0.5] * 768, "std": [2.0] * 768, "count": 7}}
    meta_path.write_text(json.dumps(document))
    stats = ZarrReader(store.path).stats()
    assert stats["bert"]["mean"].dtype == np.float32 and stats["bert"]["mean"].shape == (768,)
    assert stats["bert"]["std"][0] == 2.0 and int(stats["bert"]["count"]) == 7


@pytest.mark.parametrize("fast", [True, False])
def test_missing_video_names_id_and_store(store_factory, fast):
    store = store_factory("float16", n=1)
    reader = ZarrReader(store.path, fast=fast)
    with pytest.raises(VideoNotFoundError) as info:
        reader.read("video_999")
    assert str(info.value) == f"{store.path}: no video 'video_999'"
    assert isinstance(info.value, KeyError) and isinstance(info.value, FileNotFoundError)


def test_not_a_store_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="not a herostore store"):
        ZarrReader(tmp_path)


# -- the npy reader ---------------------------------------------------------------------------


def test_npy_reader_equals_file_contents(npy_dataset):
    folder = npy_dataset / "features"
    reader = NpyReader(folder)
    assert reader.format == "npy" and reader.stats() is None and reader.preset_name() is None
    assert reader.video_ids() == ["video_000", "video_001", "video_002", "video_003"]
    assert "video_001" in reader and "video_009" not in reader and "../x" not in reader
    for vid in reader.video_ids():
        raw = npyfile.load_dict(folder / f"{vid}.npy")
        record = reader.read(vid)
        assert record.transcript == raw["transcript"] and record.notes == {}
        assert list(record.arrays) == [k for k in ARRAY_KEYS if k in raw]
        for key, array in record.arrays.items():
            assert_same(array, raw[key])
    au = npyfile.load_dict(folder / "video_001.npy")["au"]
    record = reader.read("video_001", ["au", "bert"], max_rows={"bert": 2, "au": 10_000})
    assert list(record.arrays) == ["au", "bert"]
    assert record.arrays["bert"].shape == (2, 768)
    assert_same(record.arrays["au"], au)
    with pytest.raises(VideoNotFoundError, match=r"features: no video 'video_042'"):
        reader.read("video_042")


def test_npy_reader_squeezes_batch_axis(tmp_path):
    folder = tmp_path / "features"
    folder.mkdir()
    features = make_features(5)
    batched = {k: (v[None] if isinstance(v, np.ndarray) else v) for k, v in features.items()}
    np.save(folder / "clip_a.npy", batched, allow_pickle=True)
    record = open_reader(folder).read("clip_a")
    for key in ("video_mae", "clip", "hubert", "bert"):
        assert_same(record.arrays[key], features[key])


def test_npy_and_zarr_readers_agree(npy_dataset, tmp_path):
    from herostore.store import FeatureStore

    folder = npy_dataset / "features"
    store = FeatureStore.create(tmp_path / "store", "lossless")
    for path in sorted(folder.glob("*.npy")):
        store.write_video(path.stem, npyfile.load_features(path))
    npy, zr = open_reader(folder), open_reader(store.path)
    assert npy.video_ids() == zr.video_ids()
    for vid in npy.video_ids():
        a, b = npy.read(vid, max_rows={"hubert": 5}), zr.read(vid, max_rows={"hubert": 5})
        assert a.transcript == b.transcript and list(a.arrays) == list(b.arrays)
        for key in a.arrays:
            assert_same(a.arrays[key], b.arrays[key])


# -- open_reader ------------------------------------------------------------------------------------


def test_open_reader_detects_the_format(store_factory, npy_dataset, tmp_path):
    store = store_factory("raw", n=1)
    zr = open_reader(store.path)
    assert isinstance(zr, ZarrReader) and zr.format == "zarr" and zr.fast
    assert open_reader(str(store.path), fast=False).fast is False
    npy = open_reader(npy_dataset / "features")
    assert isinstance(npy, NpyReader) and npy.format == "npy"
    random = tmp_path / "random"
    random.mkdir()
    (random / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match=rf"{random}: neither a herostore store nor a folder of \.npy files; expected"):
        open_reader(random)
    with pytest.raises(StoreError, match="no such file or folder"):
        open_reader(tmp_path / "missing")
    with pytest.raises(StoreError, match="is a file"):
        open_reader(random / "notes.txt")
    with pytest.raises(StoreError, match="not a folder"):
        NpyReader(random / "notes.txt")


# -- pickling, fork, spawn ---------------------------------------------------------------------------


def _child_read(reader, video_id):
    record = reader.read(video_id)
    return os.getpid(), {k: np.array(v) for k, v in record.arrays.items()}, record.transcript


def _readers(store_path: Path, npy_path: Path):
    return [ZarrReader(store_path), ZarrReader(store_path, fast=False), NpyReader(npy_path)]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_readers_pickle_and_work_in_child_processes(store_factory, npy_dataset, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} here")
    store = store_factory("float16", n=2)
    add_odd_videos(store)
    npy_root = npy_dataset / "features"
    readers = _readers(store.path, npy_root)
    video = {"zarr": "long", "npy": "video_001"}
    expected = []
    for reader in readers:  # the parent reads first: caches, zarr objects, blosc state exist
        record = reader.read(video[reader.format])
        expected.append(record)
        clone = pickle.loads(pickle.dumps(reader))
        assert type(clone) is type(reader) and clone.path == reader.path and clone.fast == reader.fast
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(1) as pool:
        for reader, record in zip(readers, expected):
            pid, arrays, transcript = pool.apply(_child_read, (reader, video[reader.format]))
            assert pid != os.getpid()
            assert transcript == record.transcript and list(arrays) == list(record.arrays)
            for key in arrays:
                assert_same(arrays[key], record.arrays[key])


def test_fork_inherits_a_used_reader(store_factory):
    """A reader used in the parent and inherited (not pickled) by a forked child."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork here")
    store = store_factory("lossless", n=1)
    add_odd_videos(store)
    fast, slow = ZarrReader(store.path), ZarrReader(store.path, fast=False)
    expected = fast.read("long").arrays["video_mae"]
    slow.read("long")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()

    def child() -> None:
        queue.put([float(np.asarray(r.read("long").arrays["video_mae"], np.float64).sum()) for r in (fast, slow)])

    process = ctx.Process(target=child)
    process.start()
    sums = queue.get(timeout=60)
    process.join(60)
    assert process.exitcode == 0
    assert sums == [float(expected.astype(np.float64).sum())] * 2


def test_store_with_copied_video_dir(store_factory):
    """A video folder copied into another store is read there (paths are relative)."""
    src = store_factory("float16", n=1, name="a")
    dst = store_factory("float16", n=0, name="b")
    shutil.copytree(src.path / "video_000", dst.path / "moved")
    a, b = ZarrReader(src.path).read("video_000"), ZarrReader(dst.path).read("moved")
    for key in a.arrays:
        assert_same(a.arrays[key], b.arrays[key])


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("value", [None, 3])
def test_missing_or_non_str_transcript_is_an_error(store_factory, fast, value):
    store = store_factory("lossless", n=1)
    meta_path = store.path / "video_000" / "zarr.json"
    document = json.loads(meta_path.read_text())
    if value is None:
        del document["attributes"]["transcript"]
    else:
        document["attributes"]["transcript"] = value
    meta_path.write_text(json.dumps(document))
    found = "no 'transcript' attribute" if value is None else "a int"
    with pytest.raises(SpecError, match=f"video 'video_000' has {found}; expected the transcript as a str"):
        ZarrReader(store.path, fast=fast).read("video_000")


def test_a_folder_without_zarr_json_is_not_a_readable_video(store_factory):
    store = store_factory("lossless", n=2)
    (store.path / "stray").mkdir()
    reader = ZarrReader(store.path)
    assert "stray" not in reader and "video_000" in reader
    for fast in (True, False):
        with pytest.raises(VideoNotFoundError, match=f"{store.path}: no video 'stray'"):
            ZarrReader(store.path, fast=fast).read("stray")
