"""A local store's scratch folder, ``.tmp/``: locked entries that writers build in, and clearing what dead writers
left.

Every entry is locked with ``flock`` by its writer for as long as it works; the kernel drops the lock when the
writer dies, in any pid namespace and on any host name, so ``clean`` judges an entry by its lock alone (and by
its age, so that an entry made and not yet locked is never judged). The folder is removed whenever it empties,
so a finished store holds only Zarr nodes. An overwrite keeps the old copy of its video in a ``.old`` entry until
the new one is in place; ``clean`` puts back an old copy whose overwrite was cut short.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import StoreError
from ..fsutil import STALE_AFTER_S
from ..layout import META, SCRATCH_DIR

__all__ = ["RETIRED_SUFFIX", "Scratch"]

RETIRED_SUFFIX = ".old"


class Scratch:
    """The scratch folder of the store in ``store`` (``name`` for messages)."""

    def __init__(self, store: Path, name: str):
        self.store = store
        self.name = name
        self.folder = store / SCRATCH_DIR

    @contextlib.contextmanager
    def entry(self, suffix: str = "") -> Iterator[Path]:
        """A fresh ``.tmp/<random><suffix>/`` folder, locked for as long as the block runs, removed after it."""
        entry, fd = self.locked_folder(suffix)
        try:
            yield entry
        finally:
            shutil.rmtree(entry, ignore_errors=True)
            os.close(fd)
            self.tidy()

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[Path]:
        """``.tmp/<name>``, a file every writer locks in turn: held for as long as the block runs."""
        entry, fd = self._locked(lambda tmp: _touch(tmp / name))
        try:
            yield entry
        finally:
            with contextlib.suppress(OSError):
                entry.unlink()
            os.close(fd)
            self.tidy()

    def locked_folder(self, suffix: str = "") -> tuple[Path, int]:
        """A fresh ``.tmp/<random><suffix>/`` folder and the descriptor holding its lock: the caller closes it."""
        return self._locked(lambda tmp: _mkdir(tmp / f"{uuid.uuid4().hex}{suffix}"))

    def _locked(self, make: Callable[[Path], Path]) -> tuple[Path, int]:
        for _ in range(100):  # another writer may remove an empty .tmp between our mkdir and our entry
            with contextlib.suppress(FileExistsError):
                self.folder.mkdir()
            try:
                entry = make(self.folder)
                break
            except FileNotFoundError:
                continue
        else:
            raise StoreError(f"{self.folder}: cannot create a scratch entry (the folder keeps disappearing)")
        fd = os.open(entry, os.O_RDONLY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return entry, fd

    def tidy(self) -> None:
        """Remove the scratch folder if it is empty (it is made again on the next write)."""
        with contextlib.suppress(OSError):
            os.rmdir(self.folder)

    def clean(self, older_than: float = STALE_AFTER_S) -> int:
        """Remove the entries of writers that are gone (unlocked, older than ``older_than`` seconds); return how
        many. An overwrite cut short leaves the old copy of its video in a ``.old`` entry: it is put back."""
        try:
            entries = sorted(self.folder.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return 0
        cleared = 0
        now = time.time()
        for entry in entries:
            try:
                if now - entry.lstat().st_mtime < older_than or entry.is_symlink():
                    continue
                fd = os.open(entry, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # its writer is alive
            try:
                if entry.name.endswith(RETIRED_SUFFIX) and entry.is_dir():
                    self._restore_retired(entry)
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                cleared += 1
            finally:
                os.close(fd)
        self.tidy()
        return cleared

    def _restore_retired(self, entry: Path) -> None:
        for old in entry.iterdir():
            target = self.store / old.name
            if old.name.startswith(".") or not (old / META).is_file():
                continue
            try:
                os.rename(old, target)  # fails if a writer has put a video there since: then the old copy goes
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                continue
            warnings.warn(f"{self.name}: restored video {old.name!r} from {entry.name}: its overwrite was cut "
                          f"short (the writer died between retiring the old copy and publishing the new one)",
                          stacklevel=4)


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _touch(path: Path) -> Path:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    return path
