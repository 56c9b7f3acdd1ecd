"""Mutations of valid stores: chunk and document bytes, JSON edits, deleted, moved and special files.

``StoreMutator(seeds, seed).case(dest)`` copies a random seed's dataset root to ``dest`` (fresh files, fresh
times) and mutates its store one to three times. Each mutation has a kind, which says what it touched:

- ``chunk-bytes``: bytes of a chunk file (bit flips, overwrites, truncation, extension, zeros, ...);
- ``text``: only a video's transcript, notes or deviations changed (byte mutations of a video's ``zarr.json``
  are given this kind only when the documents before and after differ in nothing else);
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

``UNPROTECTED`` lists, per format version, the kinds the format cannot protect: a chunk's crc32c covers its bytes,
not its name (``moved``); nothing covers a video's transcript and notes (``text``) or an edit made the same way to
both copies of an array's metadata (``consistent-meta``); the store keeps no list of its videos
(``deleted-video``); format 1 has no checksums (``chunk-bytes``). A case mixes no kinds across that line (a
mutation on the other side of it is undone and drawn again), so that what it reads can be attributed.
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .store_seeds import StoreSeed

META = "zarr.json"
UNPROTECTED = {
    2: frozenset({"text", "moved", "consistent-meta", "deleted-video"}),
    1: frozenset({"text", "moved", "consistent-meta", "deleted-video", "chunk-bytes"}),
}
DTYPES = ("float16", "float32", "float64", "int16", "bfloat16", "complex64", "uint8", None, 3)


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
                files.chunk_dirs.append(Path(folder))
                files.chunks += [Path(folder) / n for n in sorted(names) if _regular(Path(folder) / n)]
    return files


def _regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _is_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _rel(path: Path, store: Path) -> str:
    return path.relative_to(store).as_posix()


class StoreMutator:
    """Mutated copies of ``seeds``, reproducible for a ``seed``."""

    def __init__(self, seeds: list[StoreSeed], seed: int = 0, *, format1_share: float = 0.2):
        self.v2 = [s for s in seeds if s.format_version == 2]
        self.v1 = [s for s in seeds if s.format_version == 1]
        self.format1_share = format1_share if self.v1 else 0.0
        self.rng = random.Random(seed)
        self.strategies: list[tuple[int, Callable[[Files], Mutation]]] = [
            (22, self.chunk_bytes), (14, self.doc_bytes), (18, self.array_edit), (10, self.group_edit),
            (6, self.root_edit), (4, self.json_syntax), (8, self.delete), (8, self.move), (6, self.special),
            (4, self.stray),
        ]

    def case(self, dest: Path) -> tuple[StoreSeed, list[Mutation]]:
        """Copy a seed to ``dest`` and mutate its store; the seed and what was done."""
        seed = self.rng.choice(self.v1 if self.rng.random() < self.format1_share else self.v2)
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
        return Mutation("chunk-bytes", f"{_rel(chunk, files.store)}: {what}")

    def doc_bytes(self, files: Files) -> Mutation:
        docs = files.docs()
        if not docs:
            return self.stray(files)
        pools = [p for p in ([files.root_doc] if files.root_doc else [], files.group_docs, files.array_docs) if p]
        doc = self.rng.choice(self.rng.choices(pools, [1, 3, 2][-len(pools):] if len(pools) == 3 else None)[0])
        old = doc.read_bytes()
        new, what = self._bytes_op(old)
        doc.write_bytes(new)
        kind = _text_only(old, new) if doc in files.group_docs else "meta"
        return Mutation(kind, f"{_rel(doc, files.store)}: {what}")

    # -- JSON edits -----------------------------------------------------------------------------------------------

    def _edit_array(self, meta: dict[str, Any]) -> str:
        """Edit an array's metadata in place; what was done."""
        rng = self.rng
        shape = meta.get("shape") if isinstance(meta.get("shape"), list) else [1, 1]
        chunks = (meta.get("chunk_grid") or {}).get("configuration", {}).get("chunk_shape")
        chunks = chunks if isinstance(chunks, list) else [1, 1]
        codecs = meta.get("codecs") if isinstance(meta.get("codecs"), list) else []
        op = rng.choice(("rows", "rows", "rows", "dim", "rank", "chunk", "chunk", "both", "dtype", "codecs",
                         "codecs", "endian", "blosc", "fill", "key", "node", "extra", "drop"))
        if op in ("rows", "dim", "chunk", "both"):
            index = 1 if op == "dim" else 0
            target = chunks if op == "chunk" else shape
            if not target or not isinstance(target[min(index, len(target) - 1)], int):
                return "no shape to edit"
            index = min(index, len(target) - 1)
            old = target[index]
            new = rng.choice((old - 1, old + 1, old - 2, old + 2, old * 2, 0, -1, 1, 2**40, 1e400, True, "1",
                              None, old + 0.5))
            target[index] = new
            if op == "both" and chunks:
                chunks[0] = new
            return f"{op} {old} -> {new!r}"
        if op == "rank":
            if rng.random() < 0.5:
                shape.append(1)
                chunks.append(1)
            else:
                shape.pop()
            return f"rank: shape {shape}, chunks {chunks}"
        if op == "dtype":
            new = rng.choice(DTYPES)
            meta["data_type"] = new
            return f"data_type -> {new!r}"
        if op == "codecs":
            choice = rng.choice(("drop", "dup", "reverse", "gzip", "transpose", "empty", "blosc", "crc-first"))
            names = [c.get("name") if isinstance(c, dict) else c for c in codecs]
            if choice == "drop" and codecs:
                codecs.pop(rng.randrange(len(codecs)))
            elif choice == "dup" and codecs:
                codecs.append(copy.deepcopy(codecs[-1]))
            elif choice == "reverse":
                codecs.reverse()
            elif choice == "gzip":
                codecs.insert(len(codecs) - 1, {"name": "gzip", "configuration": {"level": 1}})
            elif choice == "transpose":
                codecs.insert(0, {"name": "transpose", "configuration": {"order": [1, 0]}})
            elif choice == "empty":
                codecs.clear()
            elif choice == "blosc":
                codecs.insert(1, {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle":
                                                                      "bitshuffle", "typesize": 2, "blocksize": 0}})
            elif codecs:
                codecs.insert(0, codecs.pop())
            meta["codecs"] = codecs
            return f"codecs {names} -> {choice}"
        if op == "endian":
            for codec in codecs:
                if isinstance(codec, dict) and codec.get("name") == "bytes":
                    new = rng.choice(("big", "big", None, "middle"))
                    codec["configuration"] = {} if new is None else {"endian": new}
                    return f"bytes endian -> {new!r}"
            return "no bytes codec"
        if op == "blosc":
            for codec in codecs:
                if isinstance(codec, dict) and codec.get("name") == "blosc":
                    key, value = rng.choice((("cname", "zstd"), ("cname", "snappy"), ("clevel", 9), ("clevel", -1),
                                             ("shuffle", "noshuffle"), ("shuffle", "shuffle"), ("typesize", 1),
                                             ("typesize", 0), ("blocksize", 1 << 30), ("blocksize", 7)))
                    codec.setdefault("configuration", {})[key] = value
                    return f"blosc {key} -> {value!r}"
            return "no blosc codec"
        if op == "fill":
            new = rng.choice(("NaN", 1.0, None, "Infinity", [0], 1e300, "0x7e00"))
            meta["fill_value"] = new
            return f"fill_value -> {new!r}"
        if op == "key":
            new = rng.choice(({"name": "default", "configuration": {"separator": "."}}, {"name": "v2"},
                              {"name": "default"}, None))
            meta["chunk_key_encoding"] = new
            return f"chunk_key_encoding -> {new!r}"
        if op == "node":
            key, value = rng.choice((("node_type", "group"), ("zarr_format", 2), ("storage_transformers",
                                     [{"name": "x"}]), ("attributes", {"x": 1}), ("dimension_names", ["t", "d"])))
            meta[key] = value
            return f"{key} -> {value!r}"
        if op == "extra":
            meta[rng.choice(("must_understand_this", "extra"))] = {"must_understand": rng.random() < 0.5}
            return "extension field added"
        key = rng.choice(sorted(meta)) if meta else "shape"
        meta.pop(key, None)
        return f"{key!r} removed"

    def array_edit(self, files: Files) -> Mutation:
        """Edit one array's consolidated metadata, its own document, or both the same way."""
        pairs = [(g, a) for g in files.group_docs for a in files.array_docs if a.parent.parent == g.parent]
        if not pairs:
            return self.group_edit(files)
        group_doc, array_doc = self.rng.choice(pairs)
        name = array_doc.parent.name
        where = self.rng.choice(("consolidated", "consolidated", "own", "both"))
        group = _load(group_doc)
        entries = ((group or {}).get("consolidated_metadata") or {}).get("metadata")
        if where != "own" and not (isinstance(entries, dict) and isinstance(entries.get(name), dict)):
            where = "own"
        own = _load(array_doc)
        if where == "own" and not isinstance(own, dict):
            return self.doc_bytes(files)
        target = entries[name] if where != "own" else own
        before = copy.deepcopy(target)
        what = self._edit_array(target)
        if where == "both":
            if own == before:
                array_doc.write_text(json.dumps(target, indent=2))
            else:
                where = "consolidated"  # the two copies already differed: this is not a consistent edit
        if where != "own":
            group_doc.write_text(json.dumps(group, indent=2, ensure_ascii=False))
        else:
            array_doc.write_text(json.dumps(own, indent=2))
        kind = "consistent-meta" if where == "both" else "meta"
        return Mutation(kind, f"{_rel(array_doc.parent, files.store)} metadata ({where}): {what}")

    def group_edit(self, files: Files) -> Mutation:
        if not files.group_docs:
            return self.root_edit(files)
        doc = self.rng.choice(files.group_docs)
        document = _load(doc)
        if not isinstance(document, dict):
            return self.doc_bytes(files)
        attrs = document.setdefault("attributes", {}) if isinstance(document.get("attributes"), dict) else {}
        info = attrs.get("herostore") if isinstance(attrs.get("herostore"), dict) else {}
        rng = self.rng
        op = rng.choice(("transcript", "transcript", "notes", "deviations", "modalities", "modalities",
                         "consolidated", "structure"))
        kind = "text" if op in ("transcript", "notes", "deviations") else "meta"
        if op == "transcript":
            old = attrs.get("transcript")
            new = rng.choice(((old or "") + "x", (old or "x")[:-1], "", "y" * 100_000, None, 3, ["a"],
                              "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace")))
            if new is None:
                attrs.pop("transcript", None)
            else:
                attrs["transcript"] = new
            what = f"transcript -> {str(new)[:20]!r}"
        elif op == "notes":
            key, value = rng.choice((("audio", "missing"), ("audio", None), ("speech", "none"), ("extra", [1] * 3),
                                     ("float16_underflow", {"bert": {"to_zero": 9}}), ("float16_underflow", "x")))
            info[key] = value
            what = f"note {key} -> {value!r}"
        elif op == "deviations":
            value = rng.choice((["x"], "x", None, [1, 2]))
            info["deviations"] = value
            what = f"deviations -> {value!r}"
        elif op == "modalities":
            mods = info.get("modalities") if isinstance(info.get("modalities"), list) else []
            choice = rng.choice(("drop", "drop", "add", "dup", "reverse", "unknown", "empty", "not a list"))
            if choice == "drop" and mods:
                mods.pop(rng.randrange(len(mods)))
            elif choice == "add":
                mods.append(rng.choice(("au", "clip", "bert")))
            elif choice == "dup" and mods:
                mods.append(mods[0])
            elif choice == "reverse":
                mods.reverse()
            elif choice == "unknown":
                mods.append("audio")
            elif choice == "empty":
                mods.clear()
            info["modalities"] = mods if choice != "not a list" else "video_mae"
            what = f"modalities -> {choice}"
        elif op == "consolidated":
            entries = (document.get("consolidated_metadata") or {}).get("metadata")
            choice = rng.choice(("drop entry", "copy entry", "kind", "must_understand", "not a dict", "remove"))
            if choice == "drop entry" and isinstance(entries, dict) and entries:
                entries.pop(rng.choice(sorted(entries)))
            elif choice == "copy entry" and isinstance(entries, dict) and entries:
                entries[rng.choice(("au", "hubert", "extra"))] = copy.deepcopy(entries[rng.choice(sorted(entries))])
            elif choice == "kind" and isinstance(document.get("consolidated_metadata"), dict):
                document["consolidated_metadata"]["kind"] = "external"
            elif choice == "must_understand" and isinstance(document.get("consolidated_metadata"), dict):
                document["consolidated_metadata"]["must_understand"] = True
            elif choice == "not a dict":
                document["consolidated_metadata"] = rng.choice(([], "x", None, {"metadata": []}))
            else:
                document.pop("consolidated_metadata", None)
            what = f"consolidated metadata: {choice}"
        else:
            key, value = rng.choice((("node_type", "array"), ("zarr_format", 2), ("attributes", []),
                                     ("attributes", None), ("herostore", None)))
            if key == "herostore":
                attrs.pop("herostore", None)
            else:
                document[key] = value
            what = f"{key} -> {value!r}"
        if op in ("notes", "deviations", "modalities") and isinstance(document.get("attributes"), dict):
            document["attributes"]["herostore"] = info
        doc.write_text(json.dumps(document, indent=2, ensure_ascii=False), errors="surrogatepass")
        return Mutation(kind, f"{_rel(doc, files.store)}: {what}")

    def root_edit(self, files: Files) -> Mutation:
        if files.root_doc is None:
            return self.stray(files)
        document = _load(files.root_doc)
        if not isinstance(document, dict):
            return self.doc_bytes(files)
        info = ((document.get("attributes") or {}).get("herostore") if isinstance(document.get("attributes"), dict)
                else None)
        rng = self.rng
        if not isinstance(info, dict) or rng.random() < 0.15:
            key, value = rng.choice((("zarr_format", 2), ("node_type", "array"), ("attributes", {}),
                                     ("attributes", {"herostore": []})))
            document[key] = value
            what = f"{key} -> {value!r}"
        else:
            preset = info.get("preset") if isinstance(info.get("preset"), dict) else {}
            key, value = rng.choice((
                ("format_version", 1), ("format_version", 3), ("format_version", "2"), ("format_version", None),
                ("format_version", 2.0), ("format_version", True), ("preset", None), ("preset", "float16"),
                ("preset.name", "lossless"), ("preset.name", ""), ("preset.dtype", "float32"),
                ("preset.dtype", None), ("preset.dtype", "int8"), ("preset.cname", None), ("preset.cname", "lz4"),
                ("preset.cname", "snappy"), ("preset.chunk_rows", 3), ("preset.chunk_rows", 5),
                ("preset.chunk_rows", 0), ("preset.chunk_rows", 10**9), ("preset.chunk_rows", "4"),
                ("preset.keepbits", 99), ("preset.shuffle", "x"), ("preset.extra", 1), ("layout", "other"),
                ("stats", {"bert": {"mean": [0.0] * 768, "std": [1.0] * 768, "count": 3}}),
                ("stats", {"bert": {"mean": [0.0] * 3, "std": [1.0] * 768, "count": 3}}), ("stats", "x"),
            ))
            if key.startswith("preset."):
                preset[key.split(".", 1)[1]] = value
                info["preset"] = preset
            else:
                info[key] = value
            what = f"{key} -> {value!r}"
        files.root_doc.write_text(json.dumps(document, indent=2))
        return Mutation("meta", f"zarr.json: {what}")

    def json_syntax(self, files: Files) -> Mutation:
        docs = files.docs()
        if not docs:
            return self.stray(files)
        doc = self.rng.choice(docs)
        text = doc.read_bytes()
        choice = self.rng.choice(("nan", "huge number", "deep", "bom", "utf-16", "duplicate key", "bad utf-8",
                                  "trailing", "not an object"))
        if choice == "nan":
            text = text.replace(b"0.0", b"NaN", 1).replace(b": 3", b": Infinity", 1)
        elif choice == "huge number":
            text = text.replace(b"[\n", b"[\n1e400, ", 1)
        elif choice == "deep":
            text = text.replace(b"{", b'{"deep": ' + b"[" * 100_000 + b"]" * 100_000 + b", ", 1)
        elif choice == "bom":
            text = b"\xef\xbb\xbf" + text
        elif choice == "utf-16":
            text = text.decode("utf-8").encode("utf-16")
        elif choice == "duplicate key":
            at = text.rfind(b"}")
            text = text[:at] + b', "node_type": "array", "attributes": {}\n' + text[at:]
        elif choice == "bad utf-8":
            text = text.replace(b'"', b'"\xff', 1)
        elif choice == "trailing":
            text = text + b"\n{}"
        else:
            text = b"[" + text + b"]"
        doc.write_bytes(text)
        kind = "meta"
        return Mutation(kind, f"{_rel(doc, files.store)}: JSON {choice}")

    # -- files and folders ----------------------------------------------------------------------------------------

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
            return Mutation(kind, f"{name} {_rel(target, files.store)} renamed to {target.name}.bak")
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        return Mutation(kind, f"{name} {_rel(target, files.store)} removed")

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
            return Mutation("moved", f"{choice}: {_rel(a, files.store)} and {_rel(b, files.store)}")
        if choice in ("swap arrays", "swap same modality") and len(files.arrays) >= 2:
            a = rng.choice(files.arrays)
            if choice == "swap arrays":
                others = [p for p in files.arrays if p.parent == a.parent and p != a]
            else:
                others = [p for p in files.arrays if p.name == a.name and p != a]
            if others:
                b = rng.choice(others)
                _swap(a, b)
                return Mutation("moved", f"{choice}: {_rel(a, files.store)} and {_rel(b, files.store)}")
        if choice == "swap videos" and len(files.videos) >= 2:
            a, b = rng.sample(files.videos, 2)
            _swap(a, b)
            return Mutation("moved", f"videos {a.name} and {b.name} swapped")
        if files.videos:
            a = rng.choice(files.videos)
            shutil.copytree(a, a.with_name(a.name + "-copy"), copy_function=_copy_regular, symlinks=True)
            return Mutation("moved", f"video {a.name} copied to {a.name}-copy")
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
                return Mutation("special", f"{_rel(target, files.store)}: a file where a folder was")
        if choice == "outside" and (files.arrays or files.videos) and rng.random() < 0.4:
            target = rng.choice(files.arrays + files.videos)  # a folder replaced by a link to a valid copy
            pool = [p for p in files.arrays + files.videos if p.parent == target.parent and p != target] or [target]
            copy_of = rng.choice(pool)
            shutil.copytree(copy_of, outside / f"copy-{target.name}", copy_function=_copy_regular, symlinks=True)
            shutil.rmtree(target)
            target.symlink_to(outside / f"copy-{target.name}")
            return Mutation("special", f"{_rel(target, files.store)}: a link to a copy of {copy_of.name} outside")
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
        return Mutation("special", f"{_rel(target, files.store)}: {choice}")

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


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError):
        return None


def _swap(a: Path, b: Path) -> None:
    tmp = a.with_name(a.name + ".swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def _text_only(old: bytes, new: bytes) -> str:
    """``text`` when two video documents differ only in the transcript, notes or deviations; else ``meta``."""
    before, after = _load_bytes(old), _load_bytes(new)
    if not isinstance(before, dict) or not isinstance(after, dict):
        return "meta"
    return "text" if _without_text(before) == _without_text(after) else "meta"


def _load_bytes(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def _without_text(document: dict[str, Any]) -> Any:
    document = copy.deepcopy(document)
    attrs = document.get("attributes")
    if isinstance(attrs, dict):
        attrs.pop("transcript", None)
        info = attrs.get("herostore")
        if isinstance(info, dict):
            attrs["herostore"] = {"modalities": info.get("modalities")} if "modalities" in info else {}
    return document


def cases(n: int, *, seed: int, work: Path, seeds: list[StoreSeed], steps: list[str],
          reference_share: float) -> Any:
    """``n`` mutated copies of ``seeds`` as case folders under ``work``, with the steps to run on each."""
    mutator = StoreMutator(seeds, seed)
    choose = random.Random(seed + 1)
    for i in range(n):
        root = work / f"case{i}"
        picked, mutations = mutator.case(root)
        yield {"id": i, "kind": "store", "root": str(root), "steps": list(steps), "seed": picked.name,
               "expected": str(picked.expected_path), "format": picked.format_version,
               "kinds": [m.kind for m in mutations], "reference": choose.random() < reference_share,
               "what": f"{picked.name}: " + "; ".join(f"[{m.kind}] {m.what}" for m in mutations)}
