"""HeroDataset and collate over both formats: equal samples, laziness, padding, workers, errors."""

from __future__ import annotations

import json
import multiprocessing
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_features, make_npy_dataset
from torch.utils.data import ConcatDataset, DataLoader, DistributedSampler

from herostore import npyfile
from herostore.dataset import HeroDataset, collate, subsample_index
from herostore.errors import ArgumentError, LabelError, SpecError, StoreError
from herostore.presets import get_preset
from herostore.schema import ARRAY_KEYS
from herostore.store import FeatureStore

TOLERANCE = {"lossless": 0.0, "raw": 0.0, "float16": 1e-3, "bitround": 1e-2}
SOURCES = ["npy", "lossless", "raw", "float16", "bitround"]  # "npy" or a store preset
EMOTIONS = ["neutral", "happy", "sad"]  # the classes of write_varied


def store_from_npy(root: Path, preset, name: str = "store") -> Path:
    """A store holding exactly the videos of ``root/features``."""
    store = FeatureStore.create(root / name, preset)
    for path in sorted((root / "features").glob("*.npy")):
        store.write_video(path.stem, npyfile.load_dict(path))
    return store.path


def build(tmp_path: Path, source: str, n: int = 4) -> tuple[Path, Path]:
    """(feature_root, labels.json) of ``make_npy_dataset`` in the format ``source``."""
    root = make_npy_dataset(tmp_path / "root", n)
    feature_root = root / "features" if source == "npy" else store_from_npy(root, source)
    return feature_root, root / "labels.json"


def write_varied(tmp_path: Path, source: str, lengths: list[tuple[int, int, int, int]], preset=None) -> tuple[Path, Path]:
    """Videos with the given (video_mae, clip, hubert, bert) lengths; video i has au when i is odd."""
    root = tmp_path / "varied"
    (root / "features").mkdir(parents=True)
    labels = []
    for i, lens in enumerate(lengths):
        vid = f"v{i}"
        npyfile.save_features(root / "features" / f"{vid}.npy", make_features(i, lengths=lens, au=i % 2 == 1))
        labels.append({"video_id": vid, "emotion": EMOTIONS[i % 3]})
    (root / "labels.json").write_text(json.dumps(labels))
    (root / "classes.json").write_text(json.dumps(EMOTIONS))
    if source == "npy":
        return root / "features", root / "labels.json"
    return store_from_npy(root, preset or source), root / "labels.json"


def expected(ann: Path) -> tuple[list[dict], list[str], dict[str, dict]]:
    """The label entries, the classes and each video's features, read straight from the npy files."""
    entries = json.loads(ann.read_text())
    classes = json.loads((ann.parent / "classes.json").read_text())
    features = {e["video_id"]: npyfile.load_dict(ann.parent / "features" / f"{e['video_id']}.npy") for e in entries}
    return entries, classes, features


def corrupt_chunks(array_dir: Path, keep=lambda parts: False) -> int:
    """Overwrite the chunk files of a stored array with garbage."""
    n = 0
    for path in array_dir.rglob("*"):
        if path.is_file() and path.name != "zarr.json" and not keep(path.relative_to(array_dir).parts):
            path.write_bytes(b"not a blosc chunk")
            n += 1
    return n


def write_labels(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps(entries))
    return path


# ------------------------------------------------------------------------------------------ samples


@pytest.mark.parametrize("source", SOURCES[1:])
def test_store_samples_equal_npy_samples(tmp_path, source):
    npy_root, ann = build(tmp_path, "npy")
    store_root = store_from_npy(npy_root.parent, source)
    a = HeroDataset(npy_root, ann, dtype=torch.float32)
    b = HeroDataset(store_root, ann, dtype=torch.float32)
    assert (a.format, b.format) == ("npy", "zarr")
    assert len(a) == len(b) == 4
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert x.keys() == y.keys()
        for m in ARRAY_KEYS:
            assert x[m].shape == y[m].shape and y[m].dtype == torch.float32
            if TOLERANCE[source] == 0:
                assert torch.equal(x[m], y[m]), (i, m)
            else:
                torch.testing.assert_close(y[m], x[m], rtol=TOLERANCE[source], atol=TOLERANCE[source])
        for key in ("transcript", "text", "label", "emotion", "sentiment", "video_id", "present"):
            assert x[key] == y[key], (i, key)


def test_fast_and_zarr_python_paths_agree(tmp_path):
    feature_root, ann = build(tmp_path, "float16", n=2)
    fast = HeroDataset(feature_root, ann, max_len=6, truncate="head")
    slow = HeroDataset(feature_root, ann, max_len=6, truncate="head", fast=False)
    assert slow.reader.fast is False
    for i in range(2):
        a, b = fast[i], slow[i]
        assert all(torch.equal(a[m], b[m]) for m in ARRAY_KEYS)


@pytest.mark.parametrize("source", SOURCES)
def test_sample_contents(tmp_path, source):
    feature_root, ann = build(tmp_path, source)
    entries, classes, features = expected(ann)
    ds = HeroDataset(feature_root, ann)
    assert len(ds) == len(entries) and ds.classes == classes
    keys = set(ARRAY_KEYS) | {"transcript", "text", "label", "emotion", "sentiment", "video_id", "present"}
    stored = torch.float16 if source == "float16" else torch.float32
    seen_au = set()
    for i, entry in enumerate(entries):
        s, f = ds[i], features[entry["video_id"]]
        assert set(s) == keys
        assert s["video_id"] == entry["video_id"] and s["emotion"] == entry["emotion"]
        assert s["label"] == classes.index(entry["emotion"])
        assert s["sentiment"] == entry.get("sentiment")
        assert s["transcript"] == f["transcript"]
        assert s["text"] == (entry["text"] if "text" in entry else f["transcript"])  # the spec's rule
        assert list(s["present"]) == list(ARRAY_KEYS)
        for m in ARRAY_KEYS:
            assert s[m].dtype == stored
            if m in f:
                assert s["present"][m] and s[m].shape == f[m].shape
            else:  # the spec's one substitution: a missing au is [1, 1024] zeros, marked absent
                assert m == "au" and not s["present"][m]
                assert s[m].shape == (1, 1024) and not s[m].any()
        seen_au.add(s["present"]["au"])
    assert seen_au == {True, False}
    assert {"text" in e for e in entries} == {True, False}


def test_modalities_keep_the_requested_order(tmp_path):
    feature_root, ann = build(tmp_path, "lossless")
    ds = HeroDataset(feature_root, ann, modalities=["bert", "au", "hubert"])
    s = ds[0]
    assert list(s["present"]) == ["bert", "au", "hubert"]
    assert not {"video_mae", "clip"} & set(s)
    with pytest.raises(SpecError, match="unknown modality 'audio'"):
        HeroDataset(feature_root, ann, modalities=["audio"])
    with pytest.raises(ArgumentError, match=r"modalities \['bert', 'bert'\]: each modality may be asked for once"):
        HeroDataset(feature_root, ann, modalities=["bert", "bert"])


@pytest.mark.parametrize("source", ["npy", "float16"])
def test_dtype(tmp_path, source):
    feature_root, ann = build(tmp_path, source, n=2)
    for dtype, expected in [(torch.float64, torch.float64), ("float32", torch.float32), (np.float16, torch.float16),
                            ("bfloat16", torch.bfloat16)]:
        s = HeroDataset(feature_root, ann, dtype=dtype)[0]
        assert all(s[m].dtype == expected for m in ARRAY_KEYS), dtype
    for bad in ("int32", "float99", torch.int64):
        with pytest.raises(ArgumentError, match=rf"dtype {bad!r}: expected a floating-point dtype, one of float16, "
                                                r"bfloat16, float32, float64"):
            HeroDataset(feature_root, ann, dtype=bad)


# ------------------------------------------------------------------------------------------ laziness


@pytest.mark.parametrize("source", ["npy", "lossless"])
def test_construction_reads_no_features(tmp_path, source):
    feature_root, ann = build(tmp_path, source)
    # Make every feature unreadable: construction must still work, since it only lists ids.
    if source == "npy":
        for path in feature_root.glob("*.npy"):
            path.write_bytes(b"garbage")
    else:
        for vid in FeatureStore(feature_root).video_ids():
            for m in ARRAY_KEYS:
                corrupt_chunks(feature_root / vid / m)
    ds = HeroDataset(feature_root, ann)
    assert len(ds) == 4
    with pytest.raises((SpecError, StoreError), match=r"not a \.npy file|checksum mismatch"):  # reading shows the damage
        ds[0]


def test_subset_read_opens_only_the_requested_arrays(tmp_path, monkeypatch):
    from herostore.locations import beneath

    feature_root, ann = build(tmp_path, "lossless")
    ds = HeroDataset(feature_root, ann, modalities=["hubert", "bert"])
    opened: list[tuple[str, ...]] = []
    real_open = beneath.open_beneath

    def spy(root_fd, relative):
        opened.append(Path(relative).parts)
        return real_open(root_fd, relative)

    monkeypatch.setattr(beneath, "open_beneath", spy)
    ds[0]
    opened = [parts for parts in opened if parts != ("zarr.json",)]  # the store's root document, when opened
    assert all(parts[0] == "video_000" for parts in opened)
    assert {parts[1] for parts in opened} == {"zarr.json", "hubert", "bert"}


def test_subset_read_touches_no_other_arrays(tmp_path):
    feature_root, ann = build(tmp_path, "lossless")
    for vid in FeatureStore(feature_root).video_ids():  # only hubert and bert stay readable
        for m in ("video_mae", "clip", "au"):
            corrupt_chunks(feature_root / vid / m)
    _, _, features = expected(ann)
    ds = HeroDataset(feature_root, ann, modalities=["hubert", "bert"])
    for i in range(len(ds)):
        s = ds[i]
        assert set(s["present"]) == {"hubert", "bert"}
        assert np.array_equal(s["hubert"].numpy(), features[s["video_id"]]["hubert"])
    with pytest.raises(StoreError, match=r"video_mae/c/0/0: checksum mismatch"):  # asking for video_mae reads them
        HeroDataset(feature_root, ann, modalities=["video_mae"])[0]


@pytest.mark.parametrize("source", ["npy", "lossless"])
def test_reader_is_asked_only_for_requested_modalities(tmp_path, source, monkeypatch):
    feature_root, ann = build(tmp_path, source)
    ds = HeroDataset(feature_root, ann, modalities=("hubert", "bert"), max_len=3, truncate="head")
    calls = []
    reader_cls = type(ds.reader)
    original = reader_cls.read

    def spy(self, video_id, modalities=None, max_rows=None):
        calls.append((video_id, tuple(modalities), dict(max_rows or {})))
        return original(self, video_id, modalities, max_rows=max_rows)

    monkeypatch.setattr(reader_cls, "read", spy)
    s = ds[2]
    assert calls == [("video_002", ("hubert", "bert"), {"hubert": 3, "bert": 3})]
    assert s["hubert"].shape == (3, 1024) and s["bert"].shape == (3, 768)


def test_pickles_without_a_reader(tmp_path):
    feature_root, ann = build(tmp_path, "lossless")
    ds = HeroDataset(feature_root, ann)
    assert ds._reader is None  # nothing opened at construction is kept
    first = ds[0]
    assert ds._reader is not None
    blob = pickle.dumps(ds)
    assert len(blob) < 10_000
    clone = pickle.loads(blob)
    assert clone._reader is None
    assert torch.equal(clone[0]["hubert"], first["hubert"])


# ------------------------------------------------------------------------------------------ max_len


@pytest.mark.parametrize("source", ["npy", "lossless"])
def test_max_len_head_and_subsample(tmp_path, source):
    feature_root, ann = build(tmp_path, source, n=2)
    full = HeroDataset(feature_root, ann, dtype=torch.float32)[0]
    head = HeroDataset(feature_root, ann, dtype=torch.float32, max_len=8, truncate="head")[0]
    sub = HeroDataset(feature_root, ann, dtype=torch.float32, max_len=8)[0]  # subsample is the default
    for m in ("video_mae", "hubert"):  # 16 and 40 rows
        assert torch.equal(head[m], full[m][:8])
        T = full[m].shape[0]
        assert torch.equal(sub[m], full[m][torch.linspace(0, T - 1, 8).long()])
        assert sub[m].shape == (8, 1024)
    for m in ("clip", "bert"):  # 5 and 7 rows: shorter than max_len, kept whole (collate pads)
        assert torch.equal(head[m], full[m]) and torch.equal(sub[m], full[m])
    per = HeroDataset(feature_root, ann, max_len={"hubert": 4}, truncate="head")[0]
    assert per["hubert"].shape == (4, 1024) and per["video_mae"].shape == (16, 1024)
    assert torch.equal(subsample_index(40, 8), torch.tensor([0, 5, 11, 16, 22, 27, 33, 39]))


def test_head_reads_only_the_first_chunks(tmp_path):
    preset = replace(get_preset("lossless"), name="lossless-rows4", chunk_rows=4)
    feature_root, ann = write_varied(tmp_path, "zarr", [(16, 5, 40, 7)], preset=preset)
    chunk_dir = feature_root / "v0" / "hubert"
    chunks = sorted(p.relative_to(chunk_dir).parts for p in chunk_dir.rglob("*") if p.is_file())
    chunks.remove(("zarr.json",))
    assert chunks == sorted(("c", str(i), "0") for i in range(10))  # 40 rows in chunks of 4
    full = HeroDataset(feature_root, ann, modalities=["hubert"])[0]["hubert"]
    assert corrupt_chunks(chunk_dir, keep=lambda parts: parts[1] in ("0", "1")) == 8  # rows 0-7 stay readable
    head = HeroDataset(feature_root, ann, modalities=["hubert"], max_len=8, truncate="head")[0]["hubert"]
    assert torch.equal(head, full[:8])
    with pytest.raises(StoreError, match=r"hubert/c/2/0: checksum mismatch"):  # subsampling needs every row
        HeroDataset(feature_root, ann, modalities=["hubert"], max_len=8)[0]


def test_max_len_and_truncate_are_checked(tmp_path):
    feature_root, ann = build(tmp_path, "npy", n=1)
    with pytest.raises(ArgumentError, match="truncate='tail': expected one of 'subsample', 'head'"):
        HeroDataset(feature_root, ann, truncate="tail")
    with pytest.raises(ArgumentError, match="max_len for 'hubert' is 0: expected a positive int"):
        HeroDataset(feature_root, ann, max_len={"hubert": 0})
    with pytest.raises(SpecError, match="unknown modality 'audio'"):
        HeroDataset(feature_root, ann, max_len={"audio": 4})


# ------------------------------------------------------------------------------------------ normalize


def _write_stats(store_root: Path, stats: dict) -> None:
    meta_path = store_root / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["herostore"]["stats"] = stats
    meta_path.write_text(json.dumps(meta))


def test_normalize_with_stats(tmp_path):
    feature_root, ann = build(tmp_path, "float16", n=2)
    rng = np.random.default_rng(7)
    mean = rng.standard_normal(1024).astype(np.float32)
    std = rng.uniform(0.5, 2.0, 1024).astype(np.float32)
    std[3] = 0.0  # a constant feature: divided by 1, not by 0
    _write_stats(feature_root, {"hubert": {"mean": mean.tolist(), "std": std.tolist(), "count": 80}})
    raw = HeroDataset(feature_root, ann, modalities=["hubert"], dtype=torch.float32)[1]["hubert"]
    ds = HeroDataset(feature_root, ann, modalities=["hubert"], normalize=True, dtype=torch.float32)
    got = ds[1]["hubert"]
    safe_std = np.where(std > 0, std, 1)
    expected = (raw.numpy() - mean) / safe_std
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert HeroDataset(feature_root, ann, modalities=["hubert"], normalize=True)[1]["hubert"].dtype == torch.float16
    with pytest.raises(StoreError, match=r"no 'bert' \(they cover 'hubert'\).*herostore stats"):
        HeroDataset(feature_root, ann, modalities=["hubert", "bert"], normalize=True)


@pytest.mark.parametrize("source", ["npy", "lossless"])
def test_normalize_without_stats_is_an_error(tmp_path, source):
    feature_root, ann = build(tmp_path, source, n=1)
    with pytest.raises(StoreError, match=r"normalize=True, but this (npy|zarr) feature source has no statistics; "
                                         r"compute them with `herostore stats"):
        HeroDataset(feature_root, ann, normalize=True)


# ------------------------------------------------------------------------------------------ labels


def test_classes_from_path_list_or_derived(tmp_path):
    feature_root, ann = build(tmp_path, "npy")
    entries, classes, _ = expected(ann)
    used = sorted({e["emotion"] for e in entries})
    assert HeroDataset(feature_root, ann).classes == classes  # classes.json beside labels.json
    (ann.parent / "classes.json").unlink()
    assert HeroDataset(feature_root, ann).classes == used  # derived: sorted
    as_list = used[::-1] + ["extra"]
    ds = HeroDataset(feature_root, ann, classes=as_list)
    assert ds.classes == as_list and ds[0]["label"] == as_list.index(entries[0]["emotion"])
    path = tmp_path / "my_classes.json"
    path.write_text(json.dumps(used[1:] + used[:1]))
    assert HeroDataset(feature_root, ann, classes=path)[0]["label"] == (used[1:] + used[:1]).index(entries[0]["emotion"])
    with pytest.raises(LabelError, match="unique non-empty strings"):
        HeroDataset(feature_root, ann, classes=["sad", "sad"])


def test_unknown_label(tmp_path):
    feature_root, ann = build(tmp_path, "npy")
    entries, classes, _ = expected(ann)
    entries[1]["emotion"] = "furious"
    entries[3]["emotion"] = "furious"
    write_labels(ann, entries)
    with pytest.raises(LabelError, match=r"2 label\(s\) not in the classes: 'furious' \(video ids 'video_001', "
                                         rf"'video_003'\); valid classes: {', '.join(classes)}"):
        HeroDataset(feature_root, ann)
    with pytest.raises(LabelError, match="'furious'"):
        HeroDataset(feature_root, ann, classes=classes, skip_missing=True)  # skip_missing is for features only


@pytest.mark.parametrize("source", ["npy", "lossless"])
def test_empty_labels_are_an_error(tmp_path, source):
    feature_root, ann = build(tmp_path, source, n=1)
    write_labels(ann, [])
    with pytest.raises(LabelError, match=r"labels\.json: no labelled videos \(an empty list\); a dataset needs at least "
                                         r'one \{"video_id": \.\.\., "emotion": \.\.\.\} entry'):
        HeroDataset(feature_root, ann, classes=["sad"])


def test_collate_of_nothing_is_an_argument_error():
    with pytest.raises(ArgumentError, match=r"collate: empty batch \(expected at least one sample\)"):
        collate([])


def test_duplicate_id(tmp_path):
    feature_root, ann = build(tmp_path, "lossless")
    entries = json.loads(ann.read_text())
    write_labels(ann, entries + [dict(entries[2])])
    with pytest.raises(LabelError, match=r"duplicate video_id 'video_002' at entry \[2\] and entry \[4\]"):
        HeroDataset(feature_root, ann)


@pytest.mark.parametrize("source", ["npy", "lossless"])
def test_missing_features(tmp_path, source):
    feature_root, ann = build(tmp_path, source)
    entries = json.loads(ann.read_text())
    ghosts = [f"ghost_{i}" for i in range(7)]
    write_labels(ann, entries + [{"video_id": g, "emotion": "sad"} for g in ghosts])
    with pytest.raises(LabelError, match=r"7 labelled video id\(s\) have no features in .*: 'ghost_0', 'ghost_1', "
                                         r"'ghost_2', 'ghost_3', 'ghost_4' and 2 more; .*skip_missing=True"):
        HeroDataset(feature_root, ann)
    with pytest.warns(UserWarning, match=r"7 labelled video id\(s\) have no features in .*; skipping them: "
                                         r"'ghost_0', .* and 2 more"):
        ds = HeroDataset(feature_root, ann, skip_missing=True)
    assert len(ds) == 4 and ds.skipped == ghosts
    assert [ds[i]["video_id"] for i in range(4)] == [f"video_{i:03d}" for i in range(4)]


def test_skip_missing_warning_lists_few_ids(tmp_path):
    feature_root, ann = build(tmp_path, "npy", n=2)
    write_labels(ann, json.loads(ann.read_text()) + [{"video_id": "lost", "emotion": "sad"}])
    with pytest.warns(UserWarning, match=r"1 labelled video id\(s\) .*skipping them: 'lost'$"):
        assert len(HeroDataset(feature_root, ann, skip_missing=True)) == 2


# ------------------------------------------------------------------------------------------ collate

LENGTHS = [(16, 5, 40, 7), (3, 2, 9, 11), (20, 5, 1, 4)]


@pytest.mark.parametrize("source", ["npy", "float16"])
def test_collate_pads_and_masks(tmp_path, source):
    feature_root, ann = write_varied(tmp_path, source, LENGTHS)
    ds = HeroDataset(feature_root, ann)
    samples = [ds[i] for i in range(3)]
    batch = collate(samples)
    dims = {"video_mae": 1024, "clip": 1408, "hubert": 1024, "bert": 768, "au": 1024}
    column = {"video_mae": 0, "clip": 1, "hubert": 2, "bert": 3}
    for m in ARRAY_KEYS:
        lengths = [s[m].shape[0] if s["present"][m] else 0 for s in samples]
        if m in column:
            assert lengths == [lens[column[m]] for lens in LENGTHS]
        else:  # zero-filled (a [1, 1024] fill row, but no data: length 0), present, zero-filled
            assert samples[0][m].shape[0] == samples[2][m].shape[0] == 1
            assert lengths[0] == lengths[2] == 0 and lengths[1] > 1
        t_max = max(lengths)
        assert batch[m].shape == (3, t_max, dims[m])
        assert batch[m].dtype == samples[0][m].dtype
        assert torch.equal(batch[f"{m}_lengths"], torch.tensor(lengths))
        assert batch[f"{m}_lengths"].dtype == torch.long
        mask = batch[f"{m}_mask"]
        assert mask.dtype == torch.bool and mask.shape == (3, t_max)
        for i, n in enumerate(lengths):
            assert mask[i, :n].all() and not mask[i, n:].any()
            assert torch.equal(batch[m][i, :n], samples[i][m][:n])
            assert not batch[m][i, n:].any()  # zero padding
    assert batch["present"].dtype == torch.bool and batch["present"].shape == (3, 5)
    assert batch["present"].tolist() == [[m != "au" or i == 1 for m in ARRAY_KEYS] for i in range(3)]
    assert torch.equal(batch["label"], torch.tensor([0, 1, 2])) and batch["label"].dtype == torch.long
    assert batch["video_id"] == ["v0", "v1", "v2"]
    assert batch["emotion"] == EMOTIONS and batch["sentiment"] == [None] * 3
    assert batch["transcript"] == batch["text"] == [s["transcript"] for s in samples]
    assert ds.collate is collate


@pytest.mark.parametrize("source", ["npy", "lossless"])
def test_collate_zero_filled_modality_has_no_rows(tmp_path, source):
    """A modality no sample has: length 0 and an all-False mask, but still a [B, 1, D] tensor."""
    feature_root, ann = write_varied(tmp_path, source, [LENGTHS[0], LENGTHS[1], LENGTHS[2]])
    ds = HeroDataset(feature_root, ann, modalities=["au", "bert"])
    samples = [ds[0], ds[2]]  # v0 and v2 have no au
    assert [s["present"]["au"] for s in samples] == [False, False]
    batch = collate(samples)
    assert batch["au"].shape == (2, 1, 1024) and not batch["au"].any()
    assert batch["au_lengths"].tolist() == [0, 0]
    assert batch["au_mask"].shape == (2, 1) and not batch["au_mask"].any()
    assert batch["bert_lengths"].tolist() == [7, 4] and batch["bert_mask"].sum().item() == 11
    assert batch["present"].tolist() == [[False, True], [False, True]]
    mixed = collate([ds[0], ds[1]])  # v1 has au: only its rows count
    assert mixed["au_lengths"].tolist() == [0, 3]
    assert mixed["au_mask"].tolist() == [[False] * 3, [True] * 3]
    assert not mixed["au"][0].any() and torch.equal(mixed["au"][1], ds[1]["au"])


def test_collate_follows_requested_order_and_flattens_3d():
    def sample(vid, clip, label):
        return {"clip": clip, "hubert": torch.ones(2, 4), "present": {"clip": True, "hubert": True}, "label": label,
                "transcript": "t", "text": "t", "emotion": "e", "sentiment": None, "video_id": vid}

    batch = collate([sample("a", torch.arange(24.0).reshape(2, 3, 4), 0), sample("b", torch.ones(5, 4), 1)])
    assert batch["clip"].shape == (2, 6, 4)  # [2, 3, 4] flattened to 6 rows
    assert torch.equal(batch["clip"][0], torch.arange(24.0).reshape(6, 4))
    assert batch["clip_lengths"].tolist() == [6, 5]
    assert batch["present"].shape == (2, 2)
    with pytest.raises(SpecError, match=r"'hubert' has different last dims in one batch \('a': 4, 'b': 3\)"):
        bad = sample("b", torch.ones(5, 4), 1)
        bad["hubert"] = torch.ones(2, 3)
        collate([sample("a", torch.ones(1, 4), 0), bad])


# ------------------------------------------------------------------------------------------ workers


def _all_batches(loader) -> dict[str, dict]:
    out = {}
    for batch in loader:
        for i, vid in enumerate(batch["video_id"]):
            out[vid] = {"hubert": batch["hubert"][i, : batch["hubert_lengths"][i]].clone(),
                        "label": int(batch["label"][i])}
    return out


def assert_same_batch(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, torch.Tensor):
            assert value.dtype == b[key].dtype and torch.equal(value, b[key]), key
        else:
            assert value == b[key], key


@pytest.mark.parametrize("context", ["fork", "spawn", "forkserver"])
def test_dataloader_workers_give_identical_batches_from_both_formats(tmp_path, context):
    npy_root, ann = write_varied(tmp_path, "npy", LENGTHS + [(2, 2, 6, 2)])
    store_root = store_from_npy(ann.parent, "lossless")
    datasets = [HeroDataset(root, ann) for root in (npy_root, store_root)]  # all five modalities
    assert [ds.format for ds in datasets] == ["npy", "zarr"]
    # Read in the parent first: its readers are now open, and a worker must not use them after a fork.
    expected = [collate([ds[i], ds[i + 1]]) for ds in datasets for i in (0, 2)]
    mp_context = multiprocessing.get_context(context)
    if context == "forkserver":  # import torch once in the server, not in every worker (ignored if it runs already)
        mp_context.set_forkserver_preload(["herostore.dataset", "herostore.reader"])
    # One loader over both formats (one worker start-up): batches 0-1 come from the npy folder, 2-3 from the store.
    loader = DataLoader(ConcatDataset(datasets), batch_size=2, num_workers=2, collate_fn=collate,
                        multiprocessing_context=mp_context)
    batches = list(loader)
    assert len(batches) == 4
    assert [vid for batch in batches for vid in batch["video_id"]] == ["v0", "v1", "v2", "v3"] * 2
    for from_npy, from_store in zip(batches[:2], batches[2:]):
        assert_same_batch(from_npy, from_store)
    for got, want in zip(batches, expected):
        assert_same_batch(got, want)


@pytest.mark.parametrize("source", ["npy", "lossless"])
def test_persistent_workers_two_epochs(tmp_path, source):
    feature_root, ann = write_varied(tmp_path, source, LENGTHS + [(2, 2, 6, 2)])
    ds = HeroDataset(feature_root, ann, modalities=["hubert"])
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate, persistent_workers=True,
                        multiprocessing_context="fork")
    first, second = _all_batches(loader), _all_batches(loader)
    assert first.keys() == second.keys() == {"v0", "v1", "v2", "v3"}
    assert all(torch.equal(first[k]["hubert"], second[k]["hubert"]) for k in first)


def test_distributed_sampler_split(tmp_path):
    feature_root, ann = build(tmp_path, "lossless")
    ds = HeroDataset(feature_root, ann, modalities=["bert"])
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=3)
        sampler.set_epoch(1)
        loader = DataLoader(ds, batch_size=2, sampler=sampler, collate_fn=collate)
        seen.append([vid for batch in loader for vid in batch["video_id"]])
    assert len(seen[0]) == len(seen[1]) == 2
    assert sorted(seen[0] + seen[1]) == [f"video_{i:03d}" for i in range(4)]
