import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from herostore import FeatureStore, InvalidVideoIdError, SpecError, StoreError
from herostore.layout import check_video_id
from herostore.presets import PRESETS, Preset, get_preset
from herostore.store import is_store
from herostore.testing.features import sample_features as make_features

ARRAY_KEYS = ("video_mae", "clip", "hubert", "bert", "au")


@pytest.mark.parametrize("preset", ["lossless", "float16", "float16-lz4", "bitround", "bitround:5", "raw"])
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
            bits = 10 if p.dtype == "float16" else p.keepbits
            rel = np.abs(got.astype(np.float64) - want) / np.maximum(np.abs(want), 1e-3)
            assert rel.max() <= 2.0 ** -bits, (preset, key, rel.max())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.integers(1, 1300), min_size=4, max_size=4),
    transcript=st.text(max_size=300),
    seed=st.integers(0, 2**31),
)
@example(rows=[1, 1, 1, 1], transcript="", seed=0)  # T = 1 in every array, always tried
@example(rows=[1, 1300, 513, 1], transcript="x", seed=1)  # T = 1 next to multi-chunk arrays (chunk_rows 512)
def test_property_lossless_round_trip(tmp_path_factory, rows, transcript, seed):
    store = FeatureStore.create(tmp_path_factory.mktemp("p") / "s", "lossless")
    features = make_features(seed, lengths=tuple(rows), transcript=transcript, au=seed % 2 == 1)
    store.write_video("v", features)
    back = store.read_video("v")
    assert back["transcript"] == transcript
    for key in ARRAY_KEYS:
        if key in features:
            assert back[key].shape == features[key].shape
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
     ("tab\tid", "control character"), ("x" * 300, "longer than"), ("bad\udc80", "not valid Unicode")],
)
def test_unsafe_video_ids_refused(tmp_path, bad, reason):
    store = FeatureStore.create(tmp_path / "s")
    with pytest.raises(InvalidVideoIdError, match=reason):
        store.write_video(bad, make_features(0))
    assert store.video_ids() == []
    assert not (tmp_path / "x").exists()


def test_ids_with_spaces_colons_and_unicode_are_fine(tmp_path):
    store = FeatureStore.create(tmp_path / "s")
    for vid in ["dia0_utt1", "Ses05F_script03_1_F033", "sample 00001", "视频-1", "a:b", "c:\\x".replace("\\", "")]:
        assert check_video_id(vid) == vid
        assert store.write_video(vid, make_features(0, lengths=(1, 1, 1, 1)))
        assert store.read_video(vid)["bert"].shape == (1, 768)


def test_resume_skips_complete_videos_and_overwrite_replaces(tmp_path):
    store = FeatureStore.create(tmp_path / "s", "lossless")
    assert store.write_video("v", make_features(0))
    assert not store.write_video("v", make_features(1))
    assert np.array_equal(store.read_video("v")["bert"], make_features(0)["bert"])
    assert store.write_video("v", make_features(1), overwrite=True)
    assert np.array_equal(store.read_video("v")["bert"], make_features(1)["bert"])
    assert store.video_ids() == ["v"]
    assert not (tmp_path / "s" / ".tmp").exists()


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
    with pytest.raises(StoreError, match="format version 99; this herostore reads versions 1, 2"):
        FeatureStore(tmp_path / "s")
    with pytest.raises(StoreError, match="unknown preset 'fp8'"):
        FeatureStore.create(tmp_path / "t", "fp8")


@pytest.mark.parametrize("preset, message", [
    (None, "preset config is NoneType None, expected an object with the fields name, dtype"),
    ({"name": "x"}, r"unreadable preset config \{'name': 'x'\}: .*missing 1 required positional argument: 'dtype'"),
    ({"name": "x", "dtype": "int8"}, "dtype 'int8', expected null, 'float16', 'float32' or 'float64'"),
    ({"name": "x", "dtype": None, "keepbits": 30}, "keepbits 30, expected null or an integer from 1 to 23"),
    ({"name": "x", "dtype": None, "cname": "brotli"}, "cname 'brotli', expected null or one of blosclz, lz4"),
])
def test_unreadable_preset_names_the_store(tmp_path, preset, message):
    FeatureStore.create(tmp_path / "s")
    meta_path = tmp_path / "s" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    if preset is None:
        del meta["attributes"]["herostore"]["preset"]
    else:
        meta["attributes"]["herostore"]["preset"] = preset
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(StoreError, match=f"{re.escape(str(meta_path))}: .*{message}"):
        FeatureStore(tmp_path / "s")


def test_preset_configs_round_trip():
    for preset in [*PRESETS.values(), get_preset("bitround:5")]:
        assert Preset.from_config(preset.to_config()) == preset


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
            assert {c["name"] for c in array_meta["codecs"]} <= {"bytes", "blosc", "crc32c"}
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


def _stop_mid_write(proc: subprocess.Popen, tmp: Path) -> list[Path]:
    """SIGSTOP the writer at a moment its scratch folder already holds array data; return the scratch entries."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if tmp.is_dir() and any((entry / "video_mae").is_dir() for entry in tmp.iterdir()):
            proc.send_signal(signal.SIGSTOP)
            entries = [entry for entry in tmp.iterdir() if (entry / "video_mae").is_dir()]
            if entries:  # still there with the writer frozen: the kill will land mid-write
                return entries
            proc.send_signal(signal.SIGCONT)  # it published in between; catch the next video
        time.sleep(0.002)
    raise AssertionError("the writer never got to write a video")


def test_killed_writer_leaves_only_complete_videos(tmp_path):
    path = tmp_path / "s"
    FeatureStore.create(path, "lossless")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "0", "1"], stdout=subprocess.PIPE, text=True)
    try:
        printed = [proc.stdout.readline()]  # one video complete, the next one in flight
        in_flight = _stop_mid_write(proc, path / ".tmp")
        assert store_cleans(path) == 0, "a live writer's scratch is locked: never cleaned"
    finally:
        proc.kill()
    proc.wait()
    printed += proc.stdout.read().split()
    complete = [f"v{int(i):05d}" for i in printed]
    store = FeatureStore(path)
    # The kill landed mid-write: exactly the announced videos are visible, the next one only as scratch.
    assert len(in_flight) == 1 and (in_flight[0] / "video_mae").is_dir()
    assert store.video_ids() == complete
    assert f"v{len(complete):05d}" not in store
    root = zarr.open_group(str(path), mode="r")
    for vid in complete:
        group = root[vid]
        assert group["video_mae"].shape == (4000, 1024)
        assert group["bert"][...].shape == (30, 768)
        assert group.attrs["transcript"] == f"video {int(vid[1:])}"
    assert store.clean_scratch() == 0, "younger than the grace period: not judged"
    assert store.clean_scratch(older_than=0) == len(in_flight)
    assert not (path / ".tmp").exists(), "a finished store keeps no scratch folder"
    assert store.video_ids() == complete


def store_cleans(path: Path) -> int:
    return FeatureStore(path).clean_scratch(older_than=0)


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


HOLDER = """
import sys, time
from herostore.locations.local import LocalDirectory
with LocalDirectory(sys.argv[1]).scratch.entry() as entry:
    (entry / "video_mae").mkdir()
    print(entry, flush=True)
    time.sleep(120)
"""


def _hold_scratch(path: Path, namespace: bool) -> tuple[subprocess.Popen, Path]:
    """A writer in another process (in a new pid namespace when ``namespace``) holding a scratch entry."""
    command = [sys.executable, "-c", HOLDER, str(path)]
    if namespace:
        command = ["unshare", "--pid", "--fork", "--kill-child", *command]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line, proc.stderr.read()
    return proc, Path(line)


def _can_unshare() -> bool:
    try:
        return subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True, check=False).returncode == 0
    except OSError:
        return False


@pytest.mark.parametrize("namespace", [False, True] if _can_unshare() else [False])
def test_live_writers_scratch_is_never_cleaned_whatever_its_pid_namespace(tmp_path, namespace):
    """Writers in containers share a hostname and may share pids: only the lock a live writer holds counts."""
    store = FeatureStore.create(tmp_path / "s")
    proc, entry = _hold_scratch(store.path, namespace)
    try:
        leftover = store.path / ".tmp" / ("a" * 32)  # a dead writer's: nobody holds its lock
        (leftover / "video_mae").mkdir(parents=True)
        assert store.clean_scratch(older_than=0) == 1
        assert not leftover.exists() and (entry / "video_mae").is_dir()
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10  # in a pid namespace the writer dies just after unshare does
    while store.clean_scratch(older_than=0) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not entry.exists() and not (store.path / ".tmp").exists()


DIES_BETWEEN_RENAMES = """
import os, sys
from herostore import FeatureStore
from herostore.testing.features import sample_features
store = FeatureStore(sys.argv[1])
renames, real = [], os.rename
def rename(src, dst):
    renames.append(dst)
    if len(renames) == 3:  # 1: publish attempt (the video exists), 2: retire the old copy, 3: publish: killed here
        os._exit(9)
    real(src, dst)
os.rename = rename
store.write_video("v", sample_features(1), overwrite=True)
"""


def test_overwrite_cut_short_between_its_renames_is_restored(tmp_path):
    path = tmp_path / "s"
    store = FeatureStore.create(path, "lossless")
    store.write_video("v", make_features(0))
    done = subprocess.run([sys.executable, "-c", DIES_BETWEEN_RENAMES, str(path)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 9, done.stderr
    assert "v" not in store and store.video_ids() == []
    retired = [e for e in (path / ".tmp").iterdir() if e.name.endswith(".old")]
    assert len(retired) == 1 and (retired[0] / "v" / "zarr.json").is_file()
    with pytest.warns(UserWarning, match=r"restored video 'v' from .*\.old: its overwrite was cut short"):
        assert store.clean_scratch(older_than=0) == 2  # the retired copy and the new copy's scratch
    assert store.video_ids() == ["v"]
    assert np.array_equal(store.read_video("v")["bert"], make_features(0)["bert"])
    assert not (path / ".tmp").exists()


def test_an_error_between_the_renames_puts_the_old_copy_back_at_once(tmp_path, monkeypatch):
    store = FeatureStore.create(tmp_path / "s", "lossless")
    store.write_video("v", make_features(0))
    renames, real = [], os.rename

    def fails_to_publish(src, dst):
        renames.append(dst)
        if len(renames) == 3:
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr("herostore.locations.local.os.rename", fails_to_publish)
    with pytest.raises(KeyboardInterrupt):
        store.write_video("v", make_features(1), overwrite=True)
    monkeypatch.undo()
    assert store.video_ids() == ["v"] and np.array_equal(store.read_video("v")["bert"], make_features(0)["bert"])
    assert not (tmp_path / "s" / ".tmp").exists()


def test_retired_copy_is_deleted_when_the_new_one_made_it(tmp_path):
    path = tmp_path / "s"
    store = FeatureStore.create(path, "lossless")
    store.write_video("v", make_features(1))
    # Killed after publishing the new copy, before deleting the old one.
    retired = path / ".tmp" / f"{'a' * 32}.old"
    retired.mkdir(parents=True)
    other = FeatureStore.create(tmp_path / "old", "lossless")
    other.write_video("v", make_features(0))
    os.rename(other.path / "v", retired / "v")
    assert store.clean_scratch(older_than=0) == 1
    assert np.array_equal(store.read_video("v")["bert"], make_features(1)["bert"])
    assert not (path / ".tmp").exists()


def test_a_finished_store_has_no_scratch_and_zarr_lists_it_without_warnings(tmp_path):
    import warnings

    store = FeatureStore.create(tmp_path / "s", "float16")
    store.write_video("a", make_features(0))
    store.write_video("a", make_features(1), overwrite=True)
    store.update_attrs(note="x")
    assert sorted(os.listdir(store.path)) == ["a", "zarr.json"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [name for name, _ in zarr.open_group(str(store.path), mode="r").members()] == ["a"]


def test_a_folder_without_zarr_json_is_written_again_and_its_files_kept_aside(tmp_path):
    store = FeatureStore.create(tmp_path / "s", "lossless")
    half = store.path / "v" / "bert"
    half.mkdir(parents=True)
    (half / "leftover").write_text("from an interrupted copy")
    with pytest.warns(UserWarning, match=r"'v' had no zarr.json .* moved aside to \.v\.incomplete-"):
        assert store.write_video("v", make_features(0)) is True
    assert store.video_ids() == ["v"]
    aside = [p for p in store.path.iterdir() if p.name.startswith(".v.incomplete-")]
    assert len(aside) == 1 and (aside[0] / "bert" / "leftover").read_text() == "from an interrupted copy"


def test_two_runs_creating_one_store_at_once_both_succeed(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    for attempt in range(8):
        path = tmp_path / f"s{attempt}"
        with ctx.Pool(4) as pool:
            results = pool.starmap(_create, [(str(path), "float16")] * 4)
        assert results == ["float16"] * 4


def _create(path: str, preset: str) -> str:
    return FeatureStore.create(path, preset).preset.name


def test_folders_without_zarr_json_are_not_videos(tmp_path):
    store = FeatureStore.create(tmp_path / "s", "lossless")
    store.write_video("v", make_features(0))
    (tmp_path / "s" / "stray").mkdir()
    (tmp_path / "s" / "half" / "bert").mkdir(parents=True)
    assert store.video_ids() == ["v"] and len(store) == 1
    assert store.stray_folders() == ["half", "stray"]
    assert "stray" not in store


def test_video_without_herostore_attribute_is_a_store_error(tmp_path):
    store = FeatureStore.create(tmp_path / "s", "lossless")
    store.write_video("v", make_features(0))
    meta_path = tmp_path / "s" / "v" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    del meta["attributes"]["herostore"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(StoreError, match=r"s: video 'v': zarr.json has no 'herostore' attribute listing its "
                                         r"modalities"):
        store.read_video("v")


def test_create_where_a_file_is_in_the_way(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StoreError, match=r"afile[/\\]features: cannot create the store folder: .*afile is a file, "
                                         r"not a folder"):
        FeatureStore.create(tmp_path / "afile" / "features")
    with pytest.raises(StoreError, match=r"afile: exists and is not a folder"):
        FeatureStore.create(tmp_path / "afile")


@pytest.mark.parametrize("rows, chunk_rows, expected", [(5000, 4096, 2500), (1568, 512, 392), (1300, 512, 434),
                                                          (4096, 4096, 4096), (1, 512, 1), (513, 512, 257)])
def test_arrays_are_cut_into_equal_chunks_so_the_padded_last_chunk_wastes_little(tmp_path, rows, chunk_rows,
                                                                                    expected):
    from dataclasses import replace

    preset = replace(get_preset("float16"), name="float16-test", chunk_rows=chunk_rows)
    assert preset.rows_per_chunk(rows) == expected
    store = FeatureStore.create(tmp_path / "s", preset)
    store.write_video("v", make_features(0, lengths=(rows, 1, 1, 1)))
    meta = json.loads((store.path / "v" / "video_mae" / "zarr.json").read_text())
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [expected, 1024]
    stored = sum(f.stat().st_size for f in (store.path / "v" / "video_mae" / "c").rglob("*") if f.is_file())
    n_chunks = -(-rows // expected)
    assert stored == n_chunks * (expected * 1024 * 2 + 4) and n_chunks * expected - rows < n_chunks
    assert np.array_equal(store.read_video("v")["video_mae"], make_features(0, lengths=(rows, 1, 1, 1))["video_mae"]
                          .astype(np.float16))
