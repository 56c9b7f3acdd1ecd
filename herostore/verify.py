"""Verifying a store: every chunk read again and checked, every file accounted for, the metadata consistent.

Per video:

- **structure**: every file the metadata names is there, and nothing else is: no missing chunk, no stray file,
  no link, FIFO or device, no folder where a file belongs;
- **metadata**: the group's consolidated metadata and each array's own ``zarr.json`` agree, and each array is one
  herostore writes (``read.engine.plan_array`` with the store's invariants);
- **bytes**: every chunk is read again (the reader's memory of verified chunks is not used) and its crc32c
  compared (format 2 on), and with the checksum the sealed video document lists for it (format 3); a format-1
  store has no checksums, so its chunks are decoded to prove their size and framing, and the report says that
  their values cannot be checked.

At the root: the root document parses, and nothing but videos and that document is in the store (stray folders,
a writer's scratch, folders set aside, special files). Videos are checked in parallel on the bulk engine.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np

from .bulk import Outcome, map_videos
from .errors import CorruptStoreError, HerostoreError
from .layout import META, StoreInfo, parse_json, parse_video
from .locations import resolve_features
from .read.engine import check_encoded, decode_chunk, plan_array
from .store import FeatureStore

__all__ = ["Problem", "VerifyReport", "verify_store"]


@dataclass
class Problem:
    """One thing wrong, located as precisely as it can be."""

    video: str | None
    message: str
    modality: str | None = None
    chunk: str | None = None

    def render(self) -> str:
        where = " ".join(part for part in (self.video or "(store)", self.modality and f"[{self.modality}]",
                                           self.chunk) if part)
        return f"{where}: {self.message}"


@dataclass
class VerifyReport:
    store: str
    format_version: int
    checksums: bool
    videos: int = 0
    chunks: int = 0
    bytes: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "ok": self.ok}, indent=1, ensure_ascii=False)

    def render(self) -> str:
        rate = self.bytes / self.seconds / 1e9 if self.seconds > 0 else 0.0
        checked = "checksums verified" if self.checksums else \
            "format 1 has no checksums: chunks decoded, their values cannot be checked"
        head = (f"{self.store} (format {self.format_version}): {self.videos} videos, {self.chunks} chunks, "
                f"{self.bytes / 1e9:.2f} GB in {self.seconds:.1f} s ({rate:.2f} GB/s); {checked}")
        if self.ok:
            return f"{head}\nOK: no problem found"
        return "\n".join([head, f"{len(self.problems)} problem(s):"] + [f"  {p.render()}" for p in self.problems])


def verify_store(path: str | os.PathLike, *, workers: int | None = None, scheduler: str | None = None,
                 progress: bool = True, storage_options: Mapping[str, Any] | None = None) -> VerifyReport:
    """Check every video of a store (see the module docstring); ``report.ok`` only when nothing is wrong."""
    start = time.perf_counter()
    store = FeatureStore(resolve_features(path, storage_options), storage_options=storage_options)
    info = store.info
    report = VerifyReport(store.name, info.format_version, info.checksums)
    report.problems += _root_problems(store)
    ids = store.video_ids()
    job = partial(_verify_video, location=store.location, info=info)
    run = map_videos(job, [(vid,) for vid in ids], workers=workers, scheduler=scheduler, progress=progress,
                     desc="verify", describe=lambda item: f"{store.name}: video {item[0]!r}",
                     check_paths=[getattr(store.location, "path", None)])
    for outcome in sorted(run.outcomes, key=lambda o: o.video_id):
        if outcome.status == "failed":
            report.problems.append(Problem(outcome.video_id, outcome.detail))
            continue
        problems, chunks, nbytes = outcome.value
        report.problems += problems
        report.chunks += chunks
        report.bytes += nbytes
    report.videos = len(ids)
    report.seconds = time.perf_counter() - start
    return report


def _root_problems(store: FeatureStore) -> list[Problem]:
    problems = [Problem(name, f"a folder without {META}: not a video (an interrupted copy, or not herostore's)")
                for name in store.stray_folders()]
    path = getattr(store.location, "path", None)
    if path is None:
        return problems
    with os.scandir(path) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name == META and entry.is_file(follow_symlinks=False):
                continue
            if entry.is_symlink() or not (entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False)):
                problems.append(Problem(None, f"{entry.name}: a link or special file in the store"))
            elif entry.name.startswith("."):
                problems.append(Problem(None, f"{entry.name}: left by a writer that is running or was interrupted "
                                              "(scratch, or a folder set aside); a resumed run clears scratch"))
            elif entry.is_file(follow_symlinks=False):
                problems.append(Problem(None, f"{entry.name}: a file that is not part of the store"))
    return problems


def _verify_video(video_id: str, *, location: Any, info: StoreInfo) -> Outcome:
    problems: list[Problem] = []
    try:
        document = location.read_key(video_id, META)
        meta = parse_video(document, location.name, video_id, info.format_version)
    except (HerostoreError, OSError) as exc:
        return Outcome(video_id, "done", value=([Problem(video_id, str(exc))], 0, 0))
    entries = location.entries(video_id)
    expected = {META}
    chunks = nbytes = 0
    preset = info.preset if info.format_version >= 2 else None
    for modality, array_meta in meta.arrays.items():
        own_key = f"{modality}/{META}"
        expected.add(own_key)
        try:
            own = parse_json(location.read_key(video_id, own_key), f"{location.name}: video {video_id!r}, {own_key}")
            if own != array_meta:
                problems.append(Problem(video_id, f"{own_key} disagrees with the consolidated metadata in {META}",
                                        modality))
            plan = plan_array(modality, array_meta, f"{location.name}: video {video_id!r}", checksums=info.checksums,
                              preset=preset, crcs=None if meta.chunk_crcs is None else meta.chunk_crcs[modality])
        except FileNotFoundError:
            problems.append(Problem(video_id, f"{own_key} is missing", modality))
            continue
        except HerostoreError as exc:
            problems.append(Problem(video_id, str(exc), modality))
            continue
        for index in range(plan.n_chunks):
            key = plan.chunk_key(index)
            expected.add(key)
            problem = _check_chunk(location, video_id, plan, index)
            if problem is not None:
                problems.append(Problem(video_id, problem, modality, key))
                continue
            chunks += 1
            nbytes += entries.get(key, ("file", 0))[1]
    for key, (kind, _) in sorted(entries.items()):
        if kind == "folder":
            continue
        if kind in ("link", "special"):
            problems.append(Problem(video_id, f"{key}: a {'symbolic link' if kind == 'link' else 'special file'} "
                                              "(a store holds only regular files)"))
        elif key not in expected:
            problems.append(Problem(video_id, f"{key}: a file the metadata does not name"))
    return Outcome(video_id, "done", value=(problems, chunks, nbytes))


def _check_chunk(location: Any, video_id: str, plan: Any, index: int) -> str | None:
    """What is wrong with one chunk, or None."""
    key = plan.chunk_key(index)
    where = f"{location.name}: video {video_id!r}, modality {plan.name!r}, chunk {key}"
    try:
        data = location.read_key(video_id, key)
    except FileNotFoundError:
        return "the chunk is missing"
    except CorruptStoreError as exc:
        return str(exc).removeprefix(f"{location.name}: video {video_id!r}: ")
    try:
        if plan.encoding.checksum:
            # size, checksum (and that it is the one the video lists for this chunk), a Blosc header for this array
            check_encoded(plan, data, where, expected=plan.crcs[index] if plan.crcs else None)
        else:
            scratch = np.empty(plan.chunk_bytes, np.uint8)
            decode_chunk(plan, data, memoryview(scratch), where)
    except CorruptStoreError as exc:
        return str(exc).removeprefix(f"{where}: ")
    return None
