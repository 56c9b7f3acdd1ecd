"""JSON edits of a store's documents, for ``store_mutate.StoreMutator``: what an array's metadata says (shape, chunk
shape, data type, codecs, byte order, fill value, chunk key encoding, node fields), a video's attributes
(transcript, notes, deviations, modalities list) and consolidated metadata, the root's herostore attribute (format
version, preset, statistics), and JSON that strict parsers reject or read differently (NaN, 1e400, deep nesting, a
byte-order mark, UTF-16, duplicate keys, bad UTF-8, trailing data).

An array is edited in its consolidated copy, in its own ``zarr.json``, or in both the same way (``consistent-meta``);
``doc_kind`` tells whether two video documents differ in transcript, notes or deviations (``text``), in the rest
(``meta``), or in both (``meta+text``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from .store_files import Files, Mutation, rel

DTYPES = ("float16", "float32", "float64", "int16", "bfloat16", "complex64", "uint8", None, 3)


class JsonEdits:
    """The JSON strategies of a mutator; expects ``rng``, ``doc_bytes`` and ``stray`` from the class using it."""

    rng: Any

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
        return Mutation(kind, f"{rel(array_doc.parent, files.store)} metadata ({where}): {what}")

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
            old = attrs.get("transcript") if isinstance(attrs.get("transcript"), str) else ""
            new = rng.choice((old + "x", (old or "x")[:-1], "", "y" * 100_000, None, 3, ["a"],
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
        return Mutation(kind, f"{rel(doc, files.store)}: {what}")

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
        return Mutation(kind, f"{rel(doc, files.store)}: JSON {choice}")

    # -- files and folders ----------------------------------------------------------------------------------------


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError):
        return None


def doc_kind(old: bytes, new: bytes) -> str:
    """What a byte mutation changed in a video document: ``text`` (only transcript, notes or deviations), ``meta``
    (only the rest, or it no longer parses) or ``meta+text`` (both)."""
    before, after = _load_bytes(old), _load_bytes(new)
    if not isinstance(before, dict) or not isinstance(after, dict):
        return "meta"
    rest = _without_text(before) != _without_text(after)
    text = _text(before) != _text(after)
    return "meta+text" if rest and text else "meta" if rest else "text"


def _text(document: dict[str, Any]) -> Any:
    attrs = document.get("attributes") if isinstance(document.get("attributes"), dict) else {}
    info = attrs.get("herostore") if isinstance(attrs.get("herostore"), dict) else {}
    return attrs.get("transcript"), {k: v for k, v in info.items() if k != "modalities"}


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
