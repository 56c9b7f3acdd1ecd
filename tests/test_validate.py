import json
import re
import shutil

import numpy as np
import pytest

from herostore import FeatureStore, StoreError
from herostore.convert import import_npy
from herostore.info import render_info, store_info
from herostore.layout import seal_video
from herostore.stats import compute_stats
from herostore.testing.features import sample_features
from herostore.validate import validate_dataset


@pytest.fixture
def zarr_dataset(npy_dataset, tmp_path):
    import_npy(npy_dataset, tmp_path / "z", preset="lossless", workers=1, progress=False)
    return tmp_path / "z"


def test_clean_datasets_pass_in_both_formats(npy_dataset, zarr_dataset):
    for root, fmt in [(npy_dataset, "npy"), (zarr_dataset, "zarr")]:
        report = validate_dataset(root)
        assert report.ok, report.render()
        assert (report.format, report.videos, report.labels) == (fmt, 4, 4)
        assert "OK" in report.render() and json.loads(report.to_json())["ok"] is True


def _messages(report):
    return [f"{f.where} [{f.key}] {f.message}" for f in report.errors]


def _edit_labels(root, edit):
    labels = json.loads((root / "labels.json").read_text())
    edit(labels)
    (root / "labels.json").write_text(json.dumps(labels))


@pytest.mark.parametrize(
    "defect, expected",
    [
        (lambda r: _edit_labels(r, lambda L: L.append({"video_id": "ghost", "emotion": "sad"})),
         "ghost [None] labelled in labels.json but has no features"),
        (lambda r: _edit_labels(r, lambda L: L.pop()), "video_003 [None] has features but no entry in labels.json"),
        (lambda r: _edit_labels(r, lambda L: L.append(dict(L[0]))), "video_id 'video_000' appears 2 times"),
        (lambda r: _edit_labels(r, lambda L: L[1].update(emotion="bored")), "label 'bored' is not in classes.json"),
        (lambda r: _edit_labels(r, lambda L: L[1].update(emotion=3)), "emotion 3, expected a non-empty string"),
        (lambda r: _edit_labels(r, lambda L: L[0].update(text=["a"])), "text is list, expected a string"),
        (lambda r: _edit_labels(r, lambda L: L.append("video_9")), "entry is str, expected an object"),
        (lambda r: (r / "labels.json").write_text('[{"video_id": "a",}]'), "malformed JSON at line 1 column 19"),
        (lambda r: (r / "labels.json").write_text('{"video_id": "a"}'), "top level is dict, expected a JSON array"),
        (lambda r: (r / "labels.json").unlink(), "labels.json [None] missing"),
        (lambda r: (r / "classes.json").write_text('["a", 1]'), "expected a JSON array of class-name strings"),
    ],
)
def test_label_defects_are_caught(npy_dataset, defect, expected):
    defect(npy_dataset)
    report = validate_dataset(npy_dataset)
    assert not report.ok
    assert any(expected in m for m in _messages(report)), _messages(report)


def _write_variant(root, name, **changes):
    features = sample_features(7)
    features.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del features[key]
    np.save(root / "features" / f"{name}.npy", features, allow_pickle=True)
    _edit_labels(root, lambda L: L.append({"video_id": name, "emotion": "sad"}))


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"hubert": None}, "missing required key 'hubert'"),
        ({"bert": np.zeros((3, 512), np.float32)}, "key 'bert' has last dim 512, spec says 768"),
        ({"clip": np.zeros((1, 5, 1408), np.float32)}, "key 'clip' has a leading batch axis"),
        ({"clip": np.zeros((4, 5, 1408), np.float32)}, "key 'clip' is 3-D [4, 5, 1408]"),
        ({"hubert": np.zeros((3, 1024))}, "key 'hubert' has dtype float64, spec says float32"),
        ({"transcript": b"bytes"}, "key 'transcript' must be str, found bytes"),
        ({"au": np.full((2, 1024), np.nan, np.float32)}, "[au] 2048 NaN and 0 Inf values"),
        ({"bert": np.full((2, 768), np.inf, np.float32)}, "[bert] 0 NaN and 1536 Inf values"),
    ],
)
def test_feature_defects_are_caught_in_npy(npy_dataset, changes, expected):
    _write_variant(npy_dataset, "odd", **changes)
    report = validate_dataset(npy_dataset)
    assert any(expected in m and "odd" in m for m in _messages(report)), _messages(report)


def test_unsafe_pickle_is_reported(npy_dataset):
    np.save(npy_dataset / "features" / "evil.npy", {"video_mae": print}, allow_pickle=True)
    _edit_labels(npy_dataset, lambda L: L.append({"video_id": "evil", "emotion": "sad"}))
    assert any("refusing to unpickle global 'builtins.print'" in m for m in _messages(validate_dataset(npy_dataset)))


def test_feature_defects_are_caught_in_a_store(zarr_dataset):
    store = FeatureStore(zarr_dataset / "features")
    odd = sample_features(3)
    odd["bert"] = np.zeros((3, 512), np.float32)
    odd["hubert"][0, :4] = np.nan
    store.write_video("odd", odd)
    _edit_labels(zarr_dataset, lambda L: L.append({"video_id": "odd", "emotion": "sad"}))
    messages = _messages(validate_dataset(zarr_dataset))
    assert "odd [bert] shape [3, 512], expected [T, 768] with T >= 1" in messages
    assert "odd [hubert] 4 NaN and 0 Inf values" in messages
    assert len(messages) == 2


def test_info_reports_sizes_ratio_and_lengths(zarr_dataset):
    info = store_info(zarr_dataset)
    assert info["videos"] == 4 and info["preset"]["name"] == "lossless"
    hubert = info["modalities"]["hubert"]
    assert hubert["videos"] == 4 and hubert["float32_bytes"] == sum(40 + 3 * i for i in range(4)) * 1024 * 4
    assert hubert["length"] == {"min": 40, "median": 44.5, "mean": 44.5, "max": 49}
    assert info["modalities"]["au"]["videos"] == 2
    assert 0 < hubert["bytes_on_disk"] and 0 < info["ratio_vs_float32"]
    text = render_info(info)
    assert "videos  4" in text and "hubert" in text


def _numpy_stats(store, modality):
    rows = [store.read_video(v).get(modality) for v in store.video_ids()]
    rows = np.concatenate([r.reshape(-1, r.shape[-1]) for r in rows if r is not None]).astype(np.float64)
    finite = rows[np.isfinite(rows).all(axis=1)]
    return finite.mean(0), finite.std(0), len(finite)


def test_stats_are_computed_and_recorded(zarr_dataset):
    stats = compute_stats(zarr_dataset / "features", workers=1, progress=False)
    store = FeatureStore(zarr_dataset / "features")
    for modality in ("video_mae", "clip", "hubert", "bert", "au"):
        mean, std, count = _numpy_stats(store, modality)
        np.testing.assert_allclose(stats[modality]["mean"], mean, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(stats[modality]["std"], std, rtol=1e-6)
        assert stats[modality]["count"] == count and stats[modality]["skipped_rows"] == 0
    assert store.attrs["stats"]["au"]["count"] == 17 + 19
    assert store.attrs["stats"] == json.loads(json.dumps(stats))


def test_stats_stream_blocks_and_equal_numpy_to_1e6_on_offset_data(tmp_path):
    """Values far from zero (mean 1000, std 0.01) defeat a float32 or sum-of-squares reduction; 7 blocks merged in
    float64 equal numpy over all rows at once, in this process and on a local cluster of two processes."""
    store = FeatureStore.create(tmp_path / "features", "raw")
    rng = np.random.default_rng(3)
    for i in range(12):
        features = sample_features(i, lengths=(4, 2, 30 + 7 * i, 5))
        features["hubert"] = (1000 + 0.01 * rng.standard_normal((30 + 7 * i, 1024))).astype(np.float32)
        store.write_video(f"v{i:02d}", features)
    mean, std, count = _numpy_stats(store, "hubert")
    for workers in (1, 2):
        stats = compute_stats(store.path, workers=workers, progress=False, block_bytes=80 * 1024 * 4)
        np.testing.assert_allclose(stats["hubert"]["mean"], mean, rtol=1e-6)
        np.testing.assert_allclose(stats["hubert"]["std"], std, rtol=1e-6)
        assert stats["hubert"]["count"] == count == sum(30 + 7 * i for i in range(12))


def test_rows_with_nan_or_inf_are_left_out_counted_and_named(tmp_path, capsys):
    """A NaN in one video once made every statistic NaN (and the root zarr.json invalid JSON): now its rows are
    left out and said so, the stored values are finite JSON, and normalised features stay finite."""
    import torch

    from herostore.cli import main
    from herostore.dataset import HeroDataset

    root = tmp_path / "root"
    store = FeatureStore.create(root / "features", "lossless")
    labels = []
    for i in range(4):
        features = sample_features(i, lengths=(4, 2, 20, 5))
        if i == 2:
            features["hubert"][3, 5], features["hubert"][7, 0], features["hubert"][8, 1023] = np.nan, np.inf, -np.inf
        store.write_video(f"video_{i}", features)
        labels.append({"video_id": f"video_{i}", "emotion": "happy"})
    (root / "labels.json").write_text(json.dumps(labels))
    (root / "classes.json").write_text(json.dumps(["happy"]))
    assert main(["stats", str(root), "--workers", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "hubert: 77 rows, 1024 dims; 3 rows with NaN/Inf left out, in 1 video(s): video_2" in out
    assert "bert: 20 rows, 768 dims\n" in out
    document = json.loads((root / "features" / "zarr.json").read_text(), parse_constant=pytest.fail)
    stats = document["attributes"]["herostore"]["stats"]
    assert (stats["hubert"]["skipped_rows"], stats["hubert"]["skipped_ids"]) == (3, ["video_2"])
    mean, std, count = _numpy_stats(store, "hubert")
    assert count == 77
    np.testing.assert_allclose(stats["hubert"]["mean"], mean, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(stats["hubert"]["std"], std, rtol=1e-6)
    sample = HeroDataset(root / "features", root / "labels.json", modalities=["hubert"], normalize=True,
                         dtype=torch.float32)[0]["hubert"]
    assert torch.isfinite(sample).all()
    with pytest.raises(StoreError, match=r"modality 'hubert' has 3 row\(s\) with NaN or Inf in 1 video\(s\): "
                                         r"video_2"):
        compute_stats(store.path, workers=1, progress=False, nonfinite="error")
    assert main(["stats", str(root), "--nonfinite", "error", "--workers", "1", "--quiet"]) == 2
    assert "video_2" in capsys.readouterr().err


def test_stats_name_an_unreadable_video(zarr_dataset):
    store_path = zarr_dataset / "features"
    (store_path / "video_002" / "hubert" / "c" / "0" / "0").unlink()
    with pytest.raises(StoreError, match=r"1 video\(s\) unreadable for 'hubert', first video_002: .*video_002.*"
                                         r"hubert"):
        compute_stats(store_path, workers=1, progress=False)
    assert "stats" not in FeatureStore(store_path).attrs


def _edit_video_meta(store_path, video_id, edit):
    path = store_path / video_id / "zarr.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def _drop_array(store_path, video_id, key):
    shutil.rmtree(store_path / video_id / key)

    path = store_path / video_id / "zarr.json"
    meta = json.loads(path.read_text())
    info = meta["attributes"]["herostore"]
    del meta["consolidated_metadata"]["metadata"][key]
    info["modalities"].remove(key)
    del info["chunks"][key]
    path.write_bytes(seal_video(meta, video_id, info["chunks"]))  # a video written without the array


def _add_float64_video(store_path, video_id):
    wide = sample_features(5)
    wide["hubert"] = wide["hubert"].astype(np.float64)  # the lossless preset keeps the source dtype
    FeatureStore(store_path).write_video(video_id, wide)
    _edit_labels(store_path.parent, lambda L: L.append({"video_id": video_id, "emotion": "sad"}))


@pytest.mark.parametrize(
    "defect, expected",
    [
        (lambda s: _drop_array(s, "video_001", "bert"),
         "video_001 [bert] missing required array (expected [T, 768])"),
        (lambda s: _add_float64_video(s, "wide"),
         "wide [hubert] dtype float64, expected float32 (preset lossless)"),
        (lambda s: _edit_video_meta(s, "video_002", lambda m: m["attributes"].update(transcript=7)),
         ("video_002 [None] unreadable video: .*features: video 'video_002': zarr.json has a transcript of type int; "
          "expected the transcript as a string")),
        (lambda s: _edit_video_meta(s, "video_002", lambda m: m["attributes"].pop("transcript")),
         "video_002 [None] unreadable video: .*features: video 'video_002': zarr.json has no 'transcript' attribute"),
        (lambda s: (s / "stray").mkdir(),
         "stray [None] a folder in the store without zarr.json, so not a video group"),
        (lambda s: _edit_video_meta(s, "video_003", lambda m: m["attributes"].pop("herostore")),
         ("video_003 [None] unreadable video: .*features: video 'video_003': zarr.json has no 'herostore' "
          "attribute")),
    ],
)
def test_feature_defects_in_a_store_are_reported(zarr_dataset, defect, expected):
    defect(zarr_dataset / "features")
    report = validate_dataset(zarr_dataset)
    messages = _messages(report)
    assert not report.ok
    assert len(messages) == 1 and re.match(re.escape(expected).replace(r"\.\*", ".*"), messages[0]), messages
