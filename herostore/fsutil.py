"""Small filesystem helpers every writer shares: durable atomic writes and folders with clear errors."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from .errors import HerostoreError, StoreError

__all__ = ["atomic_output", "atomic_write", "clean_stale_temporaries", "fsync_dir", "make_folder", "short_list"]

TEMP_SUFFIX = ".tmp"
STALE_AFTER_S = 60.0  # a temporary file younger than this is never judged: its writer may not hold its lock yet


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Write ``path`` atomically and durably: into a locked temp file beside it, then fsync, rename, fsync the folder.

    A reader sees the old content or the new, never a mix. The writer holds an ``flock`` on its temp file while
    it writes, so ``clean_stale_temporaries`` can tell a killed writer's leftover from a live writer's file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield f
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Replace ``path`` with ``data`` (see ``atomic_output``)."""
    with atomic_output(path) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def clean_stale_temporaries(folder: str | os.PathLike) -> int:
    """Remove the temp files of ``atomic_output`` writers that died (unlocked, older than ``STALE_AFTER_S``)."""
    removed = 0
    now = time.time()
    with os.scandir(folder) as entries:
        stale = [e.path for e in entries if e.name.startswith(".") and e.name.endswith(TEMP_SUFFIX)
                 and e.is_file(follow_symlinks=False) and now - e.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S]
    for path in stale:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(path)
            removed += 1
        except OSError:  # locked: its writer is alive
            continue
        finally:
            os.close(fd)
    return removed


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename or a new entry in ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_folder(path: str | os.PathLike, what: str, error: type[HerostoreError] = StoreError) -> Path:
    """``mkdir -p path``, or an ``error`` naming ``path`` (and the file in the way, if one is)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        reason = f"{blocker} is a file, not a folder" if blocker is not None else (exc.strerror or str(exc))
        raise error(f"{path}: cannot create {what}: {reason}") from None
    return path


def short_list(items: Sequence[object], limit: int = 5) -> str:
    """``'a', 'b', 'c' and 7 more``: enough of a long list to act on, never the whole of it."""
    shown = ", ".join(repr(x) for x in items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"
