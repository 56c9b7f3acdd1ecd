"""Which videos a run extracts: files, folders and list files in; one ``VideoItem`` per video id out."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ExtractionError, InvalidVideoIdError
from ..layout import check_video_id

__all__ = ["LIST_SUFFIXES", "VIDEO_SUFFIXES", "VideoItem", "discover_videos"]

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv", ".m4v", ".mpg", ".mpeg", ".wmv",
                            ".3gp", ".ts", ".mts", ".ogv"})
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})


@dataclass(frozen=True)
class VideoItem:
    """One video to extract: its id (the file stem) and its file."""

    video_id: str
    path: Path

    def absolute(self) -> VideoItem:
        """This item with an absolute path, for worker processes that run in another folder or machine."""
        return VideoItem(self.video_id, Path(os.path.abspath(self.path.expanduser())))


def discover_videos(sources: str | os.PathLike | Sequence[str | os.PathLike], *, recursive: bool = False,
                    ) -> tuple[list[VideoItem], dict[str, str]]:
    """Videos named by ``sources``: files, folders (by suffix), or text files listing paths.

    A text file (``.txt``, ``.lst``, ``.list``) lists one path per line; blank lines and
    ``#`` comments are ignored, relative paths are relative to the list's folder. Returns
    the videos (id = file stem) and the ids refused up front: ids ``check_video_id``
    rejects and stems shared by several files (none of those files is extracted).
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    paths: list[Path] = []
    for source in sources:
        paths += _expand(Path(source).expanduser(), recursive)
    by_id: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        by_id[path.stem].append(path)
    items, refused = [], {}
    for vid, group in by_id.items():
        unique = list(dict.fromkeys(group))
        if len(unique) > 1:
            refused[vid] = (f"duplicate video id {vid!r}: {len(unique)} files have this stem "
                            f"({', '.join(map(str, unique[:3]))}); rename them so ids are unique")
            continue
        try:
            check_video_id(vid)
        except InvalidVideoIdError as exc:
            refused[vid] = f"{unique[0]}: {exc}"
            continue
        items.append(VideoItem(vid, unique[0]))
    return sorted(items, key=lambda item: item.video_id), refused


def _expand(path: Path, recursive: bool) -> list[Path]:
    if path.is_dir():
        pattern = "**/*" if recursive else "*"
        found = sorted(p for p in path.glob(pattern)
                       if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".") and p.is_file())
        if not found:
            raise ExtractionError(f"{path}: no video files found (looked for {', '.join(sorted(VIDEO_SUFFIXES))}"
                                  f"{'' if recursive else '; use --recursive for subfolders'})")
        return found
    if path.suffix.lower() in LIST_SUFFIXES and path.is_file():
        listed = []
        for line in path.read_text("utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                entry = Path(line).expanduser()
                listed.append(entry if entry.is_absolute() else path.parent / entry)
        if not listed:
            raise ExtractionError(f"{path}: the list names no videos (one path per line expected)")
        return listed
    if not path.exists():
        raise ExtractionError(f"--video_path {path}: no such file or folder (expected a video, a folder of videos "
                              f"or a text file listing them)")
    return [path]
