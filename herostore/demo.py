"""The README's main job: the whole pipeline on generated sample data, offline."""

from __future__ import annotations

import shutil
from pathlib import Path

from .convert import export_npy, import_npy
from .sample import make_npy_dataset
from .validate import render_info, store_info, validate_dataset


def _step(text: str) -> None:
    print(f"\n== {text}")


def run_demo(workdir: str, *, videos: int = 4) -> int:
    """Sample dataset -> store -> validate -> export back -> info. Returns an exit code."""
    work = Path(workdir)
    if work.exists():
        shutil.rmtree(work)
    _step(f"making a sample spec dataset of {videos} videos (random features) in {work / 'npy'}")
    make_npy_dataset(work / "npy", videos)
    _step("import-npy: spec .npy dicts -> herostore store (default preset)")
    report = import_npy(work / "npy", work / "zarr", workers=1)
    print(report.summary())
    _step("validate the store")
    check = validate_dataset(work / "zarr")
    print(check.render())
    _step("export-npy: store -> spec .npy dicts")
    back = export_npy(work / "zarr", work / "npy-again", workers=1)
    print(back.summary())
    print(validate_dataset(work / "npy-again").render())
    _step("info")
    print(render_info(store_info(work / "zarr")))
    return 0 if report.ok and check.ok and back.ok else 1
