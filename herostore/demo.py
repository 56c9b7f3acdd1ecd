"""The README's main job: the whole pipeline on generated sample media, offline.

Sample clips with sound (and one without audio, one silent, one very short, one at an
odd frame rate) -> feature extraction into a herostore store with RANDOM-WEIGHT test
models -> validate -> export-npy -> validate -> import-npy back (lossless, bit-exact)
-> info -> one batch from each format through ``DataLoader(HeroDataset(...))``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .convert import export_npy, import_npy
from .info import render_info, store_info
from .validate import validate_dataset

OUTPUTS = ("clips", "dataset", "npy", "lossless")
MODELS_DIR = "tiny-models"  # kept between runs: building them is the slow part of the demo
_EMOTIONS = ("happy", "sad", "neutral", "angry", "surprise", "worried")


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run_demo(workdir: str) -> int:
    """Run every step, printing each; returns the exit code (0 only if every step succeeded)."""
    from .extract import ModelConfig, RunSettings, run_extraction
    from .testing import build_tiny_models, write_sample_set

    work = Path(workdir)
    for name in OUTPUTS:
        shutil.rmtree(work / name, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)

    _step(f"generating sample clips in {work / 'clips'}")
    clips = write_sample_set(work / "clips", bad=False)
    print(", ".join(clips), "(one has no audio track, one a silent one)")
    dataset = work / "dataset"
    dataset.mkdir()
    _write_labels(dataset, list(clips))

    _step(f"building RANDOM-WEIGHT test models (spec hidden sizes, 1 layer) in {work / MODELS_DIR}")
    print("stand-ins for the real checkpoints so the demo runs offline: the features they give are meaningless")
    models = build_tiny_models(work / MODELS_DIR, languages=("en",))

    _step("extract: clips -> herostore store dataset/features (default preset, text from labels.json)")
    extraction = run_extraction(work / "clips", dataset / "features", models=ModelConfig(model_dir=models, device="cpu"),
                                labels=dataset / "labels.json", settings=RunSettings(progress=False))
    print(extraction.summary())

    _step("validate the store against the spec")
    checks = [validate_dataset(dataset)]
    print(checks[-1].render())

    _step("export-npy: store -> spec dict .npy files in npy/features")
    exported = export_npy(dataset, work / "npy", workers=1, progress=False)
    print(exported.summary())
    checks.append(validate_dataset(work / "npy"))
    print(checks[-1].render())

    _step("import-npy --preset lossless: the .npy files -> a store again (bit-exact)")
    imported = import_npy(work / "npy", work / "lossless", preset="lossless", workers=1, progress=False)
    print(imported.summary())

    _step("info")
    print(render_info(store_info(dataset)))

    _step("one batch of DataLoader(HeroDataset(...), num_workers=2, collate_fn=collate) from each format")
    same = _load_batches(dataset, work / "npy", work / "lossless")
    ok = extraction.ok and exported.ok and imported.ok and all(c.ok for c in checks) and same
    print(f"\n{'demo finished' if ok else 'demo FAILED'}: outputs in {work}")
    return 0 if ok else 1


def _write_labels(root: Path, video_ids: list[str]) -> None:
    labels = []
    for i, vid in enumerate(video_ids):
        entry = {"video_id": vid, "emotion": _EMOTIONS[i % len(_EMOTIONS)]}
        if i % 2 == 0:
            entry["text"] = "i am so happy today" if i % 4 == 0 else "i feel terrible"
        labels.append(entry)
    (root / "labels.json").write_text(json.dumps(labels, indent=1), "utf-8")
    (root / "classes.json").write_text(json.dumps(list(_EMOTIONS)), "utf-8")


def _load_batches(*roots: Path) -> bool:
    """Print one batch from each dataset root; True if all give identical float32 batches."""
    import torch
    from torch.utils.data import DataLoader

    from .dataset import HeroDataset, collate

    batches = []
    for root in roots:
        dataset = HeroDataset(root / "features", root / "labels.json", dtype=torch.float32)
        batch = next(iter(DataLoader(dataset, batch_size=len(dataset), num_workers=2, collate_fn=collate)))
        shapes = ", ".join(f"{m} {list(batch[m].shape)}" for m in dataset.modalities)
        print(f"{root.name} ({dataset.format}): {shapes}; labels {batch['label'].tolist()}")
        batches.append(batch)
    first = batches[0]
    same = all(torch.equal(b[key], first[key]) for b in batches for key in first if torch.is_tensor(first[key]))
    print("identical batches from every format" if same else "the formats' batches DIFFER")
    return same
