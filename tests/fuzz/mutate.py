"""Mutations of valid feature files: bytes, the `.npy` header, and the pickle stream opcode by opcode.

``Mutator(seeds, seed).case()`` returns one fuzzed file and a short description of what was done to it. Byte-level
strategies ignore structure; header strategies rewrite the `.npy` magic and header dict; opcode strategies parse
the seed's pickle stream once (``pickletools.genops``) and swap opcodes, change integer arguments and length
prefixes, duplicate or drop memo operations, replace globals with other allowed ones and dtype names with others.
Edits inside a protocol-4 frame keep the frame's length in step, so the unpickler reaches the edited opcode.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from herostore.safepickle import ALLOWED_GLOBALS

from .crafted import Reduce, _reconstruct, longdouble_ones

INTERESTING_INTS = (0, 1, 2, 3, 7, 8, 127, 128, 255, 256, 1000, 1024, 4096, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1)
DTYPE_NAMES = ("O8", "f16", "c8", "c16", "i8", "u1", "b1", "U1", "U100", "V8", "S4", "M8", "f2", "f8", "f4", "e",
               "<f4", ">f4", "|O", "U0", "f4,f4", "(2,)f4", "O")
HEADER_EDITS = (
    ("'shape': ()", "'shape': (1,)"), ("'shape': ()", "'shape': (2, 3)"), ("'|O'", "'<f4'"), ("'|O'", "'|V8'"),
    ("'|O'", "'<U4'"), ("'fortran_order': False", "'fortran_order': True"), ("'descr'", "'desc'"),
    ("'shape': ()", "'shape': ((),)"), ("'|O'", "[('a', '|O')]"), ("{", "{{"), ("}", "} " * 40),
)


@dataclass
class Op:
    """One opcode of a seed's pickle stream: its name, argument, and byte range in the file."""

    name: str
    arg: object
    start: int
    end: int
    frame: int | None  # file offset of the FRAME opcode that holds it


@dataclass
class Seed:
    name: str
    data: bytes
    pickle_start: int
    ops: list[Op]


def parse_seed(name: str, data: bytes) -> Seed:
    """Locate the pickle stream after the `.npy` header and list its opcodes."""
    header_len = struct.unpack("<H", data[8:10])[0] if data[6] == 1 else struct.unpack("<I", data[8:12])[0]
    start = (10 if data[6] == 1 else 12) + header_len
    ops: list[Op] = []
    frame_at, frame_end = None, -1
    items = list(pickletools.genops(data[start:]))
    for i, (info, arg, pos) in enumerate(items):
        end = items[i + 1][2] if i + 1 < len(items) else len(data) - start
        at = start + pos
        if frame_at is not None and at >= frame_end:
            frame_at = None
        ops.append(Op(info.name, arg, at, start + end, frame_at))
        if info.name == "FRAME":
            frame_at, frame_end = at, start + end + arg
    return Seed(name, data, start, ops)


def _rewrite(seed: Seed, op: Op, new: bytes) -> bytes:
    """Replace ``op``'s bytes by ``new``, keeping the enclosing frame's length in step."""
    data = bytearray(seed.data[: op.start] + new + seed.data[op.end:])
    if op.frame is not None:
        old_len = struct.unpack("<Q", seed.data[op.frame + 1: op.frame + 9])[0]
        data[op.frame + 1: op.frame + 9] = struct.pack("<Q", max(0, old_len + len(new) - (op.end - op.start)))
    return bytes(data)


def _str_op(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw if len(raw) < 256 else b"X" + struct.pack("<I", len(raw)) + raw


class Mutator:
    """Fuzzed files from ``seeds`` (``{name: bytes}`` of valid files), reproducible for a ``seed``."""

    def __init__(self, seeds: dict[str, bytes], seed: int = 0):
        self.seeds = [parse_seed(name, data) for name, data in sorted(seeds.items())]
        self.rng = random.Random(seed)
        self.byte_strategies: list[Callable[[bytes], tuple[bytes, str]]] = [
            self.bit_flip, self.byte_overwrite, self.range_copy, self.truncate, self.extend, self.delete_range,
            self.insert_range, self.header_edit, self.magic_edit,
        ]
        self.op_strategies: list[Callable[[Seed], tuple[bytes, str]]] = [
            self.swap_opcode, self.change_int, self.change_length, self.duplicate_op, self.remove_op,
            self.replace_global, self.replace_dtype, self.repeat_ops, self.insert_snippet, self.inject_value,
            self.inject_value,
        ]
        self.hostile = hostile_values()

    def case(self) -> tuple[bytes, str]:
        """One fuzzed file: an opcode or byte mutation of a seed, then up to two more byte mutations."""
        seed = self.rng.choice(self.seeds)
        if self.rng.random() < 0.6 and seed.ops:
            data, what = self.rng.choice(self.op_strategies)(seed)
        else:
            data, what = self.rng.choice(self.byte_strategies)(seed.data)
        for _ in range(self.rng.choice((0, 0, 0, 1, 2))):
            data, more = self.rng.choice(self.byte_strategies)(data)
            what += f"; {more}"
        return data, f"{seed.name}: {what}"

    # -- bytes --------------------------------------------------------------------------------------------------

    def _pos(self, data: bytes) -> int:
        return self.rng.randrange(max(1, len(data)))

    def bit_flip(self, data: bytes) -> tuple[bytes, str]:
        out = bytearray(data)
        flips = [self._pos(data) for _ in range(self.rng.randint(1, 8))]
        for at in flips:
            if out:
                out[at] ^= 1 << self.rng.randrange(8)
        return bytes(out), f"bit flips at {flips}"

    def byte_overwrite(self, data: bytes) -> tuple[bytes, str]:
        out, at = bytearray(data), self._pos(data)
        n = self.rng.randint(1, 16)
        values = bytes(self.rng.choice((0, 0xFF, 0x7F, 0x80, self.rng.randrange(256))) for _ in range(n))
        out[at: at + n] = values
        return bytes(out), f"{n} bytes overwritten at {at}"

    def range_copy(self, data: bytes) -> tuple[bytes, str]:
        src, dst, n = self._pos(data), self._pos(data), self.rng.randint(1, 256)
        out = bytearray(data)
        out[dst: dst + n] = data[src: src + n]
        return bytes(out), f"{n} bytes copied from {src} to {dst}"

    def truncate(self, data: bytes) -> tuple[bytes, str]:
        at = self._pos(data)
        return data[:at], f"truncated to {at} bytes"

    def extend(self, data: bytes) -> tuple[bytes, str]:
        n = self.rng.choice((1, 8, 100, 4096))
        tail = bytes(self.rng.randrange(256) for _ in range(min(n, 100))) * max(1, n // 100)
        return data + tail, f"{len(tail)} bytes appended"

    def delete_range(self, data: bytes) -> tuple[bytes, str]:
        at, n = self._pos(data), self.rng.randint(1, 64)
        return data[:at] + data[at + n:], f"{n} bytes deleted at {at}"

    def insert_range(self, data: bytes) -> tuple[bytes, str]:
        at, src, n = self._pos(data), self._pos(data), self.rng.randint(1, 64)
        return data[:at] + data[src: src + n] + data[at:], f"{n} bytes from {src} inserted at {at}"

    def header_edit(self, data: bytes) -> tuple[bytes, str]:
        old, new = self.rng.choice(HEADER_EDITS)
        head_end = data.find(b"\n", 10)
        if head_end < 0:
            return self.bit_flip(data)
        header = data[:head_end].replace(old.encode(), new.encode(), 1)
        if self.rng.random() < 0.5:  # keep the header length field right, so the edit reaches numpy's parser
            body = header[10:] + b"\n"
            header = header[:8] + struct.pack("<H", len(body)) + body[:-1]
        return header + data[head_end:], f"header {old!r} -> {new!r}"

    def magic_edit(self, data: bytes) -> tuple[bytes, str]:
        out = bytearray(data)
        at = self.rng.randrange(10)
        out[at] = self.rng.choice((0, 1, 2, 3, 9, 0xFF, self.rng.randrange(256)))
        return bytes(out), f"magic/header byte {at} set to {out[at]}"

    # -- opcodes ------------------------------------------------------------------------------------------------

    def _op(self, seed: Seed, names: tuple[str, ...] | None = None) -> Op | None:
        ops = [op for op in seed.ops if names is None or op.name in names]
        return self.rng.choice(ops) if ops else None

    def swap_opcode(self, seed: Seed) -> tuple[bytes, str]:
        op = self._op(seed)
        code = self.rng.choice(pickletools.opcodes).code.encode("latin1")
        data = bytearray(seed.data)
        data[op.start] = code[0]
        return bytes(data), f"opcode {op.name} at {op.start} -> {code!r}"

    def change_int(self, seed: Seed) -> tuple[bytes, str]:
        op = self._op(seed, ("BININT1", "BININT2", "BININT", "BINGET", "BINPUT", "LONG_BINGET", "LONG_BINPUT",
                             "PROTO", "LONG1"))
        if op is None:
            return self.bit_flip(seed.data)
        width = op.end - op.start - 1
        value = self.rng.choice(INTERESTING_INTS + (self.rng.randrange(1 << 16),))
        if op.name in ("BINGET", "BINPUT", "LONG_BINGET", "LONG_BINPUT") and isinstance(op.arg, int):
            value = max(0, op.arg + self.rng.choice((-2, -1, 1, 2, 100))) if self.rng.random() < 0.6 else value
        if op.name == "LONG1":
            new = seed.data[op.start: op.start + 1] + bytes([8]) + (value % (1 << 64)).to_bytes(8, "little")
        else:
            new = seed.data[op.start: op.start + 1] + (value % (1 << (8 * width))).to_bytes(width, "little")
        return _rewrite(seed, op, new), f"{op.name} at {op.start} -> {value}"

    def change_length(self, seed: Seed) -> tuple[bytes, str]:
        widths = {"SHORT_BINUNICODE": 1, "BINUNICODE": 4, "BINUNICODE8": 8, "SHORT_BINBYTES": 1, "BINBYTES": 4,
                  "BINBYTES8": 8, "BYTEARRAY8": 8, "FRAME": 8}
        op = self._op(seed, tuple(widths))
        if op is None:
            return self.bit_flip(seed.data)
        width = widths[op.name]
        old = int.from_bytes(seed.data[op.start + 1: op.start + 1 + width], "little")
        value = self.rng.choice((0, old - 1, old + 1, old * 2, old // 2, (1 << (8 * width)) - 1, 1 << 30, 1 << 34))
        value %= 1 << (8 * width)
        data = bytearray(seed.data)
        data[op.start + 1: op.start + 1 + width] = value.to_bytes(width, "little")
        return bytes(data), f"{op.name} length at {op.start}: {old} -> {value}"

    def duplicate_op(self, seed: Seed) -> tuple[bytes, str]:
        op = self._op(seed, ("BINGET", "LONG_BINGET", "MEMOIZE", "BINPUT", "BUILD", "REDUCE", "TUPLE", "SETITEMS",
                             "APPEND", "MARK", "STACK_GLOBAL")) or self._op(seed)
        times = self.rng.choice((2, 3, 10, 1000))
        return _rewrite(seed, op, seed.data[op.start: op.end] * times), f"{op.name} at {op.start} x{times}"

    def remove_op(self, seed: Seed) -> tuple[bytes, str]:
        op = self._op(seed, ("BINGET", "MEMOIZE", "BINPUT", "BUILD", "REDUCE", "MARK", "TUPLE", "TUPLE1", "TUPLE2",
                             "TUPLE3", "SETITEMS", "APPEND", "NEWTRUE", "NEWFALSE")) or self._op(seed)
        return _rewrite(seed, op, b""), f"{op.name} at {op.start} removed"

    def replace_global(self, seed: Seed) -> tuple[bytes, str]:
        module, name = self.rng.choice(sorted(ALLOWED_GLOBALS))
        if self.rng.random() < 0.2:
            module, name = self.rng.choice((("builtins", "getattr"), ("numpy", "frombuffer"), ("posix", "system"),
                                            ("numpy.lib.stride_tricks", "as_strided"), ("copyreg", "_reconstructor")))
        op = self._op(seed, ("GLOBAL",))
        if op is not None:
            return _rewrite(seed, op, b"c" + f"{module}\n{name}\n".encode()), f"GLOBAL at {op.start} -> {module}.{name}"
        strings = [op for op in seed.ops if op.name == "SHORT_BINUNICODE" and op.arg in
                   {part for pair in ALLOWED_GLOBALS for part in pair}]
        if not strings:
            return self.bit_flip(seed.data)
        op = self.rng.choice(strings)
        text = module if "." in str(op.arg) or op.arg == "numpy" else name
        return _rewrite(seed, op, _str_op(text)), f"global part {op.arg!r} at {op.start} -> {text!r}"

    def replace_dtype(self, seed: Seed) -> tuple[bytes, str]:
        strings = [op for op in seed.ops if op.name in ("SHORT_BINUNICODE", "BINUNICODE") and isinstance(op.arg, str)
                   and op.arg[:1] in "fOUbic<>|" and len(op.arg) <= 4]
        if not strings:
            return self.bit_flip(seed.data)
        op, new = self.rng.choice(strings), self.rng.choice(DTYPE_NAMES)
        return _rewrite(seed, op, _str_op(new)), f"string {op.arg!r} at {op.start} -> {new!r}"

    def repeat_ops(self, seed: Seed) -> tuple[bytes, str]:
        """Repeat a run of opcodes: memo and container operations many times over."""
        i = self.rng.randrange(len(seed.ops))
        j = min(len(seed.ops), i + self.rng.randint(1, 6))
        first, last = seed.ops[i], seed.ops[j - 1]
        chunk = seed.data[first.start: last.end]
        times = self.rng.choice((2, 5, 50, 500))
        span = Op("RUN", None, first.start, last.end, first.frame)
        return _rewrite(seed, span, chunk * times), f"ops {i}..{j - 1} repeated x{times}"

    def insert_snippet(self, seed: Seed) -> tuple[bytes, str]:
        """Insert a short hostile opcode sequence before a random opcode."""
        snippets = {
            "deep tuple": b")" + b"\x85" * 5000 + b"0",
            "deep list": b"]" * 3000 + b"a" * 2999 + b"0",
            "memo doubling": b"N" + b"".join(b"q" + bytes([k]) + b"h" + bytes([k]) + b"\x86" for k in range(60)) + b"0",
            "mark storm": b"(" * 5000 + b"1" * 5000,
            "dup": b"N2" + b"2" * 1000 + b"t",
            "ext": b"\x82\x01",
            "persid": b"N" + b"Q",
            "buffer": b"\x97",
            "long4": b"\x8b\x00\x00\x00\x40",
        }
        name = self.rng.choice(sorted(snippets))
        op = self.rng.choice(seed.ops)
        at = Op("AT", None, op.start, op.start, op.frame)
        return _rewrite(seed, at, snippets[name]), f"{name} inserted at {op.start}"

    def inject_value(self, seed: Seed) -> tuple[bytes, str]:
        """Add a hostile value (or key) to the feature dict: its opcodes go last into a SETITEMS batch."""
        batches = [op for op in seed.ops if op.name == "SETITEMS"]
        if not batches:
            return self.bit_flip(seed.data)
        op = self.rng.choice(batches)
        memo = len({o.arg for o in seed.ops if o.start < op.start and o.name in ("BINPUT", "LONG_BINPUT")} |
                   {i for i, o in enumerate(o for o in seed.ops if o.start < op.start and o.name == "MEMOIZE")})
        name = self.rng.choice(sorted(self.hostile) + ["memo bomb", "deep tuple"])
        if name == "memo bomb":
            value = b"N" + b"".join(b"\x94j" + struct.pack("<I", memo + k) + b"\x86" for k in range(64))
        elif name == "deep tuple":
            value = b")" + b"\x85" * self.rng.choice((40, 1000, 300_000))
        else:
            value = self.hostile[name]
        key = self.rng.choice(("video_mae", "bert", "transcript", "extra"))
        pair = (value + _str_op(key)) if self.rng.random() < 0.3 else (_str_op(key) + value)
        at = Op("AT", None, op.start, op.start, op.frame)
        return _rewrite(seed, at, pair), f"{name} injected under {key!r} before SETITEMS at {op.start}"


def _opcodes_of(value: object) -> bytes:
    """``value``'s pickle opcodes, protocol 2 without memo operations, ready to splice into any stream."""
    out = io.BytesIO()
    pickler = pickle._Pickler(out, protocol=2)  # type: ignore[attr-defined]
    pickler.fast = True
    pickler.dump(value)
    return out.getvalue()[2:-1]


def hostile_values() -> dict[str, bytes]:
    """Values a feature file must never decode to, as opcodes (see ``crafted.py`` for whole files)."""
    from numpy._core.multiarray import scalar

    from .crafted import _frombuffer

    f4, obj = np.dtype("f4"), np.dtype("O")
    values = {
        "object array over bytes": Reduce(np.ndarray, ((1,), obj, b"A" * 8)),
        "stride-0 array": Reduce(np.ndarray, ((1000, 1024), f4, b"\0" * 4, 0, (0, 0))),
        "uninitialised array": Reduce(np.ndarray, ((4, 768), f4)),
        "reconstruct without state": Reduce(_reconstruct, (np.ndarray, (4, 768), f4)),
        "short state": Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (4, 768), f4, False, b"\0" * 10)),
        "object state": Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (1,), obj, False, b"A" * 8)),
        "object frombuffer": Reduce(_frombuffer, (b"A" * 8, obj, (1,), "C")),
        "object scalar": Reduce(scalar, (obj, b"A" * 8)),
        "float scalar": Reduce(scalar, (f4, b"\0" * 4)),
        "big shape frombuffer": Reduce(_frombuffer, (b"\0" * 8, f4, (2**40, 2**40), "C")),
        "negative stride state": Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (-1, 768), f4, False, b"")),
        "float128": longdouble_ones((2, 768)),
        "complex": np.ones((2, 768), np.complex64),
        "int": np.ones((2, 768), np.int32),
        "empty last dim": np.ones((2, 0), np.float32),
        "str array": np.array(["a", "b"]),
        "lone surrogate": "\ud800",
        "bad code point": Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (), np.dtype("U1"), False,
                                                                          b"\xff\xff\xff\xff")),
        "list": [1, 2, 3],
        "int value": 7,
        "ordered dict args": Reduce(__import__("collections").OrderedDict, ([("a", 1)],)),
        "encode utf-16": Reduce(__import__("_codecs").encode, ("abc", "utf-16")),
    }
    return {name: _opcodes_of(value) for name, value in values.items()}
