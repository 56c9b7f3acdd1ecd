"""The readers. ``TestReaderConformance`` runs the same checks against every reader and byte source: the fast path
equals zarr-python byte for byte, reads only what it is asked, refuses damage with an error naming the chunk, and
survives pickling, fork and spawn. Source-specific behaviour follows the class."""

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
from herostore.errors import (
    ArgumentError,
    ChecksumError,
    CorruptStoreError,
    SpecError,
    StoreError,
    VideoNotFoundError,
)
from herostore.layout import seal_video
from herostore.locations import beneath as beneath_module
from herostore.locations import chunk_files as chunk_files_module
from herostore.presets import get_preset
from herostore.read import NpyReader, ZarrReader, open_reader
from herostore.schema import ARRAY_KEYS
from herostore.store import FeatureStore

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
    store.write_video("long", make_features(10, lengths=(1300, 3, 513, 2)), notes={"audio": "missing"})
    store.write_video("tiny", make_features(11, lengths=(1, 1, 1, 1), au=True))
    clip3d = make_features(12)
    clip3d["clip"] = rng.standard_normal((2, 257, 1408), dtype=np.float32)
    store.write_video("clip3d", clip3d)
    if long_raw:  # longer than the raw preset's 4096-row chunks
        store.write_video("longraw", make_features(13, lengths=(4100, 1, 1, 1)))


# -- byte sources: each turns a local store into the source it tests -----------------------------------------------


class LocalSource:
    name = "local"

    def open(self, store_path: Path, **options) -> ZarrReader:
        return ZarrReader(store_path, **options)

    def damage(self, store_path: Path) -> Path:
        return store_path


class MemorySource:
    """The same store as objects on an fsspec filesystem (the in-memory one: no server needed)."""

    name = "memory"

    def __init__(self):
        import fsspec

        self.fs = fsspec.filesystem("memory")
        self.count = 0

    def open(self, store_path: Path, **options) -> ZarrReader:
        self.count += 1
        url = f"memory://herostore-test-{self.count}/features"
        self.fs.put(str(store_path), url.removeprefix("memory:/"), recursive=True)
        return ZarrReader(url, **options)


class PackedSource:
    """The same store packed (``herostore pack``) into shards small enough that videos spread over several."""

    name = "packed"
    shard_size = 1 << 20

    def __init__(self):
        self.count = 0

    def pack(self, store_path: Path) -> Path:
        from herostore.pack import pack

        self.count += 1
        root = store_path.parent / f"{store_path.name}-packed-{self.count}"
        assert pack(store_path, root, shard_size=self.shard_size, workers=1, progress=False).ok
        return root / "features"

    def open(self, store_path: Path, **options) -> ZarrReader:
        return ZarrReader(self.pack(store_path), **options)


class PackedMemorySource(MemorySource, PackedSource):
    """A packed dataset as objects on an fsspec filesystem: one ranged read per sample."""

    name = "packed-memory"

    def open(self, store_path: Path, **options) -> ZarrReader:
        packed = self.pack(store_path)
        url = f"memory://herostore-packed-{self.count}/features"
        self.fs.put(str(packed), url.removeprefix("memory:/"), recursive=True)
        return ZarrReader(url, **options)


SOURCES = [LocalSource, MemorySource, PackedSource, PackedMemorySource]


@pytest.fixture(params=SOURCES, ids=lambda s: s.name)
def source(request):
    made = request.param()
    yield made
    if isinstance(made, MemorySource):
        made.fs.store.clear()
        made.fs.pseudo_dirs.clear()
        made.fs.pseudo_dirs.append("")


class TestReaderConformance:
    """What every (store) reader over every byte source must do."""

    @pytest.mark.parametrize("preset", PRESETS)
    def test_equals_zarr_python_in_every_preset(self, store_factory, source, preset):
        store = store_factory(preset, n=2)
        add_odd_videos(store)
        reader = source.open(store.path)
        assert reader.video_ids() == sorted(["video_000", "video_001", "long", "tiny", "clip3d"])
        for vid in reader.video_ids():
            record = reader.read(vid)
            assert list(record.arrays) == [k for k in ARRAY_KEYS if k in store.shapes(vid)]
            for key, array in record.arrays.items():
                assert_same(array, zarr_ref(store.path, vid, key))
            assert record.transcript == store.open_video(vid).attrs["transcript"]
        assert reader.read("long").notes["audio"] == "missing"
        assert reader.read("clip3d").arrays["clip"].shape == (2, 257, 1408)

    def test_max_rows_and_subsets(self, store_factory, source):
        store = store_factory("float16-lz4", n=2)
        add_odd_videos(store)
        reader = source.open(store.path)
        full = zarr_ref(store.path, "long", "video_mae")
        for rows in (0, 1, 64, 600, 1300, 5000):
            got = reader.read("long", ["video_mae"], max_rows={"video_mae": rows}).arrays["video_mae"]
            assert_same(got, full[:rows])
        record = reader.read("long", max_rows={"hubert": 3})
        assert record.arrays["hubert"].shape == (3, 1024)
        assert_same(record.arrays["video_mae"], full)
        assert list(reader.read("video_001", ["bert", "hubert", "au"]).arrays) == ["bert", "hubert", "au"]
        assert list(reader.read("video_000", ["au", "clip"]).arrays) == ["clip"]  # video_000 has no au
        assert list(reader.read("video_000", "bert").arrays) == ["bert"]

    def test_bad_arguments_and_missing_videos(self, store_factory, source):
        store = store_factory("float16", n=1)
        reader = source.open(store.path)
        with pytest.raises(SpecError, match="unknown modality 'audio'"):
            reader.read("video_000", ["audio"])
        with pytest.raises(ArgumentError, match=r"max_rows\['bert'\] = -1: expected an int >= 0"):
            reader.read("video_000", max_rows={"bert": -1})
        with pytest.raises(VideoNotFoundError) as info:
            reader.read("video_999")
        assert str(info.value) == f"{reader.location.name}: no video 'video_999'"
        assert "video_000" in reader and "video_999" not in reader and "../x" not in reader

    @pytest.mark.parametrize("preset", ["float16", "float16-lz4", "lossless"])
    def test_damage_is_an_error_naming_the_chunk(self, store_factory, source, preset):
        """A flipped byte, a truncated chunk and a missing chunk: never zeros, never silently wrong rows."""
        store = store_factory(preset, n=1)
        add_odd_videos(store)
        video = store.path / "long"
        flipped = max((video / "video_mae" / "c").rglob("*/0"))
        data = bytearray(flipped.read_bytes())
        data[len(data) // 2] ^= 0x40
        flipped.write_bytes(bytes(data))
        truncated = video / "clip" / "c" / "0" / "0"
        truncated.write_bytes(truncated.read_bytes()[:-100])
        (video / "hubert" / "c" / "0" / "0").unlink()
        reader = source.open(store.path)
        key = flipped.relative_to(video).as_posix()
        with pytest.raises(ChecksumError, match=rf"video 'long', modality 'video_mae', chunk {key}: checksum"):
            reader.read("long", ["video_mae"])
        with pytest.raises(CorruptStoreError, match=r"modality 'clip', chunk clip/c/0/0: (chunk holds|checksum)"):
            reader.read("long", ["clip"])
        with pytest.raises(CorruptStoreError, match=r"modality 'hubert', chunk hubert/c/0/0: the chunk .* missing"):
            reader.read("long", ["hubert"])
        assert_same(reader.read("long", ["bert"]).arrays["bert"], zarr_ref(store.path, "long", "bert"))

    def test_edited_metadata_is_refused(self, store_factory, source):
        """A shape edited in the consolidated metadata cannot truncate an array silently: the sealed document no
        longer matches its digest, and even re-sealed, the chunking herostore chose for 500 rows is not 513."""
        from herostore.layout import seal_video

        store = store_factory("float16", n=1)
        add_odd_videos(store)
        path = store.path / "long" / "zarr.json"
        document = json.loads(path.read_text())
        document["consolidated_metadata"]["metadata"]["hubert"]["shape"] = [500, 1024]
        path.write_text(json.dumps(document))
        with pytest.raises(CorruptStoreError, match=r"video 'long': zarr.json does not match its digest"):
            source.open(store.path).read("long", ["hubert"])
        info = document["attributes"]["herostore"]
        path.write_bytes(seal_video(document, "long", info["chunks"]))
        with pytest.raises(CorruptStoreError, match=r"modality 'hubert': 500 rows in chunks of 513; .* edited"):
            source.open(store.path).read("long", ["hubert"])

    def test_renamed_videos_and_moved_chunks_are_refused(self, store_factory, source):
        """What a chunk checksum alone cannot see: a video folder under another id, an intact chunk in another's
        place, an edited transcript."""
        store = store_factory("raw", n=3)
        os.rename(store.path / "video_000", store.path / "renamed")
        a, b = store.path / "video_001" / "bert" / "c" / "0" / "0", store.path / "video_002" / "bert" / "c" / "0" / "0"
        data_a, data_b = a.read_bytes(), b.read_bytes()
        if len(data_a) == len(data_b):  # same shape: swap them, each stays intact
            a.write_bytes(data_b)
            b.write_bytes(data_a)
        else:
            b.write_bytes(data_a)  # a copy, intact but of another array
        path = store.path / "video_002" / "zarr.json"
        reader = source.open(store.path)
        with pytest.raises(CorruptStoreError, match=r"video 'renamed': zarr.json belongs to video 'video_000'"):
            reader.read("renamed")
        with pytest.raises(CorruptStoreError, match=r"chunk bert/c/0/0: (an intact chunk, but not this one|chunk "
                                                    r"holds)"):
            reader.read("video_002", ["bert"])
        path.write_text(path.read_text().replace('"sample transcript 2"', '"edited transcript"'))
        with pytest.raises(CorruptStoreError, match="does not match its digest"):
            source.open(store.path).read("video_002", ["clip"])

    def test_pickles_and_reads_in_a_child(self, store_factory, source):
        store = store_factory("float16", n=1)
        add_odd_videos(store)
        reader = source.open(store.path)
        expected = reader.read("long")
        clone = pickle.loads(pickle.dumps(reader))
        again = clone.read("long")
        for key in expected.arrays:
            assert_same(again.arrays[key], expected.arrays[key])


# -- local stores ------------------------------------------------------------------------------------------------


@pytest.fixture
def spy_open(monkeypatch):
    """Record every file the local fast path opens, relative to the store."""
    opened: list[str] = []
    real = beneath_module.open_beneath

    def spy(root_fd: int, relative: str) -> int:
        opened.append(relative)
        return real(root_fd, relative)

    monkeypatch.setattr(beneath_module, "open_beneath", spy)
    return opened


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("preset", ["float16-lz4", "raw"])
def test_threads_share_only_decoding(store_factory, preset, threads, monkeypatch):
    monkeypatch.setattr(chunk_files_module, "PARALLEL_MIN_BYTES", 0)  # share even small samples among the threads
    store = store_factory(preset, n=1)
    add_odd_videos(store)
    workers = set()
    real = chunk_files_module.fill_one

    def spy(*args):
        workers.add(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(chunk_files_module, "fill_one", spy)
    record = ZarrReader(store.path, threads=threads).read("long")
    for key, array in record.arrays.items():
        assert_same(array, zarr_ref(store.path, "long", key))
    compressed = get_preset(preset).cname is not None
    assert any(name.startswith("herostore-read") for name in workers) == (threads > 1 and compressed)


@pytest.mark.parametrize("preset", ["float16-lz4", "raw"])
def test_max_rows_opens_only_the_covering_chunks(store_factory, spy_open, preset):
    store = store_factory(preset, n=0)
    add_odd_videos(store)
    reader = ZarrReader(store.path)
    cases = {64: ["c/0/0"], 600: ["c/0/0", "c/1/0"], 5000: ["c/0/0", "c/1/0", "c/2/0"], 0: []}
    if preset == "raw":  # one 4096-row chunk
        cases = {64: ["c/0/0"], 600: ["c/0/0"], 5000: ["c/0/0"], 0: []}
    for rows, chunks in cases.items():
        spy_open.clear()
        reader.read("long", ["video_mae"], max_rows={"video_mae": rows})
        assert sorted(p.split("/video_mae/", 1)[1] for p in spy_open if "/video_mae/" in p) == chunks
        assert [p for p in spy_open if "/video_mae/" not in p] == ["long/zarr.json"]


def test_modality_subset_opens_only_those_arrays(store_factory, spy_open):
    store = store_factory("lossless", n=2)
    ZarrReader(store.path).read("video_001", ["bert", "hubert", "au"])
    opened = [p for p in spy_open if p != "zarr.json"]  # the store's root document, opened writing and reading
    assert {p.split("/")[1] for p in opened} == {"zarr.json", "bert", "hubert", "au"}


def test_zero_copy_gives_read_only_views_of_raw_one_chunk_arrays(store_factory):
    store = store_factory("raw", n=1)
    record = ZarrReader(store.path, zero_copy=True).read("video_000")
    assert record.arrays["clip"].flags.writeable  # 5 x 1408 float32 is below the mmap threshold: a plain read
    add_odd_videos(store)
    long = ZarrReader(store.path, zero_copy=True).read("long").arrays["video_mae"]  # 1300 x 1024, memory-mapped
    assert not long.flags.writeable
    assert_same(np.array(long), zarr_ref(store.path, "long", "video_mae"))
    copied = ZarrReader(store.path).read("long", max_rows={"video_mae": 700}).arrays["video_mae"]  # the default
    assert copied.flags.writeable and copied.flags.owndata
    assert_same(copied, long[:700])
    chunk = store.path / "long" / "hubert" / "c" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[10] ^= 1
    chunk.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="chunk hubert/c/0/0: checksum mismatch"):
        ZarrReader(store.path, zero_copy=True).read("long", ["hubert"])


def test_a_chunk_verified_once_is_not_hashed_again(store_factory, monkeypatch):
    store = store_factory("float16", n=1)
    reader = ZarrReader(store.path)
    reader.read("video_000")
    calls = []
    real = chunk_files_module.crc32c
    monkeypatch.setattr(chunk_files_module, "crc32c", lambda *a: calls.append(1) or real(*a))
    reader.read("video_000")
    assert calls == []
    chunk = store.path / "video_000" / "bert" / "c" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[0] ^= 1
    chunk.write_bytes(bytes(data))  # a rewritten file is a new file: checked again
    with pytest.raises(ChecksumError):
        reader.read("video_000", ["bert"])


def test_special_files_and_links_are_never_read(store_factory, tmp_path):
    store = store_factory("float16", n=3)
    chunk = store.path / "video_000" / "bert" / "c" / "0" / "0"
    chunk.unlink()
    os.mkfifo(chunk)  # would block a plain open() forever
    with pytest.raises(CorruptStoreError, match="chunk bert/c/0/0: the chunk is not a regular file"):
        ZarrReader(store.path).read("video_000", ["bert"])
    outside = tmp_path / "outside"
    outside.write_bytes((store.path / "video_001" / "bert" / "c" / "0" / "0").read_bytes())
    target = store.path / "video_001" / "bert" / "c" / "0" / "0"
    target.unlink()
    target.symlink_to(outside)
    with pytest.raises(CorruptStoreError, match="chunk bert/c/0/0: the chunk is a symbolic link"):
        ZarrReader(store.path).read("video_001", ["bert"])
    hubert = store.path / "video_002" / "hubert"
    shutil.move(hubert, tmp_path / "hubert")
    hubert.symlink_to(tmp_path / "hubert")
    with pytest.raises(CorruptStoreError, match="chunk hubert/c/0/0: the chunk is a symbolic link"):
        ZarrReader(store.path).read("video_002", ["hubert"])
    (store.path / "video_002" / "clip" / "c" / "0" / "0").unlink()
    os.symlink("/dev/zero", store.path / "video_002" / "clip" / "c" / "0" / "0")
    with pytest.raises(CorruptStoreError, match="symbolic link"):
        ZarrReader(store.path).read("video_002", ["clip"])


def test_codecs_herostore_never_writes_are_refused(store_factory):
    from zarr.codecs import GzipCodec

    store = store_factory("lossless", n=1)
    path = store.path / "odd"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        group = zarr.create_group(zarr.storage.LocalStore(path), zarr_format=3, attributes={
            "transcript": "", "herostore": {"modalities": ["bert"], "deviations": []}})
        group.create_array("bert", shape=(4, 768), dtype="float32", compressors=[GzipCodec()])[...] = 1
        zarr.consolidate_metadata(zarr.storage.LocalStore(path))
    (path / "zarr.json").write_bytes(seal_video(json.loads((path / "zarr.json").read_text()), "odd", {"bert": [0]}))
    with pytest.raises(CorruptStoreError, match=r"video 'odd', modality 'bert': array metadata herostore does "
                                                r"not write .*codecs \['bytes', 'gzip'\]"):
        ZarrReader(store.path).read("odd")


def test_listing_stats_and_preset(store_factory):
    store = store_factory("bitround:5", n=3)
    (store.path / ".tmp" / "123-scratch").mkdir(parents=True)
    (store.path / "stray").mkdir()
    reader = ZarrReader(store.path)
    assert reader.video_ids() == ["video_000", "video_001", "video_002"] == store.video_ids()
    assert len(reader) == 3
    assert "video_002" in reader and "stray" not in reader and ".tmp" not in reader
    assert reader.preset_name() == "bitround:5"
    assert reader.stats() is None
    store.update_attrs(stats={"bert": {"mean": [0.5] * 768, "std": [2.0] * 768, "count": 7}})
    stats = ZarrReader(store.path).stats()
    assert stats["bert"]["mean"].dtype == np.float32 and stats["bert"]["mean"].shape == (768,)
    assert stats["bert"]["std"][0] == 2.0 and int(stats["bert"]["count"]) == 7
    with pytest.raises(VideoNotFoundError, match=f"{store.path}: no video 'stray'"):
        reader.read("stray")


@pytest.mark.parametrize("version, error", [(99, "format version 99; this herostore reads versions 1, 2, 3"),
                                            (None, "format version None")])
def test_unknown_format_versions_are_refused_by_every_reader(store_factory, version, error):
    store = store_factory("float16", n=1)
    path = store.path / "zarr.json"
    document = json.loads(path.read_text())
    document["attributes"]["herostore"]["format_version"] = version
    path.write_text(json.dumps(document))
    for fast in (True, False):
        with pytest.raises(StoreError, match=error):
            open_reader(store.path, fast=fast)
    with pytest.raises(StoreError, match=error):
        FeatureStore(store.path)


def test_not_a_store_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="not a herostore store"):
        ZarrReader(tmp_path)
    zarr.create_group(str(tmp_path / "plain"), zarr_format=3)
    with pytest.raises(StoreError, match="a Zarr group, but not a herostore store"):
        open_reader(tmp_path / "plain")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "zarr.json").write_text("{not json")
    with pytest.raises(StoreError, match="unreadable Zarr metadata"):
        open_reader(tmp_path / "broken")


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
    found = "no 'transcript' attribute" if value is None else "a transcript of type int"
    with pytest.raises(CorruptStoreError, match=f"video 'video_000': zarr.json has {found}; expected the transcript"):
        ZarrReader(store.path, fast=fast).read("video_000")


def test_store_with_copied_video_dir(store_factory):
    """A video folder copied into another store is read there (paths are relative); under another id it is not
    that video."""
    src = store_factory("float16", n=1, name="a")
    dst = store_factory("float16", n=0, name="b")
    shutil.copytree(src.path / "video_000", dst.path / "video_000")
    shutil.copytree(src.path / "video_000", dst.path / "moved")
    with pytest.raises(CorruptStoreError, match="belongs to video 'video_000'"):
        ZarrReader(dst.path).read("moved")
    a, b = ZarrReader(src.path).read("video_000"), ZarrReader(dst.path).read("video_000")
    for key in a.arrays:
        assert_same(a.arrays[key], b.arrays[key])


# -- the npy reader ----------------------------------------------------------------------------------------------


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


# -- pickling, fork, spawn ---------------------------------------------------------------------------------------


def _child_read(reader, video_id):
    record = reader.read(video_id)
    return os.getpid(), {k: np.array(v) for k, v in record.arrays.items()}, record.transcript


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_readers_pickle_and_work_in_child_processes(store_factory, npy_dataset, method):
    store = store_factory("float16", n=2)
    add_odd_videos(store)
    readers = [ZarrReader(store.path), ZarrReader(store.path, fast=False), NpyReader(npy_dataset / "features")]
    video = {"zarr": "long", "npy": "video_001"}
    expected = [reader.read(video[reader.format]) for reader in readers]  # the parent reads first
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


def test_a_failing_chunk_waits_for_the_other_threads_before_files_are_closed(store_factory, monkeypatch):
    import time

    monkeypatch.setattr(chunk_files_module, "PARALLEL_MIN_BYTES", 0)
    store = store_factory("float16-lz4", n=0)
    add_odd_videos(store)
    still_open = []
    real = chunk_files_module.fill_one

    def slow_or_failing(job, fd, where, verified):
        if job.plan.name == "video_mae":  # the largest: the first one waited for
            raise CorruptStoreError(f"{where(job)}: fails first")
        time.sleep(0.2)
        still_open.append(os.fstat(fd) is not None)  # raises if the caller closed it meanwhile
        return real(job, fd, where, verified)

    monkeypatch.setattr(chunk_files_module, "fill_one", slow_or_failing)
    with pytest.raises(CorruptStoreError, match="fails first"):
        ZarrReader(store.path, threads=3).read("long")
    assert still_open and all(still_open)
