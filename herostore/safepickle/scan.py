"""Step 1: walking the opcode stream once, building nothing, checking every opcode, length and limit."""

from __future__ import annotations

import io
from typing import BinaryIO

from ..errors import SpecError, UnsafePickleError
from .limits import (
    ALLOWED_GLOBALS,
    CALLABLE_BY_NAME,
    MAX_DEPTH,
    MAX_MEMO_GETS,
    MAX_NODES,
    MAX_OPCODES,
    quote,
)


class _Node:
    """What the scan knows of one value the stream would build."""

    __slots__ = ("depth", "kind", "size", "text")

    def __init__(self, kind: str, depth: int = 0, size: int = 1, text: str | None = None):
        self.kind, self.depth, self.size, self.text = kind, depth, size, text


_MARK = _Node("mark")
_LEAF = _Node("leaf")

# opcode -> (bytes of its fixed argument or of its length prefix, what it pushes)
_FIXED = {b"N": 0, b"\x88": 0, b"\x89": 0, b"J": 4, b"K": 1, b"M": 2, b"G": 8}
_COUNTED = {b"\x8c": (1, "str"), b"X": (4, "str"), b"\x8d": (8, "str"), b"C": (1, "bytes"), b"B": (4, "bytes"),
            b"\x8e": (8, "bytes"), b"\x96": (8, "bytes"), b"\x8a": (1, "leaf")}
_POP_TUPLE = {b"\x85": 1, b"\x86": 2, b"\x87": 3}


class Scan:
    """The opcode walk of step 1; ``run`` returns the offset just past STOP."""

    def __init__(self, f: BinaryIO, source: str, start: int, end: int):
        self.f, self.source, self.pos, self.end = f, source, start, end
        self.stack: list[_Node] = []
        self.marks: list[int] = []
        self.memo: dict[int, _Node] = {}
        self.gets = 0

    def fail(self, what: str, error: type[Exception] = SpecError) -> Exception:
        """A corrupt stream is a ``SpecError``; pass ``UnsafePickleError`` for what a file must never hold."""
        prefix = "corrupt pickled dict: " if error is SpecError else ""
        return error(f"{self.source}: {prefix}{what} (byte {self.pos})")

    def limit(self, what: str) -> SpecError:
        return SpecError(f"{self.source}: {what} (byte {self.pos}), beyond the limit for a feature file")

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise self.fail("the pickle stream ends early")
        self.pos += n
        return data

    def skip(self, n: int) -> None:
        if n > self.end - self.pos:
            raise self.fail(f"a length of {n} bytes runs past the end of the file")
        self.f.seek(n, io.SEEK_CUR)
        self.pos += n

    def pop(self) -> _Node:
        if not self.stack or self.stack[-1] is _MARK:
            raise self.fail("the pickle stream pops from an empty stack")
        return self.stack.pop()

    def pop_mark(self) -> list[_Node]:
        if not self.marks:
            raise self.fail("the pickle stream has no MARK to pop to")
        at = self.marks.pop()
        items = self.stack[at + 1:]
        del self.stack[at:]
        return items

    def push(self, node: _Node) -> None:
        self.check(node)
        self.stack.append(node)

    def check(self, node: _Node) -> None:
        if node.depth > MAX_DEPTH:
            raise self.limit(f"values nest deeper than {MAX_DEPTH} levels")
        if node.size > MAX_NODES:
            raise self.limit(f"a value expands to more than {MAX_NODES} objects through shared references")

    def contain(self, kind: str, items: list[_Node]) -> _Node:
        return _Node(kind, 1 + max((i.depth for i in items), default=0), 1 + sum(i.size for i in items))

    def grow(self, target: _Node, items: list[_Node]) -> None:
        for item in items:
            target.depth = max(target.depth, item.depth + 1)
            target.size += item.size
        self.check(target)

    def target(self, kind: str, op: str) -> _Node:
        if not self.stack or self.stack[-1].kind != kind:
            raise self.fail(f"{op} on a value that is not a {kind}", UnsafePickleError)
        return self.stack[-1]

    def global_node(self, module: str | None, name: str | None) -> _Node:
        if (module, name) not in ALLOWED_GLOBALS:
            shown = f"{module}.{name}" if module is not None and name is not None else "a computed name"
            raise UnsafePickleError(
                f"{self.source}: refusing to unpickle global {quote(shown, 80)}; "
                "a feature .npy may only hold numpy arrays, strings and a dict"
            )
        return _Node("global", text=f"{module}.{name}")

    def line(self) -> str:
        data = self.f.readline(65)
        self.pos += len(data)
        if not data.endswith(b"\n"):
            raise self.fail("a GLOBAL name longer than 64 bytes or cut short")
        return data[:-1].decode("latin1")

    def run(self) -> int:
        f, stack = self.f, self.stack
        for _ in range(MAX_OPCODES):
            op = f.read(1)
            if not op:
                raise self.fail("the pickle stream ends without STOP")
            self.pos += 1
            if op in _FIXED:
                if _FIXED[op]:
                    self.read(_FIXED[op])
                self.push(_LEAF)
            elif op in _COUNTED:
                width, kind = _COUNTED[op]
                n = int.from_bytes(self.read(width), "little")
                if kind == "str" and n <= 64:
                    text = self.read(n).decode("utf-8", "replace")
                    self.push(_Node("str", text=text))
                else:
                    self.skip(n)
                    self.push(_Node(kind))
            elif op in (b"\x94", b"q", b"r"):  # MEMOIZE, BINPUT, LONG_BINPUT
                index = len(self.memo) if op == b"\x94" else int.from_bytes(self.read(1 if op == b"q" else 4),
                                                                            "little")
                if index > len(self.memo) or not stack or stack[-1] is _MARK:
                    raise self.fail(f"memo index {index} out of sequence")
                self.memo[index] = stack[-1]
            elif op in (b"h", b"j"):  # BINGET, LONG_BINGET
                index = int.from_bytes(self.read(1 if op == b"h" else 4), "little")
                self.gets += 1
                if index not in self.memo:
                    raise self.fail(f"memo index {index} read before it was written")
                if self.gets > MAX_MEMO_GETS:
                    raise self.limit(f"more than {MAX_MEMO_GETS} shared references")
                stack.append(self.memo[index])
            elif op == b"(":
                self.marks.append(len(stack))
                stack.append(_MARK)
            elif op == b")":
                stack.append(_Node("tuple", 1))
            elif op in _POP_TUPLE:
                items = [self.pop() for _ in range(_POP_TUPLE[op])]
                self.push(self.contain("tuple", items))
            elif op == b"t":
                self.push(self.contain("tuple", self.pop_mark()))
            elif op == b"]":
                stack.append(_Node("list", 1))
            elif op == b"}":
                stack.append(_Node("dict", 1))
            elif op == b"a":
                item = self.pop()
                self.grow(self.target("list", "APPEND"), [item])
            elif op == b"e":
                items = self.pop_mark()
                self.grow(self.target("list", "APPENDS"), items)
            elif op == b"s":
                items = [self.pop(), self.pop()]
                self.grow(self.target("dict", "SETITEM"), items)
            elif op == b"u":
                items = self.pop_mark()
                self.grow(self.target("dict", "SETITEMS"), items)
            elif op == b"c":
                module = self.line()
                stack.append(self.global_node(module, self.line()))
            elif op == b"\x93":
                name, module = self.pop(), self.pop()
                stack.append(self.global_node(module.text if module.kind == "str" else None,
                                              name.text if name.kind == "str" else None))
            elif op == b"R":
                args, func = self.pop(), self.pop()
                kind = CALLABLE_BY_NAME.get(func.text) if func.kind == "global" else None
                if kind is None or args.kind != "tuple":
                    called = f"{func.text} directly" if func.kind == "global" else "a value that is not a global"
                    raise self.fail(f"the stream calls {called}; arrays may only be rebuilt through numpy's "
                                    "_reconstruct or _frombuffer", UnsafePickleError)
                kind = kind if kind in ("bytes", "dict", "array", "dtype") else "value"
                self.push(_Node(kind, args.depth + 1, args.size + 1))
            elif op == b"b":
                state = self.pop()
                if not stack or stack[-1].kind not in ("array", "dtype"):
                    raise self.fail("BUILD on a value that is not an array or a dtype", UnsafePickleError)
                self.grow(stack[-1], [state])
            elif op == b"\x80":
                if self.read(1)[0] > 5:
                    raise self.fail("pickle protocol above 5")
            elif op == b"\x95":  # FRAME: a length, then ordinary opcodes
                n = int.from_bytes(self.read(8), "little")
                if n > self.end - self.pos:
                    raise self.fail(f"a frame of {n} bytes runs past the end of the file")
            elif op == b".":
                if len(stack) != 1 or self.marks:
                    raise self.fail("the pickle stream stops with a malformed stack")
                return self.pos
            else:
                raise self.fail(f"pickle opcode {op!r} is not allowed in a feature file", UnsafePickleError)
        raise self.limit(f"more than {MAX_OPCODES} pickle opcodes")


