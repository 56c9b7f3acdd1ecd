"""The HERO-compatible adapter: the reference sample on known inputs, over both formats, and its errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from herostore import npyfile
from herostore.compat import HERODataset
from herostore.compat.hero import EMOTIONS, INSTRUCTIONS, MODALITY_ORDER
from herostore.errors import LabelError, SpecError
from herostore.store import FeatureStore

REFERENCE_INSTRUCTIONS = [  # verbatim from the reference hero_dataset.py
    "Please determine which emotion label in the video represents: happy, sad, neutral, angry, worried, surprise.",
    "Identify the displayed emotion in the video.",
    "Analyze the multimodal evidence and predict the emotion.",
]
PREFIX = "<video><VideoHere></video> "
SOURCES = ["npy", "lossless", "float16"]


def rows(n: int, d: int, offset: float = 0.0) -> np.ndarray:
    """Row t holds t + offset in every column."""
    return np.repeat((np.arange(n, dtype=np.float32) + offset)[:, None], d, axis=1)


def known_features() -> dict[str, dict]:
    """Two videos with values that show which row and column of each array ends up where."""
    clip3d = (np.arange(4, dtype=np.float32)[:, None, None] + (np.arange(1408) % 7).astype(np.float32)[None, None, :])
    return {
        # T > 64 for video_mae (subsampled), T < 64 elsewhere (zero-padded); a 3-D clip [frames, patches, 1408]
        "long": {
            "video_mae": rows(100, 1024, offset=1),
            "hubert": np.full((30, 1024), 2.0, np.float32),
            "au": np.full((10, 1024), 3.0, np.float32),
            "bert": np.full((7, 768), 4.0, np.float32),
            "clip": np.broadcast_to(clip3d, (4, 10, 1408)).copy(),
            "transcript": "a long one",
        },
        # no au; hubert T > 64
        "short": {
            "video_mae": np.full((5, 1024), 1.0, np.float32),
            "hubert": rows(70, 1024, offset=1),
            "bert": np.full((3, 768), 4.0, np.float32),
            "clip": np.full((20, 1408), 5.0, np.float32),
            "transcript": "a short one",
        },
    }


LABELS = [{"video_id": "long", "emotion": "happy", "text": "hi"}, {"video_id": "short", "emotion": "doubt"}]


def make_source(tmp_path: Path, source: str, labels=LABELS) -> tuple[Path, Path]:
    features = known_features()
    folder = tmp_path / "features"
    folder.mkdir()
    for vid, f in features.items():
        npyfile.save_features(folder / f"{vid}.npy", f)
    ann = tmp_path / "labels.json"
    ann.write_text(json.dumps(labels))
    if source == "npy":
        return folder, ann
    store = FeatureStore.create(tmp_path / "store", source)
    for vid, f in features.items():
        store.write_video(vid, f)
    return store.path, ann


def expected_features(vid: str) -> torch.Tensor:
    out = torch.zeros(5, 64, 1024)
    sub = lambda T: torch.linspace(0, T - 1, 64).long()
    if vid == "long":
        out[0] = (sub(100).float() + 1)[:, None]  # video_mae: 100 rows subsampled to 64
        out[1, :30] = 2.0  # hubert: 30 rows, zero-padded
        out[2, :10] = 3.0  # au
        out[3, :7, :768] = 4.0  # bert: 768 columns zero-padded to 1024
        out[4, :10] = 1.5 + (torch.arange(1024) % 7).float()  # clip: mean over 4 frames, cut to 1024 columns
    else:
        out[0, :5] = 1.0
        out[1] = (sub(70).float() + 1)[:, None]
        # au missing: zeros
        out[3, :3, :768] = 4.0
        out[4, :20] = 5.0
    return out


class Refuses:
    """A processor the reference never calls."""

    def __call__(self, *args, **kwargs):
        raise AssertionError("the reference never applies vis_processor/text_processor to features")


# ------------------------------------------------------------------------------------------ samples


@pytest.mark.parametrize("source", SOURCES)
def test_reference_sample_on_known_inputs(tmp_path, source):
    root, ann = make_source(tmp_path, source)
    ds = HERODataset(Refuses(), Refuses(), str(root), str(ann))
    assert len(ds) == 2
    assert ds.vis_processor.__class__ is Refuses and ds.text_processor.__class__ is Refuses
    for i, (vid, emotion) in enumerate([("long", "happy"), ("short", "doubt")]):
        s = ds[i]
        assert set(s) == {"image", "video_features", "modality_mask", "instruction_input", "answer", "emotion",
                          "image_id"}
        assert s["video_features"].shape == (5, 64, 1024) and s["video_features"].dtype == torch.float32
        assert torch.equal(s["video_features"], expected_features(vid)), vid
        assert torch.equal(s["modality_mask"], torch.ones(5)) and s["modality_mask"].dtype == torch.float32
        assert torch.equal(s["image"], torch.zeros(3, 224, 224)) and s["image"].dtype == torch.float32
        assert s["instruction_input"].startswith(PREFIX)
        assert s["instruction_input"][len(PREFIX):] in REFERENCE_INSTRUCTIONS
        assert s["answer"] == emotion and s["emotion"] == EMOTIONS.index(emotion)
        assert s["image_id"] == vid


def test_constants_match_the_reference():
    assert list(INSTRUCTIONS) == REFERENCE_INSTRUCTIONS
    assert list(EMOTIONS) == ["neutral", "angry", "happy", "sad", "worried", "surprise", "fear", "contempt", "doubt"]
    assert MODALITY_ORDER == ("video_mae", "hubert", "au", "bert", "clip")


def test_formats_give_equal_samples(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = HERODataset(None, None, *make_source(tmp_path / "a", "npy"))
    b = HERODataset(None, None, *make_source(tmp_path / "b", "lossless"))
    for i in range(2):
        random.seed(i)
        x = a[i]
        random.seed(i)
        y = b[i]
        assert torch.equal(x["video_features"], y["video_features"])
        assert {k: v for k, v in x.items() if k not in ("video_features", "image", "modality_mask")} == \
               {k: v for k, v in y.items() if k not in ("video_features", "image", "modality_mask")}


def test_instruction_uses_pythons_random(tmp_path):
    ds = HERODataset(None, None, *make_source(tmp_path, "npy"))
    seen = set()
    for seed in range(30):
        random.seed(seed)
        want = random.choice(REFERENCE_INSTRUCTIONS)
        random.seed(seed)
        got = ds[0]["instruction_input"]
        assert got == PREFIX + want
        seen.add(got)
    assert len(seen) == 3


def test_default_collate_batches(tmp_path):
    ds = HERODataset(None, None, *make_source(tmp_path, "lossless"))
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["video_features"].shape == (2, 5, 64, 1024) and batch["modality_mask"].shape == (2, 5)
    assert batch["image_id"] == ["long", "short"] and batch["answer"] == ["happy", "doubt"]
    assert batch["emotion"].tolist() == [2, 8]


# ------------------------------------------------------------------------------------------ modality dropout


def test_dropout_all_keeps_motion(tmp_path):
    ds = HERODataset(None, None, *make_source(tmp_path, "npy"), modality_dropout_prob=1.0)
    s = ds[0]
    assert torch.equal(s["modality_mask"], torch.tensor([1.0, 0, 0, 0, 0]))
    want = expected_features("long")
    assert torch.equal(s["video_features"][0], want[0]) and not s["video_features"][1:].any()


def test_dropout_follows_torch_rng_and_never_drops_all(tmp_path):
    ds = HERODataset(None, None, *make_source(tmp_path, "npy"), modality_dropout_prob=0.7)
    full = expected_features("long")
    masks = set()
    for seed in range(40):
        torch.manual_seed(seed)
        keep = torch.bernoulli(torch.full((5,), 0.3))
        if keep.sum() == 0:
            keep[0] = 1.0
        torch.manual_seed(seed)
        s = ds[0]
        assert torch.equal(s["modality_mask"], keep)
        assert s["modality_mask"].sum() >= 1
        assert torch.equal(s["video_features"], full * keep[:, None, None])
        masks.add(tuple(keep.tolist()))
    assert len(masks) > 5


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", True])
def test_dropout_prob_is_checked(tmp_path, p):
    with pytest.raises(ValueError, match=r"modality_dropout_prob=.*expected a probability in \[0, 1\]"):
        HERODataset(None, None, *make_source(tmp_path, "npy"), modality_dropout_prob=p)


# ------------------------------------------------------------------------------------------ errors where the reference substitutes


def test_unknown_label_is_an_error_not_neutral(tmp_path):
    labels = LABELS + [{"video_id": "x", "emotion": "joy"}]
    with pytest.raises(LabelError, match=r"HERO's fixed emotion list\): 1 label\(s\) not in the classes: 'joy' "
                                         r"\(video ids 'x'\); valid classes: neutral, angry, happy, sad"):
        HERODataset(None, None, *make_source(tmp_path, "npy", labels))


@pytest.mark.parametrize("source", ["npy", "lossless"])
def test_missing_features_is_an_error_not_the_next_sample(tmp_path, source):
    labels = LABELS + [{"video_id": "gone", "emotion": "sad"}]
    with pytest.raises(LabelError, match=r"1 labelled video id\(s\) have no features in .*: 'gone' \(the reference "
                                         r"loader would silently return the next sample instead\)"):
        HERODataset(None, None, *make_source(tmp_path, source, labels))


def test_unreadable_file_is_an_error_not_the_next_sample(tmp_path):
    root, ann = make_source(tmp_path, "npy")
    ds = HERODataset(None, None, root, ann)
    (root / "short.npy").write_bytes(b"not numpy")
    assert ds[0]["image_id"] == "long"
    with pytest.raises(SpecError, match=r"short\.npy: not a \.npy file"):
        ds[1]


def test_duplicate_id_is_an_error(tmp_path):
    with pytest.raises(LabelError, match=r"duplicate video_id 'long' at entry \[0\] and entry \[2\]"):
        HERODataset(None, None, *make_source(tmp_path, "npy", LABELS + [LABELS[0]]))
