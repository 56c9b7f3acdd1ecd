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


def test_every_release_of_format_1_is_kept():
    assert set(V1) == {"lossless", "float16", "float16-lz4", "bitround", "raw", "float16-before-85f5931",
                       "raw-before-85f5931", "lossless-before-8295756"}


@pytest.mark.parametrize("name", V1)
@pytest.mark.parametrize("fast", [True, False])
def test_format_1_reads_bit_exactly(name, fast):
    expected = np.load(GOLDEN / "v1" / f"{name}.expected.npz")
    reader = open_reader(GOLDEN / "v1" / name, fast=fast)
    assert reader.video_ids() == ["video_0", "video_1"]
    assert reader.info.format_version == 1
    for key in expected.files:
        vid, modality = key.split("/")
        record = reader.read(vid, [modality])
        assert record.arrays[modality].dtype == expected[key].dtype
        assert np.array_equal(record.arrays[modality], expected[key]), key
    assert reader.read("video_0").transcript == ""
    assert reader.read("video_1").transcript == "héllo wörld — 你好 🙂"
    assert set(reader.read("video_1").arrays) == {"video_mae", "clip", "hubert", "bert", "au"}


@pytest.mark.parametrize("name", V1)
def test_format_1_takes_new_videos_in_its_own_encoding(name, tmp_path):
    store_path = tmp_path / name
    shutil.copytree(GOLDEN / "v1" / name, store_path)
    before = {p.relative_to(store_path): p.read_bytes() for p in store_path.rglob("*") if p.is_file()}
    recorded = json.loads((store_path / "zarr.json").read_text())["attributes"]["herostore"]["preset"]["name"]
    store = FeatureStore.create(store_path, recorded)  # resume under the name it was written with
    assert store.write_video("video_2", sample_features(2))
    assert store.video_ids() == ["video_0", "video_1", "video_2"]
    after = {p.relative_to(store_path): p.read_bytes() for p in store_path.rglob("*") if p.is_file()}
    assert {k: v for k, v in after.items() if k.parts[0] != "video_2"} == before, "nothing old was touched"
    meta = json.loads((store_path / "video_2" / "zarr.json").read_text())
    for array in meta["consolidated_metadata"]["metadata"].values():
        assert "crc32c" not in [c["name"] for c in array["codecs"]], "a format-1 store gets format-1 videos"
        chunks = array["chunk_grid"]["configuration"]["chunk_shape"][0]
        assert chunks == store.preset.rows_per_chunk(array["shape"][0])
    got = open_reader(store_path).read("video_2", ["bert"]).arrays["bert"]
    np.testing.assert_allclose(got, sample_features(2)["bert"], rtol=1e-2, atol=1e-2)
    (tmp_path / "labels.json").write_text(json.dumps([{"video_id": f"video_{i}", "emotion": "sad"}
                                                      for i in range(3)]))
    shutil.move(store_path, tmp_path / "features")
    assert validate_dataset(tmp_path).ok


def test_old_presets_resume_under_their_names(tmp_path):
    """float16 once meant blosc-lz4 and raw had another description: both stores resume under those names."""
    for name, preset in [("float16-before-85f5931", "float16"), ("raw-before-85f5931", "raw")]:
        shutil.copytree(GOLDEN / "v1" / name, tmp_path / name)
        store = FeatureStore.create(tmp_path / name, preset)
        assert store.preset.name == preset
    with pytest.raises(Exception, match="store exists with preset 'float16'"):
        FeatureStore.create(tmp_path / "float16-before-85f5931", "lossless")
