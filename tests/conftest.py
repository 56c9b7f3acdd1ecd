"""Shared fixtures: spec-shaped feature dicts, npy folders and stores made on the fly; small text files; a local
S3 server (``tests/s3.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from s3 import s3_bucket, s3_env, s3_server  # noqa: F401 - fixtures for every test module

from herostore.store import FeatureStore
from herostore.testing.features import make_npy_dataset, sample_features


def make_features(seed: int = 0, *, lengths=(16, 5, 40, 7), au: bool = False, transcript: str | None = None) -> dict:
    """A small spec dict with random float32 arrays (deterministic for a seed)."""
    return sample_features(seed, lengths=lengths, au=au, transcript=transcript)


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` as UTF-8 exactly as given (no newline translation), creating the folders; return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="")
    return path


@pytest.fixture
def npy_dataset(tmp_path: Path) -> Path:
    """A spec dataset_root with 4 videos (video_001 and video_003 have `au`)."""
    return make_npy_dataset(tmp_path / "npy_root")


@pytest.fixture
def store_factory(tmp_path: Path):
    """Make a store with the given preset holding ``make_features(i)`` for i < n."""

    def factory(preset: str = "lossless", n: int = 3, name: str = "features") -> FeatureStore:
        store = FeatureStore.create(tmp_path / f"{preset.replace(':', '_')}-{name}", preset)
        for i in range(n):
            store.write_video(f"video_{i:03d}", make_features(i, au=i % 2 == 1))
        return store

    return factory
