"""Small synthetic spec datasets for the demo and the tests (random features, not real activations)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import npyfile

SAMPLE_EMOTIONS = ("neutral", "happy", "sad", "angry")


def sample_features(seed: int, *, lengths: tuple[int, int, int, int] = (16, 5, 40, 7), au: bool = False,
                    transcript: str | None = None) -> dict[str, Any]:
    """A spec feature dict with random float32 arrays, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    t_mae, t_clip, t_hubert, t_bert = lengths
    features: dict[str, Any] = {
        "video_mae": rng.standard_normal((t_mae, 1024), dtype=np.float32),
        "clip": rng.standard_normal((t_clip, 1408), dtype=np.float32),
        "hubert": rng.standard_normal((t_hubert, 1024), dtype=np.float32),
        "bert": rng.standard_normal((t_bert, 768), dtype=np.float32),
        "transcript": f"sample transcript {seed}" if transcript is None else transcript,
    }
    if au:
        features["au"] = rng.standard_normal((t_mae, 1024), dtype=np.float32)
    return features


def make_npy_dataset(root: str | os.PathLike, n: int = 4, *, seed: int = 0) -> Path:
    """Write a spec dataset_root: features/*.npy, labels.json, classes.json (every other video has `au`)."""
    root = Path(root)
    features_dir = root / "features"
    features_dir.mkdir(parents=True, exist_ok=True)
    labels = []
    for i in range(n):
        vid = f"video_{i:03d}"
        lengths = (16 + i, 5, 40 + 3 * i, 7 + i)
        npyfile.save_features(features_dir / f"{vid}.npy", sample_features(seed + i, lengths=lengths, au=i % 2 == 1))
        entry: dict[str, Any] = {"video_id": vid, "emotion": SAMPLE_EMOTIONS[i % len(SAMPLE_EMOTIONS)]}
        if i % 2 == 0:
            entry["sentiment"] = "positive" if entry["emotion"] == "happy" else "neutral"
            entry["text"] = f"ground-truth text of {vid}"
        labels.append(entry)
    (root / "labels.json").write_text(json.dumps(labels, indent=1, ensure_ascii=False), "utf-8")
    (root / "classes.json").write_text(json.dumps(list(SAMPLE_EMOTIONS)), "utf-8")
    return root
