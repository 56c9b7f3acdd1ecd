"""What a store holds, by role, and the record of one mutation (for ``store_mutate`` and ``store_json``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

META = "zarr.json"


@dataclass
class Mutation:
    kind: str
    what: str


@dataclass
class Files:
    """What a store holds, by role (paths relative to nothing: absolute)."""

    store: Path
    root_doc: Path | None = None
    videos: list[Path] = field(default_factory=list)
    group_docs: list[Path] = field(default_factory=list)
    arrays: list[Path] = field(default_factory=list)
    array_docs: list[Path] = field(default_factory=list)
    chunk_dirs: list[Path] = field(default_factory=list)
    chunks: list[Path] = field(default_factory=list)

    def docs(self) -> list[Path]:
        return ([self.root_doc] if self.root_doc else []) + self.group_docs + self.array_docs


def catalogue(store: Path) -> Files:
    files = Files(store)
    if _regular(store / META):
        files.root_doc = store / META
    for video in sorted(p for p in store.iterdir() if _is_dir(p) and not p.name.startswith(".")):
        files.videos.append(video)
        if _regular(video / META):
            files.group_docs.append(video / META)
        for array in sorted(p for p in video.iterdir() if _is_dir(p)):
            files.arrays.append(array)
            if _regular(array / META):
                files.array_docs.append(array / META)
            for folder, dirs, names in os.walk(array / "c"):
                dirs.sort()  # the file system's listing order would make a seeded campaign differ between runs
                files.chunk_dirs.append(Path(folder))
                files.chunks += [Path(folder) / n for n in sorted(names) if _regular(Path(folder) / n)]
    return files


def _regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _is_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def rel(path: Path, store: Path) -> str:
    return path.relative_to(store).as_posix()
