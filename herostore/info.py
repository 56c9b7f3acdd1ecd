"""Describing a store (a path or a URL): videos, bytes per modality, ratio against float32, sequence lengths, notes."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import HerostoreError
from .locations import resolve_features
from .schema import ARRAY_KEYS, SPEC_DTYPE
from .store import FeatureStore

__all__ = ["render_info", "store_info"]


def store_info(path: str | os.PathLike, *, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Videos, bytes stored per modality, ratio against float32, sequence lengths and counted notes.

    A video whose metadata cannot be read, or describes an array herostore's reader refuses, is counted under
    ``unreadable`` (``herostore validate`` says why). For a remote store every video costs two requests (its
    marker, a listing of its objects).
    """
    store = FeatureStore(resolve_features(path, storage_options), storage_options=storage_options)
    reader = store.reader()
    video_ids = store.video_ids()
    disk: Counter[str] = Counter()
    raw: Counter[str] = Counter()
    lengths: dict[str, list[int]] = {key: [] for key in ARRAY_KEYS}
    notes: Counter[str] = Counter()
    meta_bytes = 0
    unreadable = []
    for vid in video_ids:
        try:
            meta = reader.video_meta(vid)
            shapes = {key: reader.plan(meta, key).shape for key in meta.arrays}  # what the reader would accept
            sizes = store.location.sizes(vid)
        except (HerostoreError, OSError):
            unreadable.append(vid)
            continue
        notes.update(_countable_notes(meta.notes, store.preset.dtype))
        for key, size in sizes.items():
            modality = key.split("/", 1)[0]
            if modality in meta.arrays:
                disk[modality] += size
            else:
                meta_bytes += size
        for key, shape in shapes.items():
            lengths[key].append(shape[0])
            raw[key] += int(np.prod(shape)) * SPEC_DTYPE.itemsize
    modalities = {}
    for key, values in lengths.items():
        if not values:
            continue
        v = np.asarray(values)
        modalities[key] = {
            "videos": int(v.size),
            "bytes_on_disk": int(disk[key]),
            "float32_bytes": int(raw[key]),
            "ratio_vs_float32": round(disk[key] / raw[key], 4) if raw[key] else None,
            "length": {"min": int(v.min()), "median": float(np.median(v)), "mean": round(float(v.mean()), 1),
                       "max": int(v.max())},
        }
    total_disk = sum(disk.values()) + meta_bytes
    total_raw = sum(raw.values())
    return {
        "store": store.name,
        "preset": store.preset.to_config(),
        "format_version": store.info.format_version,
        "videos": len(video_ids),
        "unreadable": unreadable,
        "bytes_on_disk": int(total_disk),
        "float32_bytes": int(total_raw),
        "ratio_vs_float32": round(total_disk / total_raw, 4) if total_raw else None,
        "modalities": modalities,
        "notes": dict(notes),
    }


def _countable_notes(notes: dict[str, Any], cast_dtype: str | None) -> list[str]:
    """The notes worth counting over a store: scalar facts (``audio=missing``), not per-video details."""
    found = [f"{k}={v}" for k, v in notes.items() if isinstance(v, (str, int, float, bool))]
    extraction = notes.get("extraction")
    if isinstance(extraction, dict) and extraction.get("random_weight_test_models"):
        found.append("features from RANDOM-WEIGHT test models")
    underflow = notes.get(f"{cast_dtype}_underflow")
    if isinstance(underflow, dict) and underflow:
        found.append(f"values the {cast_dtype} cast flushed to 0 or left subnormal (see validate)")
    return found


def render_info(info: dict[str, Any]) -> str:
    p = info["preset"]
    lines = [
        f"store   {info['store']} (format {info['format_version']})",
        f"preset  {p['name']}: {p['description']}",
        f"videos  {info['videos']}" + (f", {len(info['unreadable'])} unreadable (run validate)"
                                       if info["unreadable"] else ""),
        f"size    {_mb(info['bytes_on_disk'])} on disk, {_mb(info['float32_bytes'])} as float32"
        + (f" (ratio {info['ratio_vs_float32']:.3f})" if info["ratio_vs_float32"] else ""),
        "",
        f"{'modality':<10} {'videos':>7} {'on disk':>11} {'float32':>11} {'ratio':>6}  length min/median/mean/max",
    ]
    for key, m in info["modalities"].items():
        n = m["length"]
        lines.append(
            f"{key:<10} {m['videos']:>7} {_mb(m['bytes_on_disk']):>11} {_mb(m['float32_bytes']):>11} "
            f"{m['ratio_vs_float32']:>6.3f}  {n['min']}/{n['median']:g}/{n['mean']:g}/{n['max']}"
        )
    for note, count in sorted(info["notes"].items()):
        lines.append(f"note: {count} video(s) with {note}")
    return "\n".join(lines)


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"
