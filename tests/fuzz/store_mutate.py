"""Mutations of valid stores: chunk and document bytes, JSON edits, deleted, moved and special files.

``StoreMutator(seeds, seed).case(dest)`` copies a random seed's dataset root to ``dest`` (fresh files, fresh
times) and mutates its store one to three times. Each mutation has a kind, which says what it touched:

- ``chunk-bytes``: bytes of a chunk file (bit flips, overwrites, truncation, extension, zeros, ...);
- ``text``: only a video's transcript, notes or deviations changed (byte mutations of a video's ``zarr.json``
  are given this kind only when the documents before and after differ in nothing else, ``meta+text`` when they
  differ in both);
- ``meta``: any other change of what a ``zarr.json`` says (root, video or array; consolidated metadata and the
  array's own document edited apart, so they disagree), or a document that no longer parses;
- ``consistent-meta``: the same edit to an array's consolidated metadata and to its own ``zarr.json``;
- ``moved``: files or folders of the store swapped, or copied over one another or under a new name, leaving
  every name that was there in place (a rename that leaves a name missing is ``deleted``);
- ``deleted``: a file or folder inside a video removed (or renamed away);
- ``deleted-video``: a whole video folder removed or renamed;
- ``special``: a FIFO, a link (to ``/dev/zero``, to itself, to a valid file outside the store or inside it), a
  folder where a file should be, a file where a folder should be;
- ``stray``: something added beside the videos' own files (an extra file, folder, array or scratch entry).

``UNPROTECTED`` lists, per format version, the kinds the format cannot protect: no format keeps a list of its
videos (``deleted-video``); before format 3 sealed every video document, a chunk's crc32c covered its bytes, not
its name (``moved``), and nothing covered a video's transcript and notes (``text``) or an edit made the same way to
both copies of an array's metadata (``consistent-meta``); format 1 has no checksums (``chunk-bytes``). A case mixes no kinds across that line (a
mutation on the other side of it is undone and drawn again), so that what it reads can be attributed.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .store_files import Files, Mutation, catalogue, rel
from .store_json import JsonEdits, doc_kind
from .store_seeds import StoreSeed

__all__ = ["UNPROTECTED", "Files", "Mutation", "StoreMutator", "cases", "catalogue"]
UNPROTECTED = {
    3: frozenset({"deleted-video"}),
    2: frozenset({"text", "moved", "consistent-meta", "deleted-video"}),
    1: frozenset({"text", "moved", "consistent-meta", "deleted-video", "chunk-bytes"}),
}


class StoreMutator(JsonEdits):
    """Mutated copies of ``seeds``, reproducible for a ``seed``."""

    def __init__(self, seeds: list[StoreSeed], seed: int = 0, *, older_share: float = 0.3):
        newest = max(s.format_version for s in seeds)
        self.current = [s for s in seeds if s.format_version == newest]
        self.older = [s for s in seeds if s.format_version < newest]  # the golden stores of earlier formats
        self.older_share = older_share if self.older else 0.0
        self.rng = random.Random(seed)
        self.failures: list[str] = []  # mutations the file system refused: the case was made again
        self.strategies: list[tuple[int, Callable[[Files], Mutation]]] = [
            (22, self.chunk_bytes), (14, self.doc_bytes), (18, self.array_edit), (10, self.group_edit),
            (6, self.root_edit), (4, self.json_syntax), (8, self.delete), (8, self.move), (6, self.special),
            (4, self.stray),
        ]

    def case(self, dest: Path) -> tuple[StoreSeed, list[Mutation]]:
        """Copy a seed to ``dest`` and mutate its store; the seed and what was done.

        A mutation that cannot be made on what earlier ones left (a file system error, a document an earlier edit
        left in a shape this one does not expect) makes the case again; ``failures`` counts those.
        """
        for _attempt in range(10):
            try:
                return self._case(dest)
            except (OSError, shutil.Error, TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}"[:200])
                shutil.rmtree(dest, ignore_errors=True)
        raise RuntimeError(f"{dest}: no case could be made: {self.failures[-3:]}")

    def _case(self, dest: Path) -> tuple[StoreSeed, list[Mutation]]:
        seed = self.rng.choice(self.older if self.rng.random() < self.older_share else self.current)
        shutil.copytree(seed.root, dest, copy_function=shutil.copyfile)
        (dest / "outside").mkdir()  # files outside the store that links may point to
        store = dest / "features"
        unprotected = UNPROTECTED[seed.format_version]
        mutations: list[Mutation] = []
        weights, strategies = zip(*self.strategies)
        for _ in range(self.rng.choice((1, 1, 1, 1, 1, 2, 3))):
            backup = dest / "backup"
            if mutations:
                shutil.copytree(store, backup, symlinks=True, copy_function=_copy_regular)
            for _attempt in range(5):
                mutation = self.rng.choices(strategies, weights)[0](catalogue(store))
                if not mutations or (mutation.kind in unprotected) == (mutations[0].kind in unprotected):
                    mutations.append(mutation)
                    break
                shutil.rmtree(store)  # the other side of the line: undone, drawn again
                shutil.copytree(backup, store, symlinks=True, copy_function=_copy_regular)
            shutil.rmtree(backup, ignore_errors=True)
        return seed, mutations

    # -- bytes ----------------------------------------------------------------------------------------------------

    def _bytes_op(self, data: bytes) -> tuple[bytes, str]:
        rng, n = self.rng, len(data)
        op = rng.choice(("flip", "flip", "flip", "overwrite", "truncate", "extend", "delete", "insert", "zeros",
                         "empty", "tail"))
        at = rng.randrange(max(1, n))
        if op == "flip":
            out = bytearray(data)
            spots = sorted(rng.randrange(max(1, n)) for _ in range(rng.choice((1, 1, 2, 8))))
            for spot in spots:
                if out:
                    out[spot] ^= 1 << rng.randrange(8)
            return bytes(out), f"bits flipped at {spots}"
        if op == "overwrite":
            k = rng.randint(1, 16)
            value = bytes(rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256))) for _ in range(k))
            return data[:at] + value + data[at + k:], f"{k} bytes overwritten at {at}"
        if op == "truncate":
            keep = rng.choice((at, max(0, n - 1), max(0, n - 4), max(0, n - 5), 16, 0))
            return data[:keep], f"truncated to {keep} of {n} bytes"
        if op == "extend":
            k = rng.choice((1, 4, 100, n))
            return data + bytes(rng.randrange(256) for _ in range(min(k, 256))) * max(1, k // 256), f"{k} bytes appended"
        if op == "delete":
            k = rng.randint(1, 64)
            return data[:at] + data[at + k:], f"{k} bytes deleted at {at}"
        if op == "insert":
            k = rng.randint(1, 64)
            return data[:at] + bytes(rng.randrange(256) for _ in range(k)) + data[at:], f"{k} bytes inserted at {at}"
        if op == "zeros":
            return bytes(n), "every byte zeroed"
        if op == "empty":
            return b"", "emptied"
        spots = [n - 1 - rng.randrange(min(n, 4))] if n else []  # the checksum (or the last bytes)
        out = bytearray(data)
        for spot in spots:
            out[spot] ^= 1 << rng.randrange(8)
        return bytes(out), f"bit flipped in the last 4 bytes at {spots}"

    def chunk_bytes(self, files: Files) -> Mutation:
        if not files.chunks:
            return self.doc_bytes(files)
        chunk = self.rng.choice(files.chunks)
        data, what = self._bytes_op(chunk.read_bytes())
        chunk.write_bytes(data)
        return Mutation("chunk-bytes", f"{rel(chunk, files.store)}: {what}")

    def doc_bytes(self, files: Files) -> Mutation:
        docs = files.docs()
        if not docs:
            return self.stray(files)
        pools = [p for p in ([files.root_doc] if files.root_doc else [], files.group_docs, files.array_docs) if p]
        doc = self.rng.choice(self.rng.choices(pools, [1, 3, 2][-len(pools):] if len(pools) == 3 else None)[0])
        old = doc.read_bytes()
        new, what = self._bytes_op(old)
        doc.write_bytes(new)
        kind = doc_kind(old, new) if doc in files.group_docs else "meta"
        return Mutation(kind, f"{rel(doc, files.store)}: {what}")

    # -- JSON edits -----------------------------------------------------------------------------------------------

    def delete(self, files: Files) -> Mutation:
        pool = [("chunk", files.chunks), ("array doc", files.array_docs), ("video doc", files.group_docs),
                ("root doc", [files.root_doc] if files.root_doc else []), ("array", files.arrays),
                ("chunk folder", files.chunk_dirs), ("video", files.videos)]
        pool = [(name, paths) for name, paths in pool if paths]
        if not pool:
            return self.stray(files)
        name, paths = self.rng.choices(pool, [6, 2, 1, 1, 2, 1, 1][: len(pool)])[0]
        target = self.rng.choice(paths)
        kind = "deleted-video" if name == "video" else "deleted"
        if self.rng.random() < 0.2 and target != files.root_doc:  # renamed away instead of removed
            target.rename(target.with_name(target.name + ".bak"))
            return Mutation(kind, f"{name} {rel(target, files.store)} renamed to {target.name}.bak")
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        return Mutation(kind, f"{name} {rel(target, files.store)} removed")

    def move(self, files: Files) -> Mutation:
        rng = self.rng
        choice = rng.choice(("swap chunks", "swap chunks", "copy chunk", "swap arrays", "swap videos",
                             "copy video", "swap same modality", "hard link chunk"))
        if choice in ("swap chunks", "copy chunk", "hard link chunk") and len(files.chunks) >= 2:
            a, b = rng.sample(files.chunks, 2)
            if rng.random() < 0.6:  # most often within one array, where sizes agree
                same = [c for c in files.chunks if c.parts[:-3] == a.parts[:-3] and c != a]
                b = rng.choice(same) if same else b
            if choice == "swap chunks":
                _swap(a, b)
            elif choice == "copy chunk":
                shutil.copyfile(a, b)
            else:
                b.unlink()
                os.link(a, b)
            return Mutation("moved", f"{choice}: {rel(a, files.store)} and {rel(b, files.store)}")
        if choice in ("swap arrays", "swap same modality") and len(files.arrays) >= 2:
            a = rng.choice(files.arrays)
            if choice == "swap arrays":
                others = [p for p in files.arrays if p.parent == a.parent and p != a]
            else:
                others = [p for p in files.arrays if p.name == a.name and p != a]
            if others:
                b = rng.choice(others)
                _swap(a, b)
                return Mutation("moved", f"{choice}: {rel(a, files.store)} and {rel(b, files.store)}")
        if choice == "swap videos" and len(files.videos) >= 2:
            a, b = rng.sample(files.videos, 2)
            _swap(a, b)
            return Mutation("moved", f"videos {a.name} and {b.name} swapped")
        if files.videos:
            a = rng.choice(files.videos)
            copy_to = a.with_name(a.name + "-copy")
            while copy_to.exists():
                copy_to = copy_to.with_name(copy_to.name + "-copy")
            shutil.copytree(a, copy_to, copy_function=_copy_regular, symlinks=True)
            return Mutation("moved", f"video {a.name} copied to {copy_to.name}")
        return self.stray(files)

    def special(self, files: Files) -> Mutation:
        rng = self.rng
        choice = rng.choice(("fifo", "fifo", "dev zero", "outside", "outside", "inside", "loop", "folder", "file"))
        outside = files.store.parent / "outside"
        if choice == "file":
            folders = files.arrays + files.chunk_dirs + files.videos
            if folders:
                target = rng.choice(folders)
                shutil.rmtree(target)
                target.write_bytes(b"not a folder")
                return Mutation("special", f"{rel(target, files.store)}: a file where a folder was")
        if choice == "outside" and (files.arrays or files.videos) and rng.random() < 0.4:
            target = rng.choice(files.arrays + files.videos)  # a folder replaced by a link to a valid copy
            pool = [p for p in files.arrays + files.videos if p.parent == target.parent and p != target] or [target]
            copy_of = rng.choice(pool)
            shutil.copytree(copy_of, outside / f"copy-{target.name}", copy_function=_copy_regular, symlinks=True)
            shutil.rmtree(target)
            target.symlink_to(outside / f"copy-{target.name}")
            return Mutation("special", f"{rel(target, files.store)}: a link to a copy of {copy_of.name} outside")
        pool = files.chunks * 3 + files.docs()
        if not pool:
            return self.stray(files)
        target = rng.choice(pool)
        if choice == "fifo":
            target.unlink()
            os.mkfifo(target)
        elif choice == "dev zero":
            target.unlink()
            target.symlink_to("/dev/zero")
        elif choice in ("outside", "inside"):
            siblings = [p for p in pool if p.name == target.name and p != target and p.parent.name == target.parent.name]
            source = rng.choice(siblings) if siblings else target
            if choice == "outside":  # a valid file, but not this one: read through the link, the data would differ
                link_to = outside / f"link{rng.randrange(1 << 30)}"
                shutil.copyfile(source, link_to)
            else:
                link_to = source if source != target else target.with_name(target.name + ".orig")
                if source == target:
                    shutil.copyfile(target, link_to)
            target.unlink()
            target.symlink_to(link_to)
        elif choice == "loop":
            target.unlink()
            target.symlink_to(target.name)
        else:
            target.unlink()
            target.mkdir()
            choice = "folder"
        return Mutation("special", f"{rel(target, files.store)}: {choice}")

    def stray(self, files: Files) -> Mutation:
        rng = self.rng
        store = files.store
        choice = rng.choice(("file", "folder", "scratch", "hidden", "extra chunk", "extra array", "array file"))
        if choice == "file":
            (store / "notes.txt").write_text("a stray file")
        elif choice == "folder":
            (store / "stray" / "bert").mkdir(parents=True, exist_ok=True)
        elif choice == "scratch":
            (store / ".tmp" / "abc").mkdir(parents=True, exist_ok=True)
            (store / ".tmp" / "abc" / "zarr.json").write_text("{}")
        elif choice == "hidden" and files.videos:
            (rng.choice(files.videos) / ".DS_Store").write_bytes(b"\0" * 10)
        elif choice == "extra chunk" and files.chunks:
            chunk = rng.choice(files.chunks)
            extra = chunk.parent.parent / "99" / chunk.name
            extra.parent.mkdir(exist_ok=True)
            if extra != chunk:
                shutil.copyfile(chunk, extra)
        elif choice == "extra array" and files.arrays:
            array = rng.choice(files.arrays)
            name = rng.choice(("au", "extra", "bert_copy"))
            if not (array.parent / name).exists():
                shutil.copytree(array, array.parent / name, copy_function=_copy_regular, symlinks=True)
        elif files.arrays:
            (rng.choice(files.arrays) / "README").write_text("x")
        return Mutation("stray", f"stray {choice}")


def _copy_regular(src: str, dst: str) -> None:
    """Copy a regular file; FIFOs and devices are made again, never opened."""
    import stat

    mode = os.lstat(src).st_mode
    if stat.S_ISFIFO(mode):
        os.mkfifo(dst)
    elif stat.S_ISREG(mode):
        shutil.copyfile(src, dst)


def _swap(a: Path, b: Path) -> None:
    tmp = a.with_name(a.name + ".swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def cases(n: int, *, seed: int, work: Path, seeds: list[StoreSeed], steps: list[str],
          reference_share: float, failures: list[str] | None = None) -> Any:
    """``n`` mutated copies of ``seeds`` as case folders under ``work``, with the steps to run on each;
    ``failures`` gets the mutations that could not be made (their cases were made again)."""
    mutator = StoreMutator(seeds, seed)
    if failures is not None:
        mutator.failures = failures
    choose = random.Random(seed + 1)
    for i in range(n):
        root = work / f"case{i}"
        picked, mutations = mutator.case(root)
        yield {"id": i, "kind": "store", "root": str(root), "steps": list(steps), "seed": picked.name,
               "expected": str(picked.expected_path), "format": picked.format_version,
               "kinds": [m.kind for m in mutations], "reference": choose.random() < reference_share,
               "what": f"{picked.name}: " + "; ".join(f"[{m.kind}] {m.what}" for m in mutations)}
