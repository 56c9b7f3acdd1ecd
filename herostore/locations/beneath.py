"""Opening a file beneath a folder without following any link, leaving the folder or blocking on a FIFO.

``openat2`` with ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`` where the kernel has it (Linux 5.6 on); elsewhere
``O_NOFOLLOW``, which refuses a link as the last component only.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from typing import Any

__all__ = ["Refused", "open_beneath"]


class Refused(Exception):
    """A path that is a link, leads out of the folder or is not a regular file."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_SYS_OPENAT2 = 437  # the same number on every Linux architecture
_RESOLVE_NO_SYMLINKS, _RESOLVE_BENEATH = 0x04, 0x08
_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
_openat2: Any = None


def open_beneath(root_fd: int, relative: str) -> int:
    """Open ``relative`` read-only under the folder ``root_fd``; ``Refused`` for a link or a way out."""
    global _openat2
    if _openat2 is None:
        _openat2 = _load_openat2()
    if _openat2 is not False:
        how = _OpenHow(_FLAGS, 0, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS)
        fd = _openat2(root_fd, os.fsencode(relative), ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return fd
        code = ctypes.get_errno()
        if code in (errno.ELOOP, errno.EXDEV):
            raise Refused("is a symbolic link or leads out of the store")
        if code != errno.ENOSYS:
            raise OSError(code, os.strerror(code), relative)
        _openat2 = False
    try:
        return os.open(relative, _FLAGS, dir_fd=root_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Refused("is a symbolic link") from None
        raise


def _load_openat2() -> Any:
    if not sys.platform.startswith("linux"):
        return False
    try:
        syscall = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return False
    syscall.restype = ctypes.c_long
    return lambda *args: syscall(ctypes.c_long(_SYS_OPENAT2), *[ctypes.c_long(a) if isinstance(a, int) else a
                                                                for a in args])
