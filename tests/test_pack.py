"""Packed datasets: ``pack`` and ``unpack`` round trips, standard zip shards, resuming, refusing to overwrite, damage
that is an error naming the file, and one ranged read per sample from an fsspec filesystem. The reads themselves
are also checked by ``TestReaderConformance`` (tests/test_reader.py) through the packed sources."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import make_features

from herostore import ziprecords
from herostore.cli import main
from herostore.cli.pack import parse_size
from herostore.convert import import_npy
from herostore.errors import ArgumentError, ChecksumError, CorruptStoreError, StoreError, VideoNotFoundError
from herostore.layout import FEATURES_DIR
from herostore.locations import open_location
from herostore.locations.packed import PackedDataset
from herostore.pack import pack, plan_pack, unpack
from herostore.packlayout import INDEX, MANIFEST, encode_index
from herostore.read import ZarrReader, open_reader
from herostore.read.engine import crc32c
from herostore.store import FeatureStore

GOLDEN = Path(__file__).parent / "data" / "golden" / "v1"
REPO = Path(__file__).resolve().parents[1]


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_same_reads(a, b) -> None:
    assert a.video_ids() == b.video_ids()
    for vid in a.video_ids():
        x, y = a.read(vid), b.read(vid)
        assert x.transcript == y.transcript and x.notes == y.notes and list(x.arrays) == list(y.arrays)
        for key in x.arrays:
            assert x.arrays[key].dtype == y.arrays[key].dtype and x.arrays[key].shape == y.arrays[key].shape
            assert np.array_equal(x.arrays[key], y.arrays[key], equal_nan=True), (vid, key)


def make_store(root: Path, preset: str = "float16", n: int = 6) -> FeatureStore:
    store = FeatureStore.create(root / FEATURES_DIR, preset)
    for i in range(n):
        store.write_video(f"video_{i:03d}", make_features(i, au=i % 2 == 1, transcript=f"clip {i} — héllo"))
    store.write_video("long", make_features(10, lengths=(1300, 3, 513, 2)), notes={"audio": "missing"})
    return store


def packed(tmp_path: Path, preset: str = "float16", shard_size: int = 300_000, **options) -> tuple[Path, Path]:
    source = tmp_path / "src"
    make_store(source, preset)
    target = tmp_path / "packed"
    assert pack(source, target, shard_size=shard_size, workers=1, progress=False, **options).ok
    return source / FEATURES_DIR, target / FEATURES_DIR


# -- round trips -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["float16", "lossless", "bitround:5"])
def test_pack_reads_as_the_directory_store(tmp_path, preset):
    source, target = packed(tmp_path, preset)
    manifest = json.loads((target / MANIFEST).read_text())
    assert len(manifest["herostore_pack"]["shards"]) > 2, "the small shard size spreads the videos"
    assert sorted(os.listdir(target)) == sorted([MANIFEST, INDEX] + [s["name"] for s in
                                                                    manifest["herostore_pack"]["shards"]])
    reader = open_reader(target)
    assert reader.location.kind == "packed" and reader.preset_name() == preset
    assert_same_reads(open_reader(source), reader)
    assert_same_reads(open_reader(source), open_reader(target, fast=False))  # zarr-python over the packed members
    record = reader.read("long", ["hubert", "bert"], max_rows={"hubert": 5})
    assert list(record.arrays) == ["hubert", "bert"] and record.arrays["hubert"].shape == (5, 1024)
    assert "long" in reader and "nope" not in reader and len(reader) == 7
    with pytest.raises(VideoNotFoundError, match=f"{target}: no video 'nope'"):
        reader.read("nope")
    info = FeatureStore(target)  # info, stats, export read a packed dataset like a store
    assert info.video_ids() == reader.video_ids() and info.shapes("long")["video_mae"] == (1300, 1024)
    assert info.location.sizes("video_001") == {k: len(v) for k, v in files_of(source / "video_001").items()}
    with pytest.raises(StoreError, match="a packed dataset is read-only; unpack it"):
        info.write_video("new", make_features(1))


def test_zero_copy_maps_the_shard(tmp_path):
    source, target = packed(tmp_path, "raw")
    array = ZarrReader(target, zero_copy=True).read("long").arrays["video_mae"]
    assert not array.flags.writeable  # a read-only view of the memory-mapped shard
    assert np.array_equal(array, open_reader(source).read("long").arrays["video_mae"])


def test_a_cold_range_is_read_in_pieces(tmp_path, monkeypatch):
    from herostore.locations import shards

    source, target = packed(tmp_path, "float16")
    pieces = []
    real = os.preadv

    def spy(fd, buffers, offset, *flags):
        if not flags:
            pieces.append((offset, sum(len(b) for b in buffers)))
        return real(fd, buffers, offset, *flags)

    monkeypatch.setattr(shards, "_cached", lambda fd, offset, length: False)
    monkeypatch.setattr(shards, "_PIECE", 4096)
    monkeypatch.setattr(shards.os, "preadv", spy)
    reader = open_reader(target)
    _, offset, length = reader.location.index().find("long")
    record = reader.read("long")
    assert pieces[0] == (offset, 4096) and len(pieces) == -(-length // 4096)
    assert all(b == a + 4096 for (a, _), (b, _) in itertools.pairwise(pieces)), "sequential pieces over the range"
    for key, array in open_reader(source).read("long").arrays.items():
        assert np.array_equal(record.arrays[key], array)


def test_hero_dataset_batches_equal_for_directory_packed_and_npy(npy_dataset, tmp_path):
    import torch

    from herostore.dataset import HeroDataset, collate

    assert import_npy(npy_dataset, tmp_path / "store", preset="lossless", workers=1, progress=False).ok
    assert pack(tmp_path / "store", tmp_path / "packed", shard_size=100_000, workers=1, progress=False).ok
    assert (tmp_path / "packed" / "labels.json").read_bytes() == (npy_dataset / "labels.json").read_bytes()
    batches = []
    for root in (npy_dataset, tmp_path / "store", tmp_path / "packed"):
        dataset = HeroDataset(root / "features", root / "labels.json")
        batches.append(collate([dataset[i] for i in range(len(dataset))]))
    assert HeroDataset(tmp_path / "packed" / "features", npy_dataset / "labels.json").format == "zarr"
    for other in batches[1:]:
        assert other.keys() == batches[0].keys()
        for key, value in batches[0].items():
            if isinstance(value, torch.Tensor):
                assert value.dtype == other[key].dtype and torch.equal(value, other[key]), key
            else:
                assert value == other[key], key


def test_dataloader_workers_read_a_packed_dataset(npy_dataset, tmp_path):
    from torch.utils.data import DataLoader

    from herostore.dataset import HeroDataset, collate

    assert import_npy(npy_dataset, tmp_path / "store", workers=1, progress=False).ok
    assert pack(tmp_path / "store", tmp_path / "packed", workers=1, progress=False).ok
    dataset = HeroDataset(tmp_path / "packed" / "features", npy_dataset / "labels.json")
    expected = collate([dataset[i] for i in range(len(dataset))])  # the parent maps the shard first
    loader = DataLoader(dataset, batch_size=len(dataset), num_workers=2, collate_fn=collate,
                        multiprocessing_context="fork")
    (batch,) = list(loader)
    assert batch["video_id"] == expected["video_id"]
    for key in ("video_mae", "clip", "hubert", "bert", "au", "label"):
        assert batch[key].equal(expected[key]), key


def test_validate_info_and_export_read_a_packed_dataset(npy_dataset, tmp_path):
    from herostore.convert import export_npy
    from herostore.info import store_info
    from herostore.validate import validate_dataset

    assert import_npy(npy_dataset, tmp_path / "store", workers=1, progress=False).ok
    assert pack(tmp_path / "store", tmp_path / "packed", workers=1, progress=False).ok
    report = validate_dataset(tmp_path / "packed")
    assert report.ok and report.format == "zarr" and report.videos == 4 and report.labels == 4
    info, packed_info = store_info(tmp_path / "store"), store_info(tmp_path / "packed")
    assert {k: v for k, v in packed_info.items() if k != "store"} == {k: v for k, v in info.items() if k != "store"}
    for root in ("store", "packed"):
        assert export_npy(tmp_path / root, tmp_path / f"{root}-npy", workers=1, progress=False).ok
    assert files_of(tmp_path / "packed-npy") == files_of(tmp_path / "store-npy")
    shard = tmp_path / "packed" / FEATURES_DIR / "shard-00000.zip"
    with zipfile.ZipFile(shard) as zf:
        chunk = zf.getinfo("video_002/hubert/c/0/0")
    data = bytearray(shard.read_bytes())
    data[chunk.header_offset + 30 + len(chunk.filename) + 3] ^= 1
    shard.write_bytes(bytes(data))
    report = validate_dataset(tmp_path / "packed")
    assert not report.ok and [f.where for f in report.errors] == ["video_002"]
    assert "chunk hubert/c/0/0: checksum mismatch" in report.errors[0].message


def test_shards_are_standard_zip_stores(tmp_path):
    source, target = packed(tmp_path, "float16-lz4")
    root_doc = (source / "zarr.json").read_bytes()
    seen = []
    for shard in sorted(target.glob("shard-*.zip")):
        with zipfile.ZipFile(shard) as zf:
            assert zf.testzip() is None  # every member's CRC-32
            infos = zf.infolist()
            assert all(i.compress_type == zipfile.ZIP_STORED and not i.flag_bits & 0x08 for i in infos)
            names = [i.filename for i in infos]
            assert names[0] == "zarr.json" and zf.read("zarr.json") == root_doc
            videos = [n.split("/")[0] for n in names[1:]]
            assert videos == sorted(videos), "each video's members are contiguous"
            for vid in dict.fromkeys(videos):
                members = [n for n in names if n.startswith(f"{vid}/")]
                assert members[0] == f"{vid}/zarr.json"
                assert {m.removeprefix(f"{vid}/"): zf.read(m) for m in members} == files_of(source / vid)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            group = zarr.open_group(zarr.storage.ZipStore(shard, mode="r"), mode="r")
            for vid in dict.fromkeys(videos):
                reference = zarr.open_group(str(source), mode="r")[vid]
                for key in group[vid].array_keys():
                    assert np.array_equal(group[vid][key][...], reference[key][...])
                assert group[vid].attrs["transcript"] == reference.attrs["transcript"]
        seen += list(dict.fromkeys(videos))
    assert sorted(seen) == open_reader(source).video_ids()


def test_zip64_records_where_needed(tmp_path, monkeypatch):
    """With the ZIP64 threshold lowered, large members and offsets get ZIP64 fields that zip readers accept."""
    monkeypatch.setattr(ziprecords, "ZIP64_LIMIT", 2000)
    source, target = packed(tmp_path, "float16", shard_size=10**9)
    shard = target / "shard-00000.zip"
    data = shard.read_bytes()
    assert data.count(b"PK\x06\x06") == 1 and data.count(b"PK\x06\x07") == 1  # the ZIP64 end records
    with zipfile.ZipFile(shard) as zf:
        assert zf.testzip() is None
        assert zf.read("long/video_mae/c/0/0") == (source / "long/video_mae/c/0/0").read_bytes()
    assert_same_reads(open_reader(source), open_reader(target))


def test_format_1_store_packs_and_unpacks(tmp_path):
    source = tmp_path / "golden"
    shutil.copytree(GOLDEN / "lossless", source)
    assert pack(source, tmp_path / "p", workers=1, progress=False).ok
    assert_same_reads(open_reader(source), open_reader(tmp_path / "p" / "features"))
    assert unpack(tmp_path / "p", tmp_path / "back", workers=1, progress=False).ok
    assert files_of(tmp_path / "back" / "features") == files_of(source)
    shard = tmp_path / "p" / "features" / "shard-00000.zip"
    data = bytearray(shard.read_bytes())
    with zipfile.ZipFile(shard) as zf:
        info = zf.getinfo("video_1/bert/c/0/0")
    data[info.header_offset + 30 + len(info.filename) + 5] ^= 0x10
    shard.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"video 'video_1', modality 'bert', chunk bert/c/0/0: zip CRC-32"):
        open_reader(tmp_path / "p" / "features").read("video_1", ["bert"])  # format 1: the zip CRC is the check


def test_unpack_gives_back_every_file_byte_for_byte(tmp_path):
    source, target = packed(tmp_path, "lossless")
    (tmp_path / "packed" / "labels.json").write_text('[{"video_id": "long", "emotion": "sad"}]')
    report = unpack(tmp_path / "packed", tmp_path / "back", workers=1, progress=False)
    assert report.ok and sum(o.value[0] for o in report.outcomes) == 7
    assert files_of(tmp_path / "back" / FEATURES_DIR) == files_of(source)
    assert (tmp_path / "back" / "labels.json").read_bytes() == (tmp_path / "packed" / "labels.json").read_bytes()
    again = unpack(target, tmp_path / "back", workers=1, progress=False)  # resumes: nothing to do
    assert again.ok and sum(o.value[1] for o in again.outcomes) == 7
    other = tmp_path / "other"
    make_store(other, "float16", n=1)
    with pytest.raises(StoreError, match="a store with another root document is there"):
        unpack(target, other, workers=1, progress=False)
    with pytest.raises(StoreError, match="not a packed dataset"):
        unpack(source, tmp_path / "x", workers=1, progress=False)


def test_an_empty_store_packs_to_one_shard(tmp_path):
    FeatureStore.create(tmp_path / "src" / FEATURES_DIR, "float16")
    assert pack(tmp_path / "src", tmp_path / "p", workers=1, progress=False).ok
    assert open_reader(tmp_path / "p" / FEATURES_DIR).video_ids() == []
    assert unpack(tmp_path / "p", tmp_path / "back", workers=1, progress=False).ok
    assert files_of(tmp_path / "back" / FEATURES_DIR) == files_of(tmp_path / "src" / FEATURES_DIR)


def test_pack_runs_on_dask_workers(tmp_path):
    source = tmp_path / "src"
    make_store(source, "float16", n=3)
    report = pack(source, tmp_path / "p", shard_size=300_000, workers=2, progress=False)
    assert report.ok and len(report.written) > 1
    assert_same_reads(open_reader(source / FEATURES_DIR), open_reader(tmp_path / "p" / FEATURES_DIR))


# -- resuming and overwriting ------------------------------------------------------------------------------------

_KILLED_PACK = """
import sys, time
import herostore.pack as p
real = p._write_member
def slow(out, name, data, pos, directory):
    if out.name.split("/")[-1].startswith(".shard-00002.zip"):
        print("writing shard-00002", flush=True)
        time.sleep(120)
    return real(out, name, data, pos, directory)
p._write_member = slow
p.pack(sys.argv[1], sys.argv[2], shard_size=300_000, workers=1, progress=False)
"""


def test_a_killed_pack_resumes(tmp_path):
    source = tmp_path / "src"
    make_store(source, "float16")
    target = tmp_path / "p" / FEATURES_DIR
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, "-c", _KILLED_PACK, str(source), str(tmp_path / "p")],
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "writing shard-00002"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    left = sorted(os.listdir(target))
    assert left[:1] and left[0].startswith(".shard-00002.zip.") and left[1:] == ["shard-00000.zip", "shard-00001.zip"]
    with pytest.raises(StoreError, match="no such file or folder|neither a herostore store"):
        open_reader(target)  # no manifest: nothing to read yet
    done = {name: os.stat(target / name).st_ino for name in left[1:]}
    report = pack(source, tmp_path / "p", shard_size=300_000, workers=1, progress=False)
    assert report.ok and report.skipped == ["shard-00000.zip", "shard-00001.zip"] and report.written
    assert {name: os.stat(target / name).st_ino for name in done} == done, "complete shards were not rewritten"
    assert not [n for n in os.listdir(target) if n.startswith(".")], "the killed writer's temporary file is gone"
    assert_same_reads(open_reader(source / FEATURES_DIR), open_reader(target))


def test_overwrite_rewrites_only_changed_shards(tmp_path):
    source, target = packed(tmp_path, "float16")
    with pytest.raises(StoreError, match="a packed dataset is already there; pass --overwrite"):
        pack(source, tmp_path / "packed", shard_size=300_000, workers=1, progress=False)
    FeatureStore(source).write_video("video_003", make_features(99, au=True, transcript="clip 3 — héllo"),
                                     overwrite=True)  # same sizes: only its shard changes
    report = pack(source, tmp_path / "packed", shard_size=300_000, overwrite=True, workers=1, progress=False)
    assert report.ok and len(report.written) == 1 and report.skipped
    assert_same_reads(open_reader(source), open_reader(target))
    report = pack(source, tmp_path / "packed", shard_size=10**9, overwrite=True, workers=1, progress=False)
    assert report.written == ["shard-00000.zip"]
    assert sorted(os.listdir(target)) == [INDEX, MANIFEST, "shard-00000.zip"], "shards of the old layout are gone"
    assert_same_reads(open_reader(source), open_reader(target))


def test_pack_refuses_what_it_did_not_write(tmp_path):
    source = tmp_path / "src"
    make_store(source, "float16", n=1)
    (tmp_path / "busy" / FEATURES_DIR).mkdir(parents=True)
    (tmp_path / "busy" / FEATURES_DIR / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match=r"holds 'notes.txt', which pack did not write"):
        pack(source, tmp_path / "busy", overwrite=True, workers=1, progress=False)
    with pytest.raises(StoreError, match="is the source store"):
        pack(source, tmp_path / "src", workers=1, progress=False)
    assert pack(source, tmp_path / "p", workers=1, progress=False).ok
    with pytest.raises(StoreError, match="already a packed dataset"):
        pack(tmp_path / "p", tmp_path / "q", workers=1, progress=False)
    (source / FEATURES_DIR / "half").mkdir()
    with pytest.warns(UserWarning, match=r"1 folder\(s\) without zarr.json .* not packed: 'half'"):
        pack(source, tmp_path / "r", workers=1, progress=False)
    os.symlink(source / FEATURES_DIR / "long" / "zarr.json", source / FEATURES_DIR / "long" / "bert" / "link")
    with pytest.raises(StoreError, match=r"long/bert/link: a symbolic link or special file"):
        pack(source, tmp_path / "s", workers=1, progress=False)
    with pytest.raises(ArgumentError, match="shard_size=0"):
        pack(source, tmp_path / "t", shard_size=0)


def test_a_source_changed_after_planning_fails_its_shard(tmp_path, monkeypatch):
    import herostore.pack as pack_module

    source = tmp_path / "src"
    make_store(source, "float16", n=2)
    real = pack_module.plan_pack

    def plan_then_change(features, shard_size):
        planned = real(features, shard_size)
        FeatureStore(features).write_video("video_001", make_features(50), overwrite=True)
        return planned

    monkeypatch.setattr(pack_module, "plan_pack", plan_then_change)
    report = pack(source, tmp_path / "p", workers=1, progress=False)
    assert not report.ok and "changed since the pack was planned" in next(iter(report.failed.values()))
    assert not (tmp_path / "p" / FEATURES_DIR / MANIFEST).exists()


def test_shards_follow_the_size_limit(tmp_path):
    source = tmp_path / "src"
    make_store(source, "float16")
    root, plans, strays = plan_pack(source / FEATURES_DIR, 300_000)
    assert strays == [] and root == (source / FEATURES_DIR / "zarr.json").read_bytes()
    for plan in plans:
        assert plan.size <= 300_000 or len(plan.videos) == 1  # only a video larger than the limit exceeds it
    assert [vid for plan in plans for vid, _ in plan.videos] == sorted(open_reader(source / FEATURES_DIR).video_ids())
    assert parse_size("2G") == 2 * 10**9 and parse_size("1.5GiB") == 3 * 2**29 and parse_size("500 MB") == 5 * 10**8
    assert parse_size("4096") == 4096
    for bad in ("", "abc", "2X", "-1", "0"):
        with pytest.raises(ArgumentError, match="size"):
            parse_size(bad)


# -- damage ------------------------------------------------------------------------------------------------------


def rewrite_manifest(target: Path, change) -> None:
    document = json.loads((target / MANIFEST).read_text())
    change(document["herostore_pack"])
    (target / MANIFEST).write_text(json.dumps(document))


def rewrite_index(target: Path, entries) -> None:
    data = encode_index(entries)
    (target / INDEX).write_bytes(data)

    def change(pack):
        pack["index"].update(bytes=len(data), crc32c=f"{crc32c(data):08x}")
        pack["videos"] = len(entries)

    rewrite_manifest(target, change)


def index_entries(target: Path) -> dict[str, tuple[int, int, int]]:
    dataset = PackedDataset(target)
    return {vid: dataset.index().find(vid) for vid in dataset.video_ids()}


def test_a_damaged_manifest_is_an_error_naming_it(tmp_path):
    _, target = packed(tmp_path)
    manifest = target / MANIFEST
    good = manifest.read_bytes()
    manifest.write_bytes(good[: len(good) // 2])
    with pytest.raises(CorruptStoreError, match=f"{manifest}: not valid JSON"):
        open_reader(target)
    manifest.write_bytes(good)
    rewrite_manifest(target, lambda p: p.update(version=99))
    with pytest.raises(StoreError, match="pack format version 99; this herostore reads versions 1"):
        open_reader(target)
    for change, error in [(lambda p: p["shards"][0].update(name="../../etc/passwd"), "expected a plain file name"),
                          (lambda p: p["shards"][0].update(bytes=-5), "expected a count >= 0"),
                          (lambda p: p.update(shards=[]), "lists no shards"),
                          (lambda p: p["shards"].append(p["shards"][0]), "a file name is listed twice"),
                          (lambda p: p.pop("index"), "a malformed manifest")]:
        manifest.write_bytes(good)
        rewrite_manifest(target, change)
        with pytest.raises(CorruptStoreError, match=error):
            open_reader(target).video_ids()
    manifest.write_bytes(good)
    rewrite_manifest(target, lambda p: p["shards"][1].update(bytes=p["shards"][1]["bytes"] - 1))
    with pytest.raises(CorruptStoreError, match=r"shard-00001.zip: \d+ bytes, the manifest says \d+ \(the shard was "
                                                r"truncated or replaced\)|points at bytes"):
        reader = open_reader(target)
        for vid in reader.video_ids():
            reader.read(vid)


def test_a_damaged_index_is_an_error_naming_it(tmp_path):
    source, target = packed(tmp_path)
    index = target / INDEX
    good = index.read_bytes()
    flipped = bytearray(good)
    flipped[len(good) - 3] ^= 1
    index.write_bytes(bytes(flipped))
    with pytest.raises(ChecksumError, match=f"{index}: crc32c [0-9a-f]+, the manifest says [0-9a-f]+: the index is"):
        open_reader(target).video_ids()
    index.write_bytes(good[:-10])
    with pytest.raises(CorruptStoreError, match=rf"{index}: {len(good) - 10} bytes, the manifest says {len(good)}"):
        open_reader(target).read("long")
    index.write_bytes(good)
    entries = index_entries(target)
    sizes = {i: os.path.getsize(target / f"shard-{i:05d}.zip") for i in range(len(list(target.glob("shard-*"))))}
    cases = [
        ({**entries, "long": (entries["long"][0], sizes[entries["long"][0]] - 10, 20)}, "points at bytes"),
        ({**entries, "long": (9, 0, 10)}, "names shard 9"),
        ({**entries, "video_001": entries["video_002"]}, "the index points at member 'video_002/zarr.json'"),
        ({**entries, "long": (entries["long"][0], entries["long"][1] + 7, entries["long"][2] - 7)},
         "expected a zip local header"),
        ({**entries, "long": (entries["long"][0], entries["long"][1], entries["long"][2] - 7)}, "runs past the end"),
    ]
    for crafted, error in cases:
        rewrite_index(target, [(vid, *entry) for vid, entry in crafted.items()])
        with pytest.raises(CorruptStoreError, match=error):
            reader = open_reader(target)
            for vid in reader.video_ids():
                reader.read(vid)
    rewrite_index(target, [(vid, *entry) for vid, entry in entries.items()])
    assert_same_reads(open_reader(source), open_reader(target))  # the rewritten index is the original one


def test_a_damaged_shard_is_an_error_naming_it(tmp_path):
    _, target = packed(tmp_path)
    dataset = PackedDataset(target)
    shard = target / dataset.shard_of("long")
    good = shard.read_bytes()
    with zipfile.ZipFile(shard) as zf:
        doc, chunk = zf.getinfo("long/zarr.json"), zf.getinfo("long/hubert/c/0/0")
    shard.write_bytes(good[:-1])
    with pytest.raises(CorruptStoreError, match=rf"{shard}: {len(good) - 1} bytes, the manifest says {len(good)}"):
        open_reader(target).read("long")
    for offset, error in [(doc.header_offset + 30 + len(doc.filename) + 10, r"video 'long': zarr.json: zip CRC-32"),
                          (chunk.header_offset + 30 + len(chunk.filename) + 99,
                           "chunk hubert/c/0/0: checksum mismatch"),
                          (chunk.header_offset + 1, "expected a zip local header"),
                          (chunk.header_offset + 8, "flags .* method"),
                          (chunk.header_offset + 20, "runs past the end|stores \\d+ bytes for"),
                          (chunk.header_offset + 26, "run past the end|not UTF-8|expected a zip local header")]:
        data = bytearray(good)
        data[offset] ^= 0x7F
        shard.write_bytes(bytes(data))
        with pytest.raises(CorruptStoreError, match=error) as info:
            open_reader(target).read("long")
        assert str(shard) in str(info.value) or "video 'long'" in str(info.value)
    shard.unlink()
    with pytest.raises(CorruptStoreError, match=f"{shard}: the shard is missing"):
        open_reader(target).read("long")
    os.mkfifo(shard)  # would block a plain open() forever
    with pytest.raises(CorruptStoreError, match=f"{shard}: not a regular file"):
        open_reader(target).read("long")


def test_random_damage_never_gives_wrong_data(tmp_path):
    """Single bytes changed anywhere in the index or a shard: every read gives the original data or an error."""
    source, target = packed(tmp_path, "float16-lz4")
    expected = {vid: open_reader(source).read(vid) for vid in open_reader(source).video_ids()}
    files = [target / INDEX] + sorted(target.glob("shard-*.zip"))
    rng = np.random.default_rng(3)
    for trial in range(60):
        path = files[trial % len(files)]
        good = path.read_bytes()
        data = bytearray(good)
        data[int(rng.integers(len(data)))] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(data))
        try:
            reader = open_reader(target)
            for vid in reader.video_ids():
                try:
                    record = reader.read(vid)
                except (CorruptStoreError, VideoNotFoundError):
                    continue
                for key, array in expected[vid].arrays.items():
                    assert np.array_equal(record.arrays[key], array), (path.name, vid, key)
                assert record.transcript == expected[vid].transcript
        except CorruptStoreError:
            pass
        finally:
            path.write_bytes(good)


# -- object storage ----------------------------------------------------------------------------------------------


@pytest.fixture
def memory_fs():
    import fsspec

    fs = fsspec.filesystem("memory")
    yield fs
    fs.store.clear()
    fs.pseudo_dirs.clear()
    fs.pseudo_dirs.append("")


def test_remote_packed_reads_one_range_per_sample(tmp_path, memory_fs, monkeypatch):
    from fsspec.implementations.memory import MemoryFileSystem

    source, target = packed(tmp_path, "float16")
    memory_fs.put(str(target), "/bucket/packed", recursive=True)
    requests: list[tuple] = []
    for method in ("cat_file", "cat", "open", "info", "ls", "find", "exists", "isfile"):
        real = getattr(MemoryFileSystem, method)

        def counting(self, path, *args, _real=real, _method=method, **kwargs):
            requests.append((_method, str(path), kwargs.get("start", args[0] if args else None)))
            return _real(self, path, *args, **kwargs)

        monkeypatch.setattr(MemoryFileSystem, method, counting)
    reader = open_reader("memory://bucket/packed")
    assert isinstance(reader.location, PackedDataset)
    assert len(reader.video_ids()) == 7
    assert [r[1].rsplit("/", 1)[-1] for r in requests] == [MANIFEST, MANIFEST, INDEX]  # is_packed, manifest, index
    local = open_reader(source)
    for modalities in (["hubert", "bert"], None):
        for vid in reader.video_ids():
            requests.clear()
            record = reader.read(vid, modalities)
            assert [r[0] for r in requests] == ["cat_file"], f"{vid}: {requests}"
            shard, offset, _ = reader.location.index().find(vid)
            assert requests[0][1].endswith(f"shard-{shard:05d}.zip") and requests[0][2] == offset
            for key, array in local.read(vid, modalities).arrays.items():
                assert np.array_equal(record.arrays[key], array)
    requests.clear()
    reader.read(vid, ["bert"])
    assert requests == [], "the video read last is kept: reading it again costs no request"
    memory_fs.rm("/bucket/packed/shard-00001.zip")
    with pytest.raises(CorruptStoreError, match="memory://bucket/packed/shard-00001.zip: the shard is missing"):
        for vid in reader.video_ids():
            reader.read(vid)
    assert open_location("memory://bucket/nothing-here").kind == "directory"


def test_a_batch_from_a_remote_packed_dataset_fetches_its_videos_together(tmp_path, memory_fs, monkeypatch):
    """One ranged request per video of the batch, all sent in one call, each range fetched once."""
    import torch
    from fsspec.implementations.memory import MemoryFileSystem

    from herostore import HeroDataset, collate

    source, target = packed(tmp_path, "float16")
    memory_fs.put(str(target), "/bucket/packed", recursive=True)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps([{"video_id": v, "emotion": "sad"} for v in open_reader(source).video_ids()]))
    calls: list[tuple] = []
    for method in ("cat_file", "cat_ranges"):
        real = getattr(MemoryFileSystem, method)

        def counting(self, path, *args, _real=real, _method=method, **kwargs):
            calls.append((_method, path, args[0] if args else kwargs.get("start")))
            return _real(self, path, *args, **kwargs)

        monkeypatch.setattr(MemoryFileSystem, method, counting)
    remote = HeroDataset("memory://bucket/packed", labels, classes=["sad"])
    local = HeroDataset(source, labels, classes=["sad"])
    remote.reader.video_ids()  # opening: the manifest and the index
    for indices in ([0, 1, 2, 3], [6, 4], [5]):
        calls.clear()
        batch = collate(remote.__getitems__(indices))
        assert [c[0] for c in calls] == ["cat_ranges"] + ["cat_file"] * len(indices), calls
        offsets = [remote.reader.location.index().find(remote.labels[i].video_id)[1] for i in indices]
        assert [c[2] for c in calls[1:]] == offsets
        expected = collate(local.__getitems__(indices))
        for key, value in expected.items():
            assert torch.equal(batch[key], value) if isinstance(value, torch.Tensor) else batch[key] == value, key


# -- the commands ------------------------------------------------------------------------------------------------


def test_pack_and_unpack_commands(tmp_path, capsys):
    source = tmp_path / "src"
    make_store(source, "float16", n=2)
    (source / "labels.json").write_text('[{"video_id": "long", "emotion": "sad"}]')
    assert main(["pack", str(source), str(tmp_path / "p"), "--shard-size", "300k", "--workers", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "shards written" in out and f"{tmp_path / 'p'}/features" in out
    assert (tmp_path / "p" / "labels.json").is_file()
    assert main(["pack", str(source), str(tmp_path / "p"), "--workers", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("herostore pack: error:") and "pass --overwrite" in err and "\n" not in err
    assert main(["pack", str(source), str(tmp_path / "q"), "--shard-size", "lots"]) == 2
    assert "size 'lots'" in capsys.readouterr().err
    assert main(["unpack", str(tmp_path / "p"), str(tmp_path / "back"), "--workers", "1", "--quiet"]) == 0
    assert "3 videos written, 0 already there" in capsys.readouterr().out
    assert files_of(tmp_path / "back" / FEATURES_DIR) == files_of(source / FEATURES_DIR)
    assert (tmp_path / "back" / "labels.json").read_bytes() == (source / "labels.json").read_bytes()
