"""Zip records as packed shards use them: members stored (never compressed), no data descriptors, ZIP64 where needed.

Writing: ``local_header``, ``central_header`` and ``end_records`` give the exact bytes of each record, and the
``*_size`` functions their lengths, so a packer lays out a whole shard (every offset, the final size) before
writing a byte. Members carry a fixed date (1980-01-01): a shard's bytes depend on its content only.

Reading: ``walk_members`` parses the consecutive local headers inside one byte range of a shard (a video's
members), checking every length against the range, so damaged or crafted bytes are a ``CorruptStoreError``
naming the shard and the byte, never an over-read, a huge allocation or a member taken from the wrong place.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from .errors import CorruptStoreError

__all__ = ["LOCAL_HEADER_BYTES", "Member", "central_header", "central_header_size", "end_records", "end_records_size",
           "local_header", "local_header_size", "member_extent", "next_member", "walk_members"]

_LOCAL = struct.Struct("<IHHHHHIIIHH")  # signature, version, flags, method, time, date, crc, sizes, name, extra
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_END64 = struct.Struct("<IQHHIIQQQQ")
_LOCATOR64 = struct.Struct("<IIQI")
LOCAL_HEADER_BYTES = _LOCAL.size  # 30
_LOCAL_SIG, _CENTRAL_SIG, _END_SIG = 0x04034B50, 0x02014B50, 0x06054B50
_END64_SIG, _LOCATOR64_SIG = 0x06064B50, 0x07064B50
ZIP64_LIMIT = (1 << 31) - 1  # sizes and offsets above this use ZIP64 fields (the limit Python's zipfile uses)
_FULL = 0xFFFFFFFF
_UTF8_NAMES = 0x0800
_ENCRYPTED, _DATA_DESCRIPTOR = 0x0001, 0x0008
_DATE_1980 = (1 << 5) | 1  # MS-DOS date of 1980-01-01, time 00:00
_VERSION, _VERSION64 = 20, 45
_UNIX = 3 << 8
_REGULAR_FILE = 0o100644 << 16


class Member(NamedTuple):
    """One stored member found in a range: its name and where its bytes lie in that range."""

    name: str
    start: int  # first data byte, relative to the range
    size: int
    crc: int  # the zip CRC-32 of its bytes


def local_header_size(name: bytes, size: int) -> int:
    return LOCAL_HEADER_BYTES + len(name) + (20 if size > ZIP64_LIMIT else 0)


def local_header(name: bytes, crc: int, size: int) -> bytes:
    """The local header of a stored member of ``size`` bytes (ZIP64 sizes when it is large)."""
    zip64 = size > ZIP64_LIMIT
    extra = struct.pack("<HHQQ", 1, 16, size, size) if zip64 else b""
    field = _FULL if zip64 else size
    return _LOCAL.pack(_LOCAL_SIG, _VERSION64 if zip64 else _VERSION, _UTF8_NAMES, 0, 0, _DATE_1980, crc, field, field,
                       len(name), len(extra)) + name + extra


def _central_extra(size: int, offset: int) -> list[int]:
    return ([size, size] if size > ZIP64_LIMIT else []) + ([offset] if offset > ZIP64_LIMIT else [])


def central_header_size(name: bytes, size: int, offset: int) -> int:
    fields = len(_central_extra(size, offset))
    return _CENTRAL.size + len(name) + (4 + 8 * fields if fields else 0)


def central_header(name: bytes, crc: int, size: int, offset: int) -> bytes:
    """The central directory entry of a stored member whose local header is at ``offset``."""
    fields = _central_extra(size, offset)
    extra = struct.pack(f"<HH{len(fields)}Q", 1, 8 * len(fields), *fields) if fields else b""
    version = _VERSION64 if fields else _VERSION
    stored_size = _FULL if size > ZIP64_LIMIT else size
    return _CENTRAL.pack(_CENTRAL_SIG, _UNIX | version, version, _UTF8_NAMES, 0, 0, _DATE_1980, crc, stored_size,
                         stored_size, len(name), len(extra), 0, 0, 0, _REGULAR_FILE,
                         _FULL if offset > ZIP64_LIMIT else offset) + name + extra


def _needs_zip64_end(count: int, directory_offset: int, directory_size: int) -> bool:
    return count > 0xFFFF or directory_offset > ZIP64_LIMIT or directory_size > ZIP64_LIMIT


def end_records_size(count: int, directory_offset: int, directory_size: int, comment: bytes) -> int:
    zip64 = _needs_zip64_end(count, directory_offset, directory_size)
    return (_END64.size + _LOCATOR64.size if zip64 else 0) + _END.size + len(comment)


def end_records(count: int, directory_offset: int, directory_size: int, comment: bytes) -> bytes:
    """What follows the central directory: ZIP64 end records when needed, then the end record and ``comment``."""
    if len(comment) > 0xFFFF:
        raise ValueError("a zip comment holds at most 65535 bytes")
    out = b""
    if _needs_zip64_end(count, directory_offset, directory_size):
        out += _END64.pack(_END64_SIG, _END64.size - 12, _UNIX | _VERSION64, _VERSION64, 0, 0, count, count,
                           directory_size, directory_offset)
        out += _LOCATOR64.pack(_LOCATOR64_SIG, 0, directory_offset + directory_size, 1)
    return out + _END.pack(_END_SIG, 0, 0, min(count, 0xFFFF), min(count, 0xFFFF), min(directory_size, _FULL),
                           min(directory_offset, _FULL), len(comment)) + comment


def member_extent(header: Any, where: str) -> int:
    """Bytes taken by the member whose local header starts ``header`` (at least its first 30 bytes)."""
    if len(header) < LOCAL_HEADER_BYTES:
        raise CorruptStoreError(f"{where}: {len(header)} bytes, too few for a zip local header")
    sig, _, _, _, _, _, _, csize, _, name_len, extra_len = _LOCAL.unpack_from(header, 0)
    if sig != _LOCAL_SIG:
        raise CorruptStoreError(f"{where}: no zip local header at its start (found {sig:08x})")
    if csize == _FULL:
        raise CorruptStoreError(f"{where}: its first member is larger than 2 GiB; a store's root document is small")
    return LOCAL_HEADER_BYTES + name_len + extra_len + csize


def walk_members(data: Any, base: int, where: str) -> list[Member]:
    """Every member stored back to back in ``data`` (bytes of a shard starting at offset ``base``), in order.

    The range must hold whole members exactly: a header or a member cut short, bytes left over, a compressed or
    encrypted member, a data descriptor or a name that is not UTF-8 is a ``CorruptStoreError``.
    """
    view = memoryview(data).cast("B")
    members = []
    pos = 0
    while pos < len(view):
        members.append(next_member(view, pos, base, where))
        pos = members[-1].start + members[-1].size
    return members


def next_member(view: memoryview, pos: int, base: int, where: str) -> Member:
    """The member whose local header starts at ``pos`` of ``view`` (bytes of a shard from offset ``base``); it must
    lie wholly inside ``view``. The next member's header follows its data: ``start + size``."""
    end = len(view)
    if end - pos < LOCAL_HEADER_BYTES:
        raise _damage(where, base + pos, f"{end - pos} bytes left in the range, too few for a zip local header")
    sig, _, flags, method, _, _, crc, csize, usize, name_len, extra_len = _LOCAL.unpack_from(view, pos)
    if sig != _LOCAL_SIG:
        raise _damage(where, base + pos, f"expected a zip local header (signature 04034b50), found {sig:08x}")
    if flags & (_ENCRYPTED | _DATA_DESCRIPTOR) or method != 0:
        raise _damage(where, base + pos, f"a member with flags {flags:#06x} and method {method}; packed shards "
                      "hold stored members (method 0) without data descriptors or encryption")
    name_end = pos + LOCAL_HEADER_BYTES + name_len
    data_start = name_end + extra_len
    if data_start > end:
        raise _damage(where, base + pos, "the member's name and extra field run past the end of the range")
    try:
        name = str(view[pos + LOCAL_HEADER_BYTES : name_end], "utf-8")
    except UnicodeDecodeError:
        raise _damage(where, base + pos, "a member name that is not UTF-8") from None
    if csize == _FULL or usize == _FULL:
        csize, usize = _zip64_sizes(view[name_end:data_start], csize, usize, f"{where}: byte {base + pos} ({name})")
    if csize != usize:
        raise _damage(where, base + pos, f"member {name!r} stores {csize} bytes for {usize}; shards store members "
                      "uncompressed")
    if csize > end - data_start:
        raise _damage(where, base + pos, f"member {name!r} of {csize} bytes runs past the end of the range "
                      f"({end - data_start} bytes left)")
    return Member(name, data_start, csize, crc)


def _damage(where: str, offset: int, what: str) -> CorruptStoreError:
    return CorruptStoreError(f"{where}: byte {offset}: {what}")


def _zip64_sizes(extra: memoryview, csize: int, usize: int, where: str) -> tuple[int, int]:
    """The 64-bit sizes of a local header's ZIP64 extra field (uncompressed first, then compressed)."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        if len(body) != length:
            break
        if tag == 1:
            values = [struct.unpack_from("<Q", body, i)[0] for i in range(0, length - length % 8, 8)]
            if usize == _FULL:
                usize = values.pop(0) if values else -1
            if csize == _FULL:
                csize = values.pop(0) if values else -1
            if usize >= 0 and csize >= 0:
                return csize, usize
            break
        pos += 4 + length
    raise CorruptStoreError(f"{where}: sizes marked as ZIP64 but no complete ZIP64 extra field")
