"""``herostore verify``: every chunk re-read and checked, every file accounted for, metadata consistent."""

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import make_features

from herostore.cli import main
from herostore.store import FeatureStore
from herostore.verify import verify_store

PRESETS = ["lossless", "float16", "float16-lz4", "bitround", "raw"]
GOLDEN = Path(__file__).parent / "data" / "golden" / "v1"


def _store(tmp_path: Path, preset: str) -> FeatureStore:
    store = FeatureStore.create(tmp_path / preset, preset)
    store.write_video("long", make_features(1, lengths=(1300, 3, 600, 5), au=True))
    store.write_video("short", make_features(2))
    return store


def _messages(report) -> list[str]:
    return [p.render() for p in report.problems]


@pytest.mark.parametrize("preset", PRESETS)
def test_a_clean_store_verifies_and_counts_what_it_read(tmp_path, preset):
    store = _store(tmp_path, preset)
    report = verify_store(store.path, workers=1, progress=False)
    assert report.ok, _messages(report)
    chunk_files = [p for p in store.path.rglob("c/*/*") if p.is_file()]
    assert report.videos == 2 and report.chunks == len(chunk_files)
    assert report.bytes == sum(p.stat().st_size for p in chunk_files)
    assert "checksums verified" in report.render() and "OK" in report.render()


@pytest.mark.parametrize("preset", PRESETS)
def test_a_flipped_byte_a_truncated_chunk_and_a_missing_chunk_are_each_reported(tmp_path, preset):
    store = _store(tmp_path, preset)
    video = store.path / "long"
    flipped = max((video / "video_mae" / "c").rglob("*/0"))
    data = bytearray(flipped.read_bytes())
    data[len(data) // 3] ^= 0x01
    flipped.write_bytes(bytes(data))
    truncated = video / "hubert" / "c" / "0" / "0"
    truncated.write_bytes(truncated.read_bytes()[:-1])
    (video / "bert" / "c" / "0" / "0").unlink()
    report = verify_store(store.path, workers=1, progress=False)
    messages = _messages(report)
    key = flipped.relative_to(video).as_posix()
    assert any(m.startswith(f"long [video_mae] {key}: checksum mismatch") for m in messages), messages
    assert any(m.startswith("long [hubert] hubert/c/0/0: ") for m in messages), messages
    assert "long [bert] bert/c/0/0: the chunk is missing" in messages
    assert len(messages) == 3


def test_files_links_and_metadata_that_do_not_belong_are_reported(tmp_path):
    store = _store(tmp_path, "float16")
    video = store.path / "short"
    (video / "clip" / "c" / "9").mkdir()
    (video / "clip" / "c" / "9" / "0").write_bytes(b"stray")
    os.mkfifo(video / "hubert" / "fifo")
    (tmp_path / "outside").write_bytes((video / "bert" / "c" / "0" / "0").read_bytes())
    (video / "bert" / "c" / "0" / "0").unlink()
    (video / "bert" / "c" / "0" / "0").symlink_to(tmp_path / "outside")
    own = video / "video_mae" / "zarr.json"
    meta = json.loads(own.read_text())
    meta["attributes"] = {"edited": True}
    own.write_text(json.dumps(meta))
    (store.path / "stray").mkdir()
    (store.path / ".tmp").mkdir()
    report = verify_store(store.path, workers=1, progress=False)
    messages = _messages(report)
    assert "short: clip/c/9/0: a file the metadata does not name" in messages
    assert "short: hubert/fifo: a special file (a store holds only regular files)" in messages
    assert "short: bert/c/0/0: a symbolic link (a store holds only regular files)" in messages
    assert any(m.startswith("short [bert] bert/c/0/0: ") and "symbolic link" in m for m in messages), messages
    assert "short [video_mae]: video_mae/zarr.json disagrees with the consolidated metadata in zarr.json" in messages
    assert any(m.startswith("stray: a folder without zarr.json") for m in messages)
    assert any(m.startswith("(store): .tmp: left by a writer") for m in messages)


def test_format_1_is_verified_for_structure_and_says_it_has_no_checksums(tmp_path):
    shutil.copytree(GOLDEN / "float16-lz4", tmp_path / "s")
    report = verify_store(tmp_path / "s", workers=1, progress=False)
    assert report.ok, _messages(report)
    assert report.checksums is False and "format 1 has no checksums" in report.render()
    chunk = tmp_path / "s" / "video_1" / "hubert" / "c" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-3])
    assert "video_1 [hubert] hubert/c/0/0: " in _messages(verify_store(tmp_path / "s", workers=1, progress=False))[0]


def test_cli_exit_codes_json_and_a_parallel_run(tmp_path, capsys):
    store = _store(tmp_path, "float16-lz4")
    assert main(["verify", str(store.path), "--workers", "2", "--quiet"]) == 0
    assert "OK: no problem found" in capsys.readouterr().out
    (store.path / "short" / "bert" / "c" / "0" / "0").unlink()
    assert main(["verify", str(store.path), "--json", "--workers", "1", "--quiet"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is False and payload["problems"] == [
        {"video": "short", "message": "the chunk is missing", "modality": "bert", "chunk": "bert/c/0/0"}]
    assert main(["verify", str(tmp_path / "nowhere")]) == 2
    assert "no such dataset root" in capsys.readouterr().err
