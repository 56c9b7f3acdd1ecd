"""Object storage, against a real S3-protocol server (moto's, on 127.0.0.1; ``tests/s3.py``).

Round trips through ``s3://`` (library and CLI, credentials from the environment), the DataLoader over a store in
a bucket, a writer killed mid-video, resume, overwrites seen by a concurrent reader, requests per sample, and the
errors a user meets (bad credentials, a missing bucket), with the secret never written anywhere.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import test_reader as reader_tests
import torch
from conftest import make_features
from torch.utils.data import DataLoader

from herostore import urls
from herostore.cli import main
from herostore.cli.common import storage_options as parse_storage_options
from herostore.convert import export_npy, import_npy
from herostore.dataset import HeroDataset, collate
from herostore.errors import ArgumentError, CorruptStoreError, StoreError, VideoNotFoundError
from herostore.info import store_info
from herostore.locations.remote import RemoteDirectory, VideoChangedError
from herostore.read import NpyReader, ZarrReader, open_reader
from herostore.store import FeatureStore
from herostore.validate import validate_dataset

QUIET = {"workers": 1, "progress": False}


def upload(server, folder: Path, prefix: str) -> str:
    """Copy a local folder's files to ``bucket/prefix`` (keys relative to the folder); the ``s3://`` URL."""
    files = {f"{prefix}/{p.relative_to(folder).as_posix()}": p.read_bytes()
             for p in folder.rglob("*") if p.is_file()}
    server.filesystem().pipe(files)
    return f"s3://{prefix}"


def objects(server, bucket: str) -> dict[str, bytes]:
    fs = server.filesystem()
    return {path: fs.cat_file(path) for path in fs.find(bucket)}


def same_tree(local: Path, server, prefix: str) -> None:
    """The objects under ``prefix`` are exactly the files of ``local``, byte for byte."""
    fs = server.filesystem()
    remote = {p[len(prefix) + 1 :]: fs.cat_file(p) for p in fs.find(prefix)}
    files = {p.relative_to(local).as_posix(): p.read_bytes() for p in local.rglob("*") if p.is_file()}
    assert remote.keys() == files.keys()
    assert all(remote[k] == files[k] for k in files)


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "herostore", *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


# -- the reader conformance class, over a store in a bucket -------------------------------------------------------


class S3Source:
    """The same store as objects in a bucket of the local S3 server."""

    name = "s3"

    def __init__(self, server, bucket: str):
        self.server, self.bucket, self.count = server, bucket, 0

    def open(self, store_path: Path, **options) -> ZarrReader:
        self.count += 1
        url = upload(self.server, store_path, f"{self.bucket}/conformance-{self.count}/features")
        return ZarrReader(url, storage_options=self.server.storage_options(), **options)


@pytest.fixture
def source(s3_server, s3_bucket):
    return S3Source(s3_server, s3_bucket)


class TestS3ReaderConformance(reader_tests.TestReaderConformance):
    """Every reader check, with the store's bytes in a bucket."""


# -- round trips --------------------------------------------------------------------------------------------------


def test_import_to_s3_equals_the_local_store_and_exports_bit_exactly(s3_server, s3_bucket, npy_dataset, tmp_path,
                                                                      capfd):
    options = s3_server.storage_options()
    url = f"s3://{s3_bucket}/root"
    # two dask worker processes: the location crosses to them with its options, never into their output
    report = import_npy(npy_dataset, url, preset="lossless", storage_options=options, workers=2, progress=False)
    out, err = capfd.readouterr()
    assert s3_server.secret not in out + err
    assert report.ok and sorted(report.written) == ["video_000", "video_001", "video_002", "video_003"]
    local = import_npy(npy_dataset, tmp_path / "local", preset="lossless", **QUIET)
    assert local.ok
    # the store's objects are the local store's files, byte for byte; the label files sit beside the store
    same_tree(tmp_path / "local" / "features", s3_server, f"{s3_bucket}/root/features")
    fs = s3_server.filesystem()
    for name in ("labels.json", "classes.json"):
        assert fs.cat_file(f"{s3_bucket}/root/{name}") == (npy_dataset / name).read_bytes()
    remote = FeatureStore(f"{url}/features", storage_options=options)
    here = FeatureStore(tmp_path / "local" / "features")
    assert remote.video_ids() == here.video_ids()
    for fast in (True, False):
        reader = open_reader(f"{url}/features", fast=fast, storage_options=options)
        for vid in here.video_ids():
            got, expected = reader.read(vid), here.reader().read(vid)
            assert got.transcript == expected.transcript and list(got.arrays) == list(expected.arrays)
            for key, array in expected.arrays.items():
                np.testing.assert_array_equal(got.arrays[key], array)
    # export from the bucket, to a folder and to the bucket: the spec's files again, bit-exactly (lossless)
    assert export_npy(url, tmp_path / "exported", storage_options=options, **QUIET).ok
    assert export_npy(url, f"s3://{s3_bucket}/exported", storage_options=options, **QUIET).ok
    for original in sorted((npy_dataset / "features").glob("*.npy")):
        assert (tmp_path / "exported" / "features" / original.name).read_bytes() == original.read_bytes()
        assert fs.cat_file(f"{s3_bucket}/exported/features/{original.name}") == original.read_bytes()
    assert fs.cat_file(f"{s3_bucket}/exported/labels.json") == (npy_dataset / "labels.json").read_bytes()
    again = import_npy(npy_dataset, url, preset="lossless", storage_options=options, **QUIET)
    assert again.written == [] and len(again.skipped) == 4


def test_every_command_over_s3_with_credentials_from_the_environment(s3_env, s3_bucket, npy_dataset, tmp_path,
                                                                     capsys):
    server = s3_env
    url = f"s3://{s3_bucket}/root"
    assert main(["import-npy", str(npy_dataset), url, "--preset", "float16", "--workers", "1", "--quiet"]) == 0
    assert main(["validate", url]) == 0
    assert main(["info", url, "--json"]) == 0
    assert main(["stats", url, "--workers", "1", "--quiet"]) == 0
    assert main(["export-npy", url, str(tmp_path / "out"), "--workers", "1", "--quiet"]) == 0
    assert main(["validate", url, "--json", "--no-values"]) == 0
    out, err = capsys.readouterr()
    assert "OK, no deviation from the spec" in out and f"stats recorded in {url}" in out
    info = json.loads(out[out.index("{") : out.index("\n}\n") + 2])
    assert info["videos"] == 4 and info["store"] == f"{url}/features" and info["preset"]["name"] == "float16"
    assert info["modalities"]["au"]["videos"] == 2 and info["bytes_on_disk"] > 0
    local = store_info(FeatureStore.create(tmp_path / "l", "float16").path)  # an empty store: same keys
    assert info.keys() == local.keys()
    stats = FeatureStore(f"{url}/features").info.stats()
    assert stats is not None and set(stats) == {"video_mae", "clip", "hubert", "bert", "au"}
    assert sorted(p.name for p in (tmp_path / "out" / "features").iterdir()) == [
        f"video_{i:03d}.npy" for i in range(4)]
    # the credentials are in no object, no output and no report
    secret, key = server.secret.encode(), server.key.encode()
    for path, data in objects(server, s3_bucket).items():
        assert secret not in data and key not in data, path
    for text in (out, err, validate_dataset(url).to_json()):
        assert server.secret not in text and server.key not in text


def test_storage_options_from_the_command_line(s3_server, s3_bucket, npy_dataset, monkeypatch, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    flags = [f"--storage-option=endpoint_url={s3_server.endpoint}", f"--storage-option=key={s3_server.key}",
             f"--storage-option=secret={s3_server.secret}", "--storage-option=config_kwargs.max_pool_connections=4"]
    url = f"s3://{s3_bucket}/cli"
    assert main(["import-npy", str(npy_dataset), url, "--workers", "1", "--quiet", *flags]) == 0
    assert main(["info", url, *flags]) == 0
    out, err = capsys.readouterr()
    assert "videos  4" in out and s3_server.secret not in out + err


def test_label_files_by_url(s3_server, s3_bucket):
    from herostore.errors import LabelFileExistsError
    from herostore.labels import Label, load_label_set, write_label_set

    options = s3_server.storage_options()
    labels = [Label("a", "happy", 0.5, "hi"), Label("b", "sad")]
    root = f"s3://{s3_bucket}/root"
    paths = write_label_set(root, labels, ["happy", "sad"], storage_options=options)
    assert paths == (f"{root}/labels.json", f"{root}/classes.json")
    assert load_label_set(f"{root}/labels.json", storage_options=options) == (labels, ["happy", "sad"])
    write_label_set(root, labels, ["happy", "sad"], storage_options=options)  # the same content: left alone
    with pytest.raises(LabelFileExistsError, match=rf"{root}/labels.json exists with 2 labels, the new set has 1"):
        write_label_set(root, labels[:1], ["happy", "sad"], storage_options=options)


def test_storage_option_flags_parse():
    import argparse

    flags = ["anon=true", "config_kwargs.max_pool_connections=32", "endpoint_url=http://h:9000",
             "client_kwargs.region_name=eu-west-1"]
    assert parse_storage_options(argparse.Namespace(storage_option=flags)) == {"anon": True, "config_kwargs": {"max_pool_connections": 32},
                                             "endpoint_url": "http://h:9000",
                                             "client_kwargs": {"region_name": "eu-west-1"}}
    with pytest.raises(ArgumentError, match="--storage-option 'anon': expected KEY=VALUE"):
        parse_storage_options(argparse.Namespace(storage_option=["anon"]))


def test_urls_never_show_a_password():
    assert urls.display("https://user:pa55word@host:8443/root/x") == "https://host:8443/root/x"
    assert urls.display("s3://bucket/root") == "s3://bucket/root"
    assert urls.display(Path("/data/root")) == "/data/root"
    assert urls.join("s3://b/root/", "features", "zarr.json") == "s3://b/root/features/zarr.json"
    assert urls.parent("s3://b/root/features") == "s3://b/root"
    assert urls.remote_error(OSError("denied for s3cr3t-value"), {"secret": "s3cr3t-value"}) == "denied for ***"


# -- training from a bucket ---------------------------------------------------------------------------------------


def batches(dataset, workers: int) -> list[dict]:
    loader = DataLoader(dataset, batch_size=3, num_workers=workers, collate_fn=collate,
                        multiprocessing_context="fork" if workers else None)
    return list(loader)


def assert_same_batches(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            if isinstance(x[key], torch.Tensor):
                assert torch.equal(x[key], y[key]), key
            else:
                assert x[key] == y[key], key


@pytest.mark.parametrize("fmt", ["store", "npy"])
def test_dataloader_over_s3_gives_the_local_batches(s3_server, s3_bucket, npy_dataset, tmp_path, fmt):
    options = s3_server.storage_options()
    if fmt == "store":
        import_npy(npy_dataset, f"s3://{s3_bucket}/root", preset="float16", storage_options=options, **QUIET)
        import_npy(npy_dataset, tmp_path / "local", preset="float16", **QUIET)
        local_root = tmp_path / "local"
    else:
        upload(s3_server, npy_dataset, f"{s3_bucket}/root")
        local_root = npy_dataset
    remote = HeroDataset(f"s3://{s3_bucket}/root/features", f"s3://{s3_bucket}/root/labels.json",
                         storage_options=options, max_len=20)
    local = HeroDataset(local_root / "features", local_root / "labels.json", max_len=20)
    assert remote.format == local.format == ("zarr" if fmt == "store" else "npy")
    assert remote.classes == local.classes and len(remote) == len(local) == 4
    assert "s3://" in repr(remote) and s3_server.secret not in repr(remote)
    expected = batches(local, 0)
    assert_same_batches(batches(remote, 2), expected)
    assert_same_batches(batches(remote, 0), expected)


def test_open_reader_by_url(s3_server, s3_bucket, npy_dataset):
    options = s3_server.storage_options()
    upload(s3_server, npy_dataset, f"{s3_bucket}/npy")
    reader = open_reader(f"s3://{s3_bucket}/npy/features", storage_options=options)
    assert isinstance(reader, NpyReader) and reader.video_ids() == [f"video_{i:03d}" for i in range(4)]
    assert "video_001" in reader and "video_009" not in reader
    with pytest.raises(VideoNotFoundError, match=r"npy/features: no video 'video_009' \(no video_009.npy\)"):
        reader.read("video_009")
    with pytest.raises(StoreError, match="neither a herostore store nor a folder of .npy files"):
        open_reader(f"s3://{s3_bucket}/nothing-here", storage_options=options)


def test_extraction_writes_to_s3_and_trains_from_it(s3_env, s3_bucket, tmp_path):
    from herostore.extract import ModelConfig, OutputSpec, RunSettings, run_extraction
    from herostore.testing import build_tiny_models, write_clip

    models = build_tiny_models(tmp_path / "models", languages=("en",))
    for name in ("clip_a", "clip_b"):
        write_clip(tmp_path / "videos" / f"{name}.mp4", seconds=1.0)
    url = f"s3://{s3_bucket}/root/features"
    report = run_extraction(tmp_path / "videos", OutputSpec(url), models=ModelConfig(model_dir=models),
                            settings=RunSettings(progress=False))
    assert report.ok and sorted(report.written) == ["clip_a", "clip_b"]
    assert url in report.summary()
    again = run_extraction(tmp_path / "videos", OutputSpec(url), models=ModelConfig(model_dir=models),
                           settings=RunSettings(progress=False))
    assert again.written == [] and sorted(again.skipped) == ["clip_a", "clip_b"]
    labels = [{"video_id": v, "emotion": "neutral"} for v in ("clip_a", "clip_b")]
    urls.write_bytes(f"s3://{s3_bucket}/root/labels.json", json.dumps(labels).encode())
    batch = next(iter(DataLoader(HeroDataset(url, f"s3://{s3_bucket}/root/labels.json"), batch_size=2,
                                 num_workers=2, collate_fn=collate, multiprocessing_context="fork")))
    assert batch["video_mae"].shape[0] == 2 and batch["hubert"].shape[2] == 1024


def test_reading_over_http_and_writing_refused(npy_dataset, tmp_path):
    """A store and a .npy folder served by a plain HTTP server that lists folders: read like local; no writes."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    import_npy(npy_dataset, tmp_path / "served" / "store", preset="float16", **QUIET)
    (tmp_path / "served" / "npy").symlink_to(npy_dataset)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path / "served")))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        for name in ("store", "npy"):
            remote = HeroDataset(f"{base}/{name}/features", f"{base}/{name}/labels.json")
            local = HeroDataset(tmp_path / "served" / name / "features", tmp_path / "served" / name / "labels.json")
            assert_same_batches(batches(remote, 0), batches(local, 0))
        with pytest.raises(StoreError, match=rf"{base}/new: cannot finish writing zarr.json .*501"):
            FeatureStore.create(f"{base}/new", "float16")
    finally:
        server.shutdown()
        thread.join(10)


# -- a writer killed mid-video, resume ----------------------------------------------------------------------------


def test_a_writer_killed_mid_video_leaves_nothing_visible_and_resume_writes_only_what_is_missing(
        s3_env, s3_bucket, npy_dataset, tmp_path):
    server = s3_env
    url = f"s3://{s3_bucket}/root"
    features = f"/{s3_bucket}/root/features/"
    # root zarr.json, then video_000's 9 objects (4 arrays, no au), then 3 of video_001's; the next PUT waits
    server.reset_log()
    server.hold_puts(after=1 + 9 + 3, prefix=features)
    script = textwrap.dedent(f"""
        from herostore.convert import import_npy
        import_npy({str(npy_dataset)!r}, {url!r}, preset="float16", workers=1, progress=False)
    """)
    writer = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while server.held() == 0 or len([r for r in server.log() if r.method == "PUT"
                                          and r.path.startswith(features)]) < 1 + 9 + 3:
            assert writer.poll() is None, writer.stderr.read().decode()
            assert time.monotonic() < deadline, "the writer never reached the held PUT"
            time.sleep(0.05)
        writer.send_signal(signal.SIGKILL)
        writer.wait(30)
    finally:
        if writer.poll() is None:
            writer.kill()
        server.release(drop=True)
        writer.stderr.close()
    store = FeatureStore(f"{url}/features")
    assert store.video_ids() == ["video_000"]
    assert store.stray_folders() == ["video_001"]  # its first objects, without the marker
    assert "video_001" not in store and "video_001" not in open_reader(f"{url}/features")
    with pytest.raises(VideoNotFoundError):
        store.read_video("video_001")
    with pytest.warns(UserWarning, match="3 labelled video id"):
        dataset = HeroDataset(f"{url}/features", npy_dataset / "labels.json", skip_missing=True)
    assert dataset.skipped == ["video_001", "video_002", "video_003"]
    report = validate_dataset(url, check_values=False)
    assert any("video_001" in f.where and "without zarr.json" in f.message for f in report.errors)

    server.reset_log()
    resumed = import_npy(npy_dataset, url, preset="float16", **QUIET)
    assert resumed.ok and resumed.skipped == ["video_000"]
    assert resumed.written == ["video_001", "video_002", "video_003"]
    puts = [r.key for r in server.log() if r.method == "PUT"]
    assert puts and all(key.split("/")[2] in ("video_001", "video_002", "video_003") for key in puts), puts
    assert FeatureStore(f"{url}/features").stray_folders() == []
    import_npy(npy_dataset, tmp_path / "local", preset="float16", **QUIET)
    same_tree(tmp_path / "local" / "features", server, f"{s3_bucket}/root/features")

    # an --overwrite killed mid-video: the video it was rewriting is absent, every other one whole
    server.reset_log()
    server.hold_puts(after=9 + 3, prefix=features)  # video_000 rewritten, then 3 objects of video_001
    writer = subprocess.Popen([sys.executable, "-m", "herostore", "import-npy", str(npy_dataset), url, "--preset",
                               "float16", "--overwrite", "--workers", "1", "--quiet"], env=dict(os.environ),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while server.held() == 0 or len([r for r in server.log() if r.method == "PUT"]) < 9 + 3:
            assert writer.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        writer.send_signal(signal.SIGKILL)
        writer.wait(30)
    finally:
        if writer.poll() is None:
            writer.kill()
        server.release(drop=True)
    store = FeatureStore(f"{url}/features")
    assert store.video_ids() == ["video_000", "video_002", "video_003"]
    for vid in store.video_ids():
        record, expected = store.read_video(vid), FeatureStore(tmp_path / "local" / "features").read_video(vid)
        assert all(np.array_equal(record[k], expected[k]) for k in expected if k != "transcript")
    assert import_npy(npy_dataset, url, preset="float16", **QUIET).written == ["video_001"]


# -- overwriting while someone reads ------------------------------------------------------------------------------


def test_an_overwrite_shows_a_reader_the_old_video_none_or_the_new_never_a_mix(s3_server, s3_bucket,
                                                                               monkeypatch):
    monkeypatch.setattr(RemoteDirectory, "rewrite_grace_s", 0.3)
    options = s3_server.storage_options()
    url = f"s3://{s3_bucket}/ow/features"
    store = FeatureStore.create(url, "raw", storage_options=options)
    versions = {"old": make_features(1, transcript="old"), "new": make_features(2, transcript="new")}
    store.write_video("v", versions["old"])
    reader = ZarrReader(url, storage_options=options)
    seen: dict[str, int] = {}
    mixed: list[str] = []
    stop = threading.Event()

    def classify() -> str:
        try:
            record = reader.read("v")
        except VideoNotFoundError:
            return "none"
        except VideoChangedError:
            return "changed"
        except Exception as exc:  # noqa: BLE001 - anything else is a finding, reported by the assertion below
            return f"{type(exc).__name__}: {exc}"
        for name, features in versions.items():
            if record.transcript == name and all(np.array_equal(record.arrays[k], features[k])
                                                 for k in record.arrays):
                return name
        mixed.append(record.transcript)
        return "mixed"

    def poll() -> None:
        while not stop.is_set():
            kind = classify()
            seen[kind] = seen.get(kind, 0) + 1

    assert classify() == "old"
    poller = threading.Thread(target=poll)
    poller.start()
    try:
        # one overwrite held after it removed the old video: the video is absent, not half there
        s3_server.hold_puts(after=0, prefix=f"/{s3_bucket}/ow/features/v/")
        writer = threading.Thread(target=store.write_video, args=("v", versions["new"]), kwargs={"overwrite": True})
        writer.start()
        deadline = time.monotonic() + 30
        while s3_server.held() == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert classify() == "none"
        s3_server.release(drop=False)
        writer.join(30)
        assert classify() == "new"
        for name in ("old", "new", "old", "new"):
            store.write_video("v", versions[name], overwrite=True)
            assert classify() == name
    finally:
        s3_server.release(drop=False)
        stop.set()
        poller.join(30)
    assert not mixed and set(seen) <= {"old", "new", "none", "changed"}, seen
    assert sum(seen.values()) > 0


def test_a_read_that_spans_an_overwrite_is_refused_not_mixed(s3_server, s3_bucket, monkeypatch):
    monkeypatch.setattr(RemoteDirectory, "rewrite_grace_s", 0.2)
    options = s3_server.storage_options()
    url = f"s3://{s3_bucket}/span/features"
    writer = FeatureStore.create(url, "raw", storage_options=options)
    writer.write_video("v", make_features(1, transcript="old"))
    reader = ZarrReader(url, storage_options=options)
    real = reader.location.video_document

    def then(change):
        def document(video_id):
            data = real(video_id)  # the old marker, planned from
            change()  # meanwhile another process rewrites or deletes the video
            return data
        return document

    reader.location.video_document = then(lambda: writer.write_video("v", make_features(2, transcript="new"),
                                                                      overwrite=True))
    with pytest.raises(VideoChangedError, match=r"video 'v' was overwritten or deleted while it was read"):
        reader.read("v")
    reader.location.video_document = then(lambda: writer.delete_video("v"))
    with pytest.raises(VideoChangedError):
        reader.read("v")
    reader.location.video_document = real
    with pytest.raises(VideoNotFoundError):
        reader.read("v")
    # a chunk missing under an unchanged marker is damage, said as such
    writer.write_video("v", make_features(3))
    s3_server.filesystem().rm_file(f"{s3_bucket}/span/features/v/bert/c/0/0")
    with pytest.raises(CorruptStoreError, match="chunk bert/c/0/0: the chunk object is missing"):
        reader.read("v")


# -- requests per sample ------------------------------------------------------------------------------------------


def test_requests_per_sample(s3_server, s3_bucket, npy_dataset, monkeypatch):
    """Directory store: one GET for the video's zarr.json and one per chunk it needs; .npy folder: one GET."""
    monkeypatch.setattr(RemoteDirectory, "rewrite_grace_s", 600.0)  # a slow read on a busy machine: no re-check
    options = s3_server.storage_options()
    import_npy(npy_dataset, f"s3://{s3_bucket}/root", preset="float16", storage_options=options, **QUIET)
    upload(s3_server, npy_dataset / "features", f"{s3_bucket}/npy/features")
    store = FeatureStore(f"s3://{s3_bucket}/root/features", storage_options=options)
    reader = store.reader()
    npy = open_reader(f"s3://{s3_bucket}/npy/features", storage_options=options)
    for vid in store.video_ids():
        sizes = store.location.sizes(vid)
        chunks = {key: size for key, size in sizes.items() if "/c/" in key}
        s3_server.reset_log()
        record = reader.read(vid)
        log = s3_server.log()
        assert [r.method for r in log] == ["GET"] * (1 + len(chunks)), log
        assert len(chunks) == len(record.arrays)  # these arrays are one chunk each
        assert sum(r.bytes_out for r in log) == sizes["zarr.json"] + sum(chunks.values())
        s3_server.reset_log()
        reader.read(vid, ["hubert", "bert"])
        assert sorted(r.key.split("/", 3)[-1] for r in s3_server.log()) == [
            "bert/c/0/0", "hubert/c/0/0", "zarr.json"]
        s3_server.reset_log()
        npy.read(vid)
        assert [r.method for r in s3_server.log()] == ["GET"]
    dataset = HeroDataset(f"s3://{s3_bucket}/root/features", npy_dataset / "labels.json", storage_options=options)
    s3_server.reset_log()
    list(DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate, multiprocessing_context="fork"))
    log = s3_server.log()
    # each worker opens the store: the packed-dataset probe (not there), the format probe, the root document
    opening = [r for r in log if r.key in ("root/features/zarr.json", "root/features/herostore-pack.json")]
    samples = [r for r in log if r not in opening]
    assert [(r.method, r.key.rsplit("/", 1)[-1], r.status) for r in opening].count(
        ("GET", "herostore-pack.json", 404)) == 2
    assert [r.method for r in opening] == ["GET"] * 6
    assert {r.method for r in samples} == {"GET"}
    assert len(samples) == sum(1 + len(store.shapes(v)) for v in store.video_ids())


# -- errors a user meets ------------------------------------------------------------------------------------------


def test_bad_credentials_and_a_missing_bucket_are_one_line_errors(s3_env, s3_bucket, npy_dataset, tmp_path):
    server = s3_env
    url = f"s3://{s3_bucket}/root"
    import_npy(npy_dataset, url, preset="float16", **QUIET)
    wrong = {**os.environ, "AWS_SECRET_ACCESS_KEY": "wrong-secret-0123456789"}
    commands = [["info", url], ["validate", url], ["export-npy", url, str(tmp_path / "out"), "--workers", "1"],
                ["import-npy", str(npy_dataset), f"{url}2", "--workers", "1"]]
    with server.enforce_auth():
        for args in commands:
            done = run_cli(args, wrong)
            assert done.returncode == 2, (args, done.stderr)
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
            assert lines[0].startswith(f"herostore {args[0]}: error: s3://{s3_bucket}/root")
            assert "access denied" in lines[0] and "check the credentials" in lines[0]
            for secret in (server.secret, "wrong-secret-0123456789"):
                assert secret not in done.stderr + done.stdout
    for args in (["info", "s3://no-such-bucket-here/root"],
                 ["import-npy", str(npy_dataset), "s3://no-such-bucket-here/root", "--workers", "1"]):
        done = run_cli(args, dict(os.environ))
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "the bucket 'no-such-bucket-here' does not exist" in lines[0], lines
        assert "s3://no-such-bucket-here/root" in lines[0] and server.secret not in done.stderr
    done = run_cli(["info", f"s3://{s3_bucket}/not-a-store"], dict(os.environ))
    assert done.returncode == 2 and f"s3://{s3_bucket}/not-a-store: no dataset root or features folder" in done.stderr


# -- the benchmark ------------------------------------------------------------------------------------------------


def test_the_object_storage_benchmark_runs(s3_server, tmp_path):
    """Smoke run of ``python -m benchmarks.s3 --quick`` on the session's server; no timing is asserted."""
    from benchmarks import s3 as bench

    cfg = bench.Config.quick()
    cfg.videos, cfg.batch_size = 3, 3
    results = bench.run(cfg, tmp_path, server=s3_server)
    formats = results["formats"]
    assert set(formats) == {f.key for f in bench.FORMATS} and formats["npy"]["requests"] == 1
    arrays = [4 + (i % cfg.shapes.au_every == 0) for i in range(3)]  # every au_every-th video has au
    assert formats["store"]["requests"] == pytest.approx(1 + np.mean(arrays))  # the marker, one chunk per array
    assert formats["store"]["mb"] < formats["npy"]["mb"] and formats["store"]["other_requests"] == 0
    assert formats["packed"]["requests"] == 1 and formats["packed"]["other_requests"] == 0  # one ranged GET
    assert "| directory store, default preset |" in bench.markdown(results, "python -m benchmarks.s3 --quick")
