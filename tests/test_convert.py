import json

import numpy as np
import pytest

from herostore import FeatureStore, StoreError
from herostore.bulk import Outcome, guarded, map_videos
from herostore.convert import export_npy, import_npy
from herostore.npyfile import save_features
from herostore.testing.features import sample_features


def _assert_same_npy_folders(a, b):
    names = sorted(p.name for p in a.glob("*.npy"))
    assert names == sorted(p.name for p in b.glob("*.npy"))
    for name in names:
        x = np.load(a / name, allow_pickle=True).item()
        y = np.load(b / name, allow_pickle=True).item()
        assert x.keys() == y.keys()
        for key in x:
            if key == "transcript":
                assert type(y[key]) is str and x[key] == y[key]
            else:
                assert y[key].dtype == np.float32 and np.array_equal(x[key], y[key])


def test_lossless_round_trip_is_bit_exact_and_labels_travel(npy_dataset, tmp_path):
    report = import_npy(npy_dataset, tmp_path / "z", preset="lossless", workers=1, progress=False)
    assert report.ok and len(report.written) == 4
    back = export_npy(tmp_path / "z", tmp_path / "n", workers=1, progress=False)
    assert back.ok and len(back.written) == 4
    _assert_same_npy_folders(npy_dataset / "features", tmp_path / "n" / "features")
    for name in ("labels.json", "classes.json"):
        original = json.loads((npy_dataset / name).read_text())
        assert json.loads((tmp_path / "z" / name).read_text()) == original
        assert json.loads((tmp_path / "n" / name).read_text()) == original


def test_default_preset_round_trip_is_close(npy_dataset, tmp_path):
    import_npy(npy_dataset, tmp_path / "z", workers=1, progress=False)
    export_npy(tmp_path / "z", tmp_path / "n", workers=1, progress=False)
    x = np.load(npy_dataset / "features" / "video_001.npy", allow_pickle=True).item()
    y = np.load(tmp_path / "n" / "features" / "video_001.npy", allow_pickle=True).item()
    assert y["au"].dtype == np.float32
    np.testing.assert_allclose(y["au"], x["au"], rtol=1e-3, atol=1e-4)


def test_bad_files_are_reported_and_the_rest_converted(npy_dataset, tmp_path):
    features = npy_dataset / "features"
    (features / "broken.npy").write_bytes(b"garbage")
    np.save(features / "evil.npy", {"video_mae": print}, allow_pickle=True)
    bad = sample_features(9)
    del bad["hubert"]
    np.save(features / "incomplete.npy", bad, allow_pickle=True)
    report = import_npy(npy_dataset, tmp_path / "z", workers=1, progress=False)
    assert not report.ok
    assert set(report.failed) == {"broken", "evil", "incomplete"}
    assert "not a .npy file" in report.failed["broken"]
    assert "refusing to unpickle global 'builtins.print'" in report.failed["evil"]
    assert "missing required key 'hubert'" in report.failed["incomplete"]
    assert FeatureStore(tmp_path / "z" / "features").video_ids() == [f"video_{i:03d}" for i in range(4)]
    summary = report.summary()
    assert "4 videos written, 0 skipped" in summary and "3 failed" in summary and "broken: " in summary


def test_resume_and_overwrite(npy_dataset, tmp_path):
    import_npy(npy_dataset, tmp_path / "z", workers=1, progress=False)
    again = import_npy(npy_dataset, tmp_path / "z", workers=1, progress=False)
    assert again.written == [] and len(again.skipped) == 4
    forced = import_npy(npy_dataset, tmp_path / "z", workers=1, overwrite=True, progress=False)
    assert len(forced.written) == 4
    export_npy(tmp_path / "z", tmp_path / "n", workers=1, progress=False)
    assert len(export_npy(tmp_path / "z", tmp_path / "n", workers=1, progress=False).skipped) == 4


def test_wild_files_are_normalised_and_reported(tmp_path):
    root = tmp_path / "wild"
    (root / "features").mkdir(parents=True)
    features = sample_features(0)
    features["video_mae"] = features["video_mae"][None]
    features["hubert"] = features["hubert"].astype(np.float64)
    np.save(root / "features" / "w.npy", features, allow_pickle=True)
    report = import_npy(root, tmp_path / "z", preset="lossless", workers=1, progress=False)
    assert report.ok
    notes = report.outcomes[0].notes
    assert any("leading batch axis" in n for n in notes) and any("float64" in n for n in notes)
    store = FeatureStore(tmp_path / "z" / "features")
    assert store.read_video("w")["video_mae"].shape == (16, 1024)
    assert store.read_video("w")["hubert"].dtype == np.float64  # kept faithfully in the lossless preset
    back = export_npy(tmp_path / "z", tmp_path / "n", workers=1, progress=False)
    assert any("stored as float64, written as float32" in n for n in back.outcomes[0].notes)


def test_strict_import_fails_deviating_files(tmp_path):
    root = tmp_path / "wild"
    (root / "features").mkdir(parents=True)
    features = sample_features(0)
    features["clip"] = features["clip"][None]
    np.save(root / "features" / "w.npy", features, allow_pickle=True)
    report = import_npy(root, tmp_path / "z", strict=True, workers=1, progress=False)
    assert "strict mode" in report.failed["w"]


def test_unsafe_file_names_become_failures(tmp_path):
    root = tmp_path / "r" / "features"
    root.mkdir(parents=True)
    save_features(root / ".hidden.npy", sample_features(0))
    save_features(root / "__x.npy", sample_features(0))
    save_features(root / "ok.npy", sample_features(0))
    report = import_npy(root, tmp_path / "z", workers=1, progress=False)
    assert report.written == ["ok"]
    assert "reserved by Zarr" in report.failed["__x"]


def test_input_errors(tmp_path, npy_dataset):
    with pytest.raises(StoreError, match="no such dataset root"):
        import_npy(tmp_path / "nope", tmp_path / "z", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="no .npy feature files found"):
        import_npy(tmp_path / "empty", tmp_path / "z", progress=False)
    with pytest.raises(StoreError, match="not a herostore store"):
        export_npy(npy_dataset, tmp_path / "n", progress=False)


def test_parallel_run_on_a_local_dask_cluster(npy_dataset, tmp_path):
    report = import_npy(npy_dataset, tmp_path / "z", preset="lossless", workers=2, progress=False)
    assert report.ok and len(report.written) == 4
    back = export_npy(tmp_path / "z", tmp_path / "n", workers=2, progress=False)
    assert back.ok
    _assert_same_npy_folders(npy_dataset / "features", tmp_path / "n" / "features")


def test_export_names_the_video_whose_transcript_is_not_a_string(npy_dataset, tmp_path):
    import_npy(npy_dataset, tmp_path / "z", preset="lossless", workers=1, progress=False)
    meta_path = tmp_path / "z" / "features" / "video_002" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["transcript"] = 5
    meta_path.write_text(json.dumps(meta))
    report = export_npy(tmp_path / "z", tmp_path / "n", workers=1, progress=False)
    assert report.failed == {
        "video_002": f"{tmp_path / 'z' / 'features'}: video 'video_002': zarr.json has a transcript of type int; "
                     "expected the transcript as a string (an empty one when there is no speech)"}
    assert sorted(report.written) == ["video_000", "video_001", "video_003"]


def _flaky(video_id: str, error: BaseException | None) -> Outcome:
    if error is not None:
        raise error
    return Outcome(video_id, "done")


@pytest.mark.parametrize("error, detail", [
    (KeyError("herostore"), "KeyError: 'herostore'"),
    (TypeError("'NoneType' object is not subscriptable"), "TypeError: 'NoneType' object is not subscriptable"),
    (AttributeError("'list' object has no attribute 'get'"), "AttributeError: 'list' object has no attribute 'get'"),
    (StoreError("s: video 'b': unreadable"), "s: video 'b': unreadable"),
])
def test_any_exception_from_one_video_is_that_videos_failure(error, detail):
    assert guarded(_flaky, "b", error) == Outcome("b", "failed", detail)
    report = map_videos(_flaky, [("a", None), ("b", error), ("c", None)], workers=1, progress=False)
    assert report.failed == {"b": detail}
    assert report.ids("done") == ["a", "c"]
    assert f"failed:\n  b: {detail}" in report.summary()


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3)])
def test_interrupts_still_stop_the_run(error):
    with pytest.raises(type(error)):
        guarded(_flaky, "b", error)
    with pytest.raises(type(error)):
        map_videos(_flaky, [("a", None), ("b", error), ("c", None)], workers=1, progress=False)


def test_label_files_that_differ_are_never_replaced_silently(npy_dataset, tmp_path, capsys):
    from herostore.cli import main

    assert main(["import-npy", str(npy_dataset), str(tmp_path / "z"), "--workers", "1", "--quiet"]) == 0
    edited = tmp_path / "z" / "labels.json"
    labels = json.loads(edited.read_text())
    labels[0]["emotion"] = "sad"
    edited.write_text(json.dumps(labels, indent=4))  # a hand edit, with its own formatting
    hand = edited.read_bytes()
    capsys.readouterr()
    # a resume that writes nothing must not touch it either
    assert main(["import-npy", str(npy_dataset), str(tmp_path / "z"), "--workers", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{edited}: exists and differs from {npy_dataset / 'labels.json'}" in err and "--overwrite-labels" in err
    assert edited.read_bytes() == hand
    assert main(["export-npy", str(tmp_path / "z"), str(npy_dataset), "--workers", "1", "--quiet"]) == 2
    assert "--overwrite-labels" in capsys.readouterr().err
    original = (npy_dataset / "labels.json").read_bytes()
    assert main(["import-npy", str(npy_dataset), str(tmp_path / "z"), "--workers", "1", "--quiet",
                 "--overwrite-labels"]) == 0
    assert edited.read_bytes() == original


def test_export_refuses_float64_values_beyond_float32(tmp_path):
    store = FeatureStore.create(tmp_path / "z" / "features", "lossless")
    wide = sample_features(1)
    wide["hubert"] = wide["hubert"].astype(np.float64)
    wide["hubert"][0, 0] = 1e300
    store.write_video("wide", wide)
    store.write_video("fine", sample_features(2))
    report = export_npy(tmp_path / "z", tmp_path / "n", workers=1, progress=False)
    assert report.written == ["fine"]
    assert "video 'wide', key 'hubert': values up to 1e+300 are beyond float32's range" in report.failed["wide"]
    assert not (tmp_path / "n" / "features" / "wide.npy").exists()


def test_a_killed_exports_temporary_files_are_removed_by_the_next_run(npy_dataset, tmp_path):
    import os
    import time

    import_npy(npy_dataset, tmp_path / "z", workers=1, progress=False)
    features = tmp_path / "n" / "features"
    features.mkdir(parents=True)
    stale = features / ".video_000.npy.0123456789abcdef.tmp"
    stale.write_bytes(b"half a file")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = features / ".video_001.npy.fedcba9876543210.tmp"  # too young to judge: a live writer's, maybe
    fresh.write_bytes(b"being written")
    assert export_npy(tmp_path / "z", tmp_path / "n", workers=1, progress=False).ok
    assert not stale.exists() and fresh.exists()
