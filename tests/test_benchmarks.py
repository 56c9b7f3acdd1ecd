"""Smoke test of the benchmarks: the quick mode runs, and every format's reader returns the source's data.

No timing is asserted: the numbers come from ``python -m benchmarks.run --full`` (docs/benchmarks.md).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("h5py")
pytest.importorskip("lmdb")
pytest.importorskip("safetensors")
pytest.importorskip("matplotlib")
pytest.importorskip("psutil")

from benchmarks import data as bdata
from benchmarks.formats import AUDIO_TEXT, make_formats, make_read_paths
from herostore.schema import ARRAY_KEYS

SHAPES = bdata.Shapes(video_mae=5, clip=3, hubert=(2, 4), bert=(1, 3), au=(2, 3), au_every=2)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Every format holding 3 videos of random data, and the read paths over them."""
    root = tmp_path_factory.mktemp("formats")
    formats = make_formats(root)
    for fmt in formats:
        fmt.write(bdata.videos(3, "random", SHAPES, None, seed=5))
    sources = dict(bdata.videos(3, "random", SHAPES, None, seed=5))
    return formats, make_read_paths(formats), sources


def _rtol(format_key: str) -> float:
    """Relative error of the stored precision: float16 rounds to 11 significant bits, BitRound(7) to 8."""
    if "float16" in format_key:
        return 2**-11
    if "bitround" in format_key:
        return 2**-8
    return 0.0


def test_every_reader_returns_the_source_at_its_precision(written):
    formats, paths, sources = written
    assert {p.fmt.key for p in paths} == {f.key for f in formats}
    for path in paths:
        reader = path.open()
        try:
            for vid, src in sources.items():
                for modalities in (ARRAY_KEYS, AUDIO_TEXT):
                    arrays, transcript = reader.read(vid, modalities)
                    assert transcript == src["transcript"], path.name
                    assert list(arrays) == [m for m in modalities if m in src], (path.name, vid)
                    rtol = _rtol(path.fmt.key)
                    for key, got in arrays.items():
                        want = path.fmt.expected(src[key])
                        assert got.dtype == want.dtype and np.array_equal(got, want), (path.name, vid, key)
                        np.testing.assert_allclose(got.astype(np.float32), src[key], rtol=rtol, atol=2**-24)
        finally:
            reader.close()


def test_lossless_formats_are_bit_exact(written):
    _, paths, sources = written
    for path in paths:
        if path.fmt.precision != "fp32":
            continue
        reader = path.open()
        try:
            arrays, _ = reader.read("vid_00000", ARRAY_KEYS)
            for key, got in arrays.items():
                assert got.dtype == np.float32
                assert got.tobytes() == sources["vid_00000"][key].tobytes(), (path.name, key)
        finally:
            reader.close()


def test_trained_network_data_has_spec_widths():
    pool = np.random.default_rng(0).standard_normal((7, 64, 384), dtype=np.float32)  # stands in for MiniLM here
    features = bdata.make_video(0, "trained", bdata.QUICK_SHAPES, pool)
    assert {k: v.shape[1] for k, v in features.items() if k != "transcript"} == bdata.WIDTHS
    assert features["video_mae"].shape[0] == bdata.QUICK_SHAPES.video_mae
    # rows are consecutive tokens of the stream (wrapping), layers 5 and 6 side by side for bert
    bert = features["bert"]
    start = int(np.flatnonzero((pool[5] == bert[0, :384]).all(axis=1))[0])
    rows = (start + np.arange(bert.shape[0])) % pool.shape[1]
    assert np.array_equal(bert, np.concatenate([pool[5][rows], pool[6][rows]], axis=1))


def test_quick_mode_runs_and_writes_its_report(tmp_path):
    from benchmarks import run

    out = tmp_path / "results"
    results = run.main(["--quick", "--out", str(out), "--workdir", str(tmp_path / "work")])
    assert {p.name for p in out.iterdir()} >= {"results.md", "results.png", "results.json"}
    assert all(v["ok"] for v in results["verify"].values()), results["verify"]
    assert results["verify"]["hs-lossless fast"]["max_abs_err"] == 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["mode"] == "quick"
    for name, timing in saved["timings"].items():
        assert timing["warm_all"]["samples_per_s"] > 0, name
    md = (out / "results.md").read_text()
    assert "## Targets" in md and "trained" in md and "random" in md
    assert len(saved["targets"]) >= 10
    # the run cleans up its data, keeping only the MiniLM cache
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["cache", "labels.json"]
