import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herostore import FeatureStore, InvalidVideoIdError, SpecError, StoreError
from herostore.presets import PRESETS, get_preset
from herostore.sample import sample_features as make_features
from herostore.store import check_video_id, is_store

ARRAY_KEYS = ("video_mae", "clip", "hubert", "bert", "au")


@pytest.mark.parametrize("preset", ["lossless", "float16", "bitround", "bitround:5", "raw"])
def test_round_trip_in_every_preset(tmp_path, preset):
    store = FeatureStore.create(tmp_path / "s", preset)
    source = make_features(1, au=True)
    assert store.write_video("v", source)
    back = store.read_video("v")
    assert back["transcript"] == source["transcript"]
    p = get_preset(preset)
    for key in ARRAY_KEYS:
        got, want = back[key], source[key]
        assert got.shape == want.shape
        if p.lossless or preset == "raw":
            assert got.dtype == want.dtype and np.array_equal(got, want)
        else:
            bits = 10 if preset == "float16" else p.keepbits
            rel = np.abs(got.astype(np.float64) - want) / np.maximum(np.abs(want), 1e-3)
            assert rel.max() <= 2.0 ** -bits, (preset, key, rel.max())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.integers(1, 1300), min_size=4, max_size=4),
    transcript=st.text(max_size=300),
    data=st.data(),
)
def test_property_lossless_round_trip(tmp_path_factory, rows, transcript, data):
    store = FeatureStore.create(tmp_path_factory.mktemp("p") / "s", "lossless")
    seed = data.draw(st.integers(0, 2**31))
    features = make_features(seed, lengths=tuple(rows), transcript=transcript)
    store.write_video("v", features)
    back = store.read_video("v")
    assert back["transcript"] == transcript
    for key in ("video_mae", "clip", "hubert", "bert"):
        assert np.array_equal(back[key], features[key])


@pytest.mark.parametrize("text", ["", "情绪识别 😀 \u200b", "x" * 200_000, "line\nbreak\ttab \"quote\" \\ \x00nul"])
def test_transcripts_kept_exactly(tmp_path, text):
    store = FeatureStore.create(tmp_path / "s")
    store.write_video("v", make_features(0, transcript=text))
    assert store.read_video("v")["transcript"] == text
    assert zarr.open_group(str(tmp_path / "s"), mode="r")["v"].attrs["transcript"] == text


@pytest.mark.parametrize(
    "bad, reason",
    [("../x", "path separator"), ("/abs", "path separator"), ("a/b", "path separator"), ("a\\b", "path separator"),
     ("..", "starts with '.'"), (".hidden", "starts with '.'"), ("__meta", "reserved"), ("", "non-empty"),
     ("tab\tid", "control character"), ("x" * 300, "longer than")],
)
def test_unsafe_video_ids_refused(tmp_path, bad, reason):
    store = FeatureStore.create(tmp_path / "s")
    with pytest.raises(InvalidVideoIdError, match=reason):
        store.write_video(bad, make_features(0))
    assert store.video_ids() == []
    assert not (tmp_path / "x").exists()


def test_ids_with_spaces_and_unicode_are_fine():
    for vid in ["dia0_utt1", "Ses05F_script03_1_F033", "sample 00001", "视频-1"]:
        assert check_video_id(vid) == vid


def test_resume_skips_complete_videos_and_overwrite_replaces(tmp_path):
    store = FeatureStore.create(tmp_path / "s", "lossless")
    assert store.write_video("v", make_features(0))
    assert not store.write_video("v", make_features(1))
    assert np.array_equal(store.read_video("v")["bert"], make_features(0)["bert"])
    assert store.write_video("v", make_features(1), overwrite=True)
    assert np.array_equal(store.read_video("v")["bert"], make_features(1)["bert"])
    assert store.video_ids() == ["v"]
    assert list((tmp_path / "s" / ".tmp").iterdir()) == []


def test_store_records_preset_and_refuses_another(tmp_path):
    FeatureStore.create(tmp_path / "s", "bitround:6")
    store = FeatureStore(tmp_path / "s")
    assert store.preset.keepbits == 6 and store.preset.name == "bitround:6"
    with pytest.raises(StoreError, match="exists with preset 'bitround:6', asked for 'float16'"):
        FeatureStore.create(tmp_path / "s", "float16")


def test_open_errors_name_the_path(tmp_path):
    with pytest.raises(StoreError, match=f"{tmp_path}.*not a herostore store"):
        FeatureStore(tmp_path)
    zarr.create_group(str(tmp_path / "plain"), zarr_format=3)
    with pytest.raises(StoreError, match="a Zarr group, but not a herostore store"):
        FeatureStore(tmp_path / "plain")
    FeatureStore.create(tmp_path / "s")
    meta = json.loads((tmp_path / "s" / "zarr.json").read_text())
    meta["attributes"]["herostore"]["format_version"] = 99
    (tmp_path / "s" / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="format version 99, this herostore reads version 1"):
        FeatureStore(tmp_path / "s")
    with pytest.raises(StoreError, match="unknown preset 'fp8'"):
        FeatureStore.create(tmp_path / "t", "fp8")


def test_float16_overflow_is_an_error_not_inf(tmp_path):
    store = FeatureStore.create(tmp_path / "s", "float16")
    features = make_features(0)
    features["hubert"][0, 0] = 1e6
    with pytest.raises(SpecError, match="v: key 'hubert': values beyond the float16 range"):
        store.write_video("v", features)
    assert store.video_ids() == []


def test_any_zarr_v3_reader_opens_it_with_core_codecs_only(tmp_path):
    for preset in PRESETS:
        store = FeatureStore.create(tmp_path / preset, preset)
        store.write_video("v", make_features(0, au=True))
        root = zarr.open_group(str(tmp_path / preset), mode="r")
        assert list(root.group_keys()) == ["v"]
        assert root.attrs["herostore"]["preset"]["name"] == preset
        meta = json.loads((tmp_path / preset / "v" / "zarr.json").read_text())
        for array_meta in meta["consolidated_metadata"]["metadata"].values():
            assert {c["name"] for c in array_meta["codecs"]} <= {"bytes", "blosc"}
        assert root["v"]["video_mae"].shape == (16, 1024)
    assert is_store(tmp_path / "lossless") and not is_store(tmp_path)


def test_update_attrs_keeps_the_rest(tmp_path):
    store = FeatureStore.create(tmp_path / "s")
    store.update_attrs(stats={"bert": {"count": 1}})
    again = FeatureStore(tmp_path / "s")
    assert again.attrs["stats"] == {"bert": {"count": 1}} and again.preset == store.preset


WRITER = """
import sys, numpy as np
from herostore import FeatureStore
store = FeatureStore(sys.argv[1])
rng = np.random.default_rng(0)
for i in range(int(sys.argv[2]), 10_000, int(sys.argv[3])):
    big = {"video_mae": rng.standard_normal((4000, 1024), dtype=np.float32),
           "clip": rng.standard_normal((257, 1408), dtype=np.float32),
           "hubert": rng.standard_normal((200, 1024), dtype=np.float32),
           "bert": rng.standard_normal((30, 768), dtype=np.float32), "transcript": f"video {i}"}
    store.write_video(f"v{i:05d}", big)
    print(i, flush=True)
"""


def test_killed_writer_leaves_only_complete_videos(tmp_path):
    path = tmp_path / "s"
    FeatureStore.create(path, "lossless")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "0", "1"], stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()  # one video complete, the next one in flight
    time.sleep(0.15)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = FeatureStore(path)
    ids = store.video_ids()
    assert ids, "at least one video was complete"
    root = zarr.open_group(str(path), mode="r")
    for vid in ids:
        group = root[vid]
        assert group["video_mae"].shape == (4000, 1024)
        assert group["bert"][...].shape == (30, 768)
        assert group.attrs["transcript"] == f"video {int(vid[1:])}"
    assert store.clean_scratch() >= 0
    assert not list((path / ".tmp").iterdir())


def test_concurrent_writers_share_one_store(tmp_path):
    path = tmp_path / "s"
    FeatureStore.create(path, "float16")
    ctx = multiprocessing.get_context("spawn")
    jobs = [ctx.Process(target=_write_range, args=(str(path), start)) for start in range(3)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(60)
        assert job.exitcode == 0
    store = FeatureStore(path)
    assert store.video_ids() == ["shared"] + [f"v{i:02d}" for i in range(12)]
    for i in range(12):
        got = store.read_video(f"v{i:02d}")["hubert"]
        assert np.allclose(got, make_features(i)["hubert"], rtol=1e-3, atol=1e-3)
    assert store.read_video("shared")["transcript"].startswith("writer ")


def _write_range(path: str, start: int) -> None:
    store = FeatureStore(path)
    for i in range(start, 12, 3):
        store.write_video(f"v{i:02d}", make_features(i))
        store.write_video("shared", make_features(0, transcript=f"writer {start}"))


def test_scratch_of_dead_writers_is_cleaned(tmp_path):
    store = FeatureStore.create(tmp_path / "s")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    leftover = tmp_path / "s" / ".tmp" / f"{dead.stdout.strip()}-abc"
    leftover.mkdir(parents=True)
    mine = tmp_path / "s" / ".tmp" / f"{os.getpid()}-def"
    mine.mkdir()
    assert store.clean_scratch() == 1
    assert not leftover.exists() and mine.exists()
    assert Path(store.path).exists()
