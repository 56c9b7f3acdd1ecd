"""Stores written by earlier releases (``tests/data/golden``) open, read bit-exactly and take new videos."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from herostore import FeatureStore, open_reader
from herostore.testing.features import sample_features
from herostore.validate import validate_dataset

GOLDEN = Path(__file__).parent / "data" / "golden"
V1 = sorted(p.name for p in (GOLDEN / "v1").iterdir() if p.is_dir())
V2 = sorted(p.name for p in (GOLDEN / "v2").iterdir() if p.is_dir())
GOLDEN_STORES = [(1, name) for name in V1] + [(2, name) for name in V2]


def test_every_release_of_formats_1_and_2_is_kept():
    assert set(V1) == {"lossless", "float16", "float16-lz4", "bitround", "raw", "float16-before-85f5931",
                       "raw-before-85f5931", "lossless-before-8295756"}
    assert set(V2) == {"lossless", "float16", "float16-lz4", "bitround", "raw", "lossless-chunks"}


@pytest.mark.parametrize("version, name", GOLDEN_STORES)
@pytest.mark.parametrize("fast", [True, False])
def test_older_formats_read_bit_exactly(version, name, fast):
    expected = np.load(GOLDEN / f"v{version}" / f"{name}.expected.npz")
    reader = open_reader(GOLDEN / f"v{version}" / name, fast=fast)
    assert reader.video_ids() == ["video_0", "video_1"]
    assert reader.info.format_version == version
    for key in expected.files:
        vid, modality = key.split("/")
        record = reader.read(vid, [modality])
        assert record.arrays[modality].dtype == expected[key].dtype
        assert np.array_equal(record.arrays[modality], expected[key]), key
    assert reader.read("video_0").transcript == ""
    assert reader.read("video_1").transcript == "héllo wörld — 你好 🙂"
    assert set(reader.read("video_1").arrays) == {"video_mae", "clip", "hubert", "bert", "au"}


@pytest.mark.parametrize("version, name", GOLDEN_STORES)
def test_older_formats_take_new_videos_in_their_own_encoding(version, name, tmp_path):
    store_path = tmp_path / name
    shutil.copytree(GOLDEN / f"v{version}" / name, store_path)
    before = {p.relative_to(store_path): p.read_bytes() for p in store_path.rglob("*") if p.is_file()}
    recorded = json.loads((store_path / "zarr.json").read_text())["attributes"]["herostore"]["preset"]["name"]
    # resume under the name it was written with; a preset changed from its named one resumes by opening
    store = FeatureStore(store_path) if name.endswith("-chunks") else FeatureStore.create(store_path, recorded)
    assert store.write_video("video_2", sample_features(2))
    assert store.video_ids() == ["video_0", "video_1", "video_2"]
    after = {p.relative_to(store_path): p.read_bytes() for p in store_path.rglob("*") if p.is_file()}
    assert {k: v for k, v in after.items() if k.parts[0] != "video_2"} == before, "nothing old was touched"
    meta = json.loads((store_path / "video_2" / "zarr.json").read_text())
    assert "digest" not in meta["attributes"]["herostore"], "an older store gets unsealed videos"
    for array in meta["consolidated_metadata"]["metadata"].values():
        checksummed = "crc32c" in [c["name"] for c in array["codecs"]]
        assert checksummed == (version >= 2), f"a format-{version} store gets format-{version} videos"
        chunks = array["chunk_grid"]["configuration"]["chunk_shape"][0]
        assert chunks == store.preset.rows_per_chunk(array["shape"][0])
    got = open_reader(store_path).read("video_2", ["bert"]).arrays["bert"]
    np.testing.assert_allclose(got, sample_features(2)["bert"], rtol=1e-2, atol=1e-2)
    (tmp_path / "labels.json").write_text(json.dumps([{"video_id": f"video_{i}", "emotion": "sad"}
                                                      for i in range(3)]))
    shutil.move(store_path, tmp_path / "features")
    assert validate_dataset(tmp_path).ok


@pytest.mark.parametrize("name", V2)
def test_format_2_array_metadata_edited_in_its_consolidated_copy_alone_is_an_error(name, tmp_path):
    """Format 2 documents are not sealed: the reader compares each array's own zarr.json with the copy."""
    from herostore.errors import CorruptStoreError

    shutil.copytree(GOLDEN / "v2" / name, tmp_path / name)
    path = tmp_path / name / "video_1" / "zarr.json"
    document = json.loads(path.read_text())
    document["consolidated_metadata"]["metadata"]["hubert"]["codecs"][0]["configuration"] = {"endian": "big"}
    path.write_text(json.dumps(document))
    with pytest.raises(CorruptStoreError, match="hubert/zarr.json disagrees"):
        open_reader(tmp_path / name).read("video_1")


def test_old_presets_resume_under_their_names(tmp_path):
    """float16 once meant blosc-lz4 and raw had another description: both stores resume under those names."""
    for name, preset in [("float16-before-85f5931", "float16"), ("raw-before-85f5931", "raw")]:
        shutil.copytree(GOLDEN / "v1" / name, tmp_path / name)
        store = FeatureStore.create(tmp_path / name, preset)
        assert store.preset.name == preset
    with pytest.raises(Exception, match="store exists with preset 'float16'"):
        FeatureStore.create(tmp_path / "float16-before-85f5931", "lossless")
