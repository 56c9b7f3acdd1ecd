"""The store campaign's steps, run in a worker on one mutated store, each judging what herostore returned.

A case is a dataset root (``features/`` the mutated store, ``labels.json``, ``classes.json``) copied from a seed
(``store_seeds``), whose reads before the mutation are the expected data. Steps:

- ``read``: ``open_reader(features).read(...)`` of every video: all modalities, each alone, a subset, ``max_rows``
  of 0, 1 and T-1 rows, the full read again (checksums remembered), and through a ``zero_copy`` reader;
- ``validate``: ``validate.validate_dataset(root)``; a report without errors must come with the original data;
- ``info``: ``info.store_info(features)``, whose content summary must equal the original's unless it lists the
  video as unreadable;
- ``dataset``: ``HeroDataset(features, labels.json)[i]`` for every sample, also with a modality subset cut to the
  first row and with every modality subsampled to 2 rows (the memory-mapped path);
- ``verify``: ``herostore.verify`` when the library has it;
- ``reference``: zarr-python's read of the mutated store through each array's own ``zarr.json`` (not the
  consolidated metadata), the oracle the campaign compares with (runner: never judged).

Everything returned is compared bit for bit (dtype, shape, bytes; transcript; notes). A step that returns
different data records the digest of each differing item under a key (``video|modality|rows``,
``video|transcript``, ``video|notes``, ``info``) as its evidence; the ``reference`` step records the digests of
the same items as zarr-python reads them, and ``runner.finalize_store`` decides from both whether the difference
is ``undetectable`` or ``wrong``. An error must be one bounded line naming the store (and the video it read).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from .runner import MAX_MESSAGE, judge_message
from .store_seeds import info_summary, load_expected

ARRAY_KEYS = ("video_mae", "clip", "hubert", "bert", "au")
SUBSAMPLE = 2


def prepare() -> None:
    """Imports a worker needs, done before its memory limit."""
    import torch  # noqa: F401
    import zarr  # noqa: F401

    import herostore.dataset
    import herostore.info
    import herostore.read
    import herostore.validate  # noqa: F401

    _verify_module()


def _verify_module() -> Any:
    """``herostore.verify`` of this checkout, or None where the library has none yet."""
    import herostore

    try:
        import herostore.verify as module
    except ImportError:
        return None
    return module if Path(module.__file__).parent == Path(herostore.__file__).parent else None


def start(case: dict[str, Any]) -> dict[str, Any]:
    from herostore.read.engine import VERIFIED

    VERIFIED._seen.clear()  # each case is a new store: as a fresh process would read it
    root = Path(case["root"])
    return {"root": root, "features": root / "features", "store": str(root / "features"),
            "expected": load_expected(case["expected"])}


def names(context: dict[str, Any]) -> tuple[str, ...]:
    """What an error message must name: the store (or, for the dataset, its labels file)."""
    return context["store"], str(context["root"] / "labels.json")


# -- comparing ------------------------------------------------------------------------------------------------


def digest(value: Any) -> str:
    if value is None:
        return "absent"
    if isinstance(value, np.ndarray):
        head = f"{value.dtype.str}{value.shape}".encode()
        return hashlib.sha1(head + np.ascontiguousarray(value).tobytes()).hexdigest()[:16]
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes())
    return digest(a) == digest(b)


def rows_key(vid: str, modality: str, rows: int | str | None) -> str:
    return f"{vid}|{modality}|{'all' if rows is None else rows}"


class Findings:
    """What one step saw: errors (judged), differences (with evidence)."""

    def __init__(self, store: str):
        self.store = store
        self.errors: list[str] = []
        self.bad_errors: list[str] = []
        self.wrong: list[str] = []
        self.evidence: dict[str, str] = {}

    def error(self, exc: Exception, vid: str | None) -> None:
        outcome, detail = judge_message(str(exc), (self.store,))
        if outcome == "error" and vid is not None and vid not in str(exc):
            outcome, detail = "traceback", f"error does not name video {vid!r}: {detail}"
        (self.errors if outcome == "error" else self.bad_errors).append(detail)

    def compare(self, key: str, got: Any, expected: Any) -> None:
        if not same(got, expected):
            self.wrong.append(f"{key}: {_describe(got)}, expected {_describe(expected)}")
            self.evidence[key] = digest(got)

    def verdict(self) -> tuple[str, str, dict[str, str]]:
        if self.bad_errors:
            return "traceback", self.bad_errors[0], {}
        if self.wrong:
            return "wrong", "; ".join(self.wrong[:3])[:MAX_MESSAGE], self.evidence
        if self.errors:
            return "error", self.errors[0], {}
        return "ok", "", {}


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{list(value.shape)}"
    return repr(value)[:60]


def _expected_rows(expected: dict[str, Any], modality: str, rows: int | None) -> Any:
    array = expected["arrays"].get(modality)
    return None if array is None else (array if rows is None else array[:rows])


def _compare_record(findings: Findings, vid: str, record: Any, expected: dict[str, Any], wanted: list[str] | None,
                    max_rows: dict[str, int] | None) -> None:
    for modality in wanted or ARRAY_KEYS:
        rows = (max_rows or {}).get(modality)
        findings.compare(rows_key(vid, modality, rows), record.arrays.get(modality),
                         _expected_rows(expected, modality, rows))
    findings.compare(f"{vid}|transcript", record.transcript, expected["transcript"])
    findings.compare(f"{vid}|notes", record.notes, expected["notes"])


def _requests(expected: dict[str, Any]) -> list[tuple[list[str] | None, dict[str, int] | None]]:
    lengths = {m: a.shape[0] for m, a in expected["arrays"].items()}
    return ([(None, None)] + [([m], None) for m in ARRAY_KEYS] + [(["hubert", "bert"], None)]
            + [(None, {m: 1 for m in ARRAY_KEYS}), (None, {m: max(0, lengths.get(m, 2) - 1) for m in ARRAY_KEYS}),
               (["clip", "bert"], {"clip": 0})])


# -- steps ----------------------------------------------------------------------------------------------------


def read(context: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    from herostore.errors import HerostoreError
    from herostore.read import open_reader

    expected = context["expected"]
    findings = Findings(context["store"])
    reader = open_reader(context["features"])
    zero_copy = open_reader(context["features"], zero_copy=True, threads=1)
    for vid, video in expected["videos"].items():
        plan = [(reader, *request) for request in _requests(video)]
        plan += [(reader, None, None), (zero_copy, None, None), (zero_copy, None, {m: 1 for m in ARRAY_KEYS})]
        for source, wanted, max_rows in plan:
            try:
                record = source.read(vid, wanted, max_rows=max_rows)
            except HerostoreError as exc:
                findings.error(exc, vid)
                continue
            _compare_record(findings, vid, record, video, wanted, max_rows)
    return findings.verdict()


def validate(context: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    from herostore.validate import validate_dataset

    report = validate_dataset(context["root"])
    if not report.ok:
        for finding in report.errors:
            text = f"{finding.where}: {finding.message}"
            if "\n" in text or len(text) > MAX_MESSAGE:
                return "traceback", f"finding is not one bounded line: {text[:300]}", {}
        first = report.errors[0]
        return "error", f"{first.where}: {first.message}"[:300], {}
    return _data_check(context, "validate")


def info(context: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    """``store_info`` describes the store as herostore's reader sees it: a video whose metadata the reader refuses
    is counted unreadable, the others with the lengths the reader would return."""
    from herostore.info import store_info

    summary = info_summary(store_info(context["features"]))
    view = _reader_view(context["features"])
    if summary != view:
        return "wrong", f"info says {json.dumps(summary)[:200]}; the reader: {json.dumps(view)[:200]}", {}
    if summary["unreadable"]:
        return "error", f"unreadable videos: {summary['unreadable'][:5]}", {}
    return "ok", "", {}


def _reader_view(features: Path) -> dict[str, Any]:
    from herostore.errors import HerostoreError
    from herostore.read import open_reader

    reader = open_reader(features)
    lengths: dict[str, dict[str, int]] = {}
    unreadable = []
    for vid in reader.video_ids():
        try:
            meta = reader.video_meta(vid)
            lengths[vid] = {m: reader.plan(meta, m).shape[0] for m in meta.arrays}
        except HerostoreError:
            unreadable.append(vid)
    return {**_summary(sorted(lengths), lengths, len(lengths) + len(unreadable)), "unreadable": unreadable}


def dataset(context: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    import torch

    from herostore.dataset import HeroDataset, subsample_index
    from herostore.errors import HerostoreError

    expected = context["expected"]["videos"]
    findings = Findings(context["store"])
    labels = context["root"] / "labels.json"
    variants = [({}, None, "all"), ({"modalities": ["hubert", "bert"], "max_len": 1, "truncate": "head"}, 1, "head"),
                ({"max_len": SUBSAMPLE}, SUBSAMPLE, "sub")]
    for options, n, how in variants:
        ds = HeroDataset(context["features"], labels, **options)
        for i in range(len(ds)):
            vid = ds.labels[i].video_id
            try:
                sample = ds[i]
            except HerostoreError as exc:
                findings.error(exc, vid)
                continue
            video = expected[vid]
            findings.compare(f"{vid}|transcript", sample["transcript"], video["transcript"])
            for modality in ds.modalities:
                array = video["arrays"].get(modality)
                if array is not None and n is not None and array.shape[0] > n:
                    array = array[:n] if how == "head" else array[subsample_index(array.shape[0], n).numpy()]
                got = sample[modality].numpy() if sample["present"][modality] else None
                if modality == "au" and array is None and not torch.equal(sample[modality], torch.zeros_like(
                        sample[modality])):
                    got = sample[modality].numpy()
                key = rows_key(vid, modality, None if how == "all" else f"{how}{n}")
                findings.compare(key, got, array)
    return findings.verdict()


def verify(context: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    module = _verify_module()
    if module is None:
        return "ok", "no herostore.verify in this version", {}
    return _run_verify(module, context)


def _run_verify(module: Any, context: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    report = module.verify_store(context["features"], workers=1, progress=False)
    if not report.ok:
        for problem in report.problems:
            text = problem.render()
            if "\n" in text or len(text) > MAX_MESSAGE:
                return "traceback", f"problem is not one bounded line: {text[:300]}", {}
        return "error", report.problems[0].render()[:300], {}
    return _data_check(context, "verify")


def _data_check(context: dict[str, Any], who: str) -> tuple[str, str, dict[str, str]]:
    """A check reported no problem: every video must read as the original."""
    from herostore.errors import HerostoreError, VideoNotFoundError
    from herostore.read import open_reader

    findings = Findings(context["store"])
    reader = open_reader(context["features"])
    for vid, video in context["expected"]["videos"].items():
        try:
            record = reader.read(vid)
        except VideoNotFoundError:  # a smaller store: the evidence says whether it is one
            findings.compare(f"{vid}|listed", "absent", "present")
            continue
        except HerostoreError as exc:
            return "wrong", f"{who} says OK, but {vid} does not read: {str(exc)[:200]}", {}
        _compare_record(findings, vid, record, video, None, None)
    return findings.verdict()


def reference(context: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    """zarr-python's read of the same items, through each array's own metadata: the evidence for the oracle."""
    import warnings

    import zarr
    from zarr.storage import LocalStore

    features = context["features"]
    expected = context["expected"]["videos"]
    special = _special_files(features)
    if special:
        return "error", f"not read: {special[0]} is a link or special file (zarr-python may block on it)", {}
    store = LocalStore(features, read_only=True)
    evidence: dict[str, str] = {}
    failures: list[str] = []
    differs: list[str] = []
    lengths: dict[str, dict[str, int]] = {}
    videos = sorted(p.name for p in features.iterdir() if p.is_dir() and not p.name.startswith(".")
                    and (p / "zarr.json").is_file())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for vid in sorted(set(videos) | set(expected)):
            try:
                group = zarr.open_group(store, path=vid, mode="r", use_consolidated=False, zarr_format=3)
                attrs = dict(group.attrs)
            except Exception as exc:  # noqa: BLE001 - the oracle reports, never judges
                failures.append(f"{vid}: {type(exc).__name__}")
                continue
            transcript = attrs.get("transcript")
            info = attrs.get("herostore") if isinstance(attrs.get("herostore"), dict) else {}
            notes = {k: v for k, v in info.items() if k not in ("modalities", "deviations")}
            evidence[f"{vid}|transcript"], evidence[f"{vid}|notes"] = digest(transcript), digest(notes)
            video = expected.get(vid, {"arrays": {}})
            for modality in ARRAY_KEYS:
                want = video["arrays"].get(modality)
                reads, length = _reference_reads(group, vid, modality, want)
                evidence.update(reads)
                failures += [f"{vid}/{modality}: {v}" for v in reads.values() if v.startswith("error")][:1]
                if length is not None:
                    lengths.setdefault(vid, {})[modality] = length
                full = reads[rows_key(vid, modality, None)]
                if vid in expected and not full.startswith("error") and full != digest(want):
                    differs.append(f"{vid}/{modality}")
            if vid in expected and (transcript != expected[vid]["transcript"]):
                differs.append(f"{vid}/transcript")
    evidence["info"] = digest(_summary(videos, lengths, len(videos)))
    for vid in expected:
        evidence[f"{vid}|listed"] = digest("present" if vid in videos else "absent")
    if failures:
        return "error", "; ".join(failures[:3]), evidence
    if differs:
        return "wrong", f"zarr-python reads different data without an error: {differs[:4]}", evidence
    return "ok", "", evidence


def _reference_reads(group: Any, vid: str, modality: str, want: np.ndarray | None) -> tuple[dict[str, str], int | None]:
    """Each request the steps make of one array, read on its own through zarr-python (a request that needs no chunk
    reads none), as digests or ``error: ...``; and the array's length by its metadata."""
    from herostore.dataset import subsample_index

    counts = {0, 1, (want.shape[0] - 1) if want is not None else 1}
    keys = [*[(rows_key(vid, modality, rows), rows) for rows in [None, *counts]],
            (rows_key(vid, modality, "head1"), 1), (rows_key(vid, modality, f"sub{SUBSAMPLE}"), "sub")]
    try:
        array = group.get(modality, None)
    except Exception as exc:  # noqa: BLE001 - the oracle reports, never judges
        return {key: f"error: {type(exc).__name__}: {str(exc)[:80]}" for key, _ in keys}, None
    if array is None:
        return {key: digest(None) for key, _ in keys}, None
    out = {}
    for key, rows in keys:
        try:
            if rows == "sub" and array.shape[0] > SUBSAMPLE:
                index = subsample_index(array.shape[0], SUBSAMPLE).numpy()
                value = array.get_orthogonal_selection((index,) + (slice(None),) * (array.ndim - 1))
            else:
                value = array[...] if rows in (None, "sub") else array[:rows]
            out[key] = digest(np.asarray(value))
        except Exception as exc:  # noqa: BLE001
            out[key] = f"error: {type(exc).__name__}: {str(exc)[:80]}"
    return out, array.shape[0]


def _special_files(features: Path) -> list[str]:
    import os
    import stat

    found = []
    for folder, dirs, files in os.walk(features):
        for name in dirs + files:
            mode = os.lstat(os.path.join(folder, name)).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                found.append(os.path.relpath(os.path.join(folder, name), features))
    return found


def _summary(videos: list[str], lengths: dict[str, dict[str, int]], listed: int) -> dict[str, Any]:
    """``info_summary`` of a store as zarr-python sees it (the same formulas as ``store_info``)."""
    per_modality: dict[str, list[int]] = {m: [] for m in ARRAY_KEYS}
    for vid in videos:
        for modality, n in lengths.get(vid, {}).items():
            per_modality[modality].append(n)
    out: dict[str, Any] = {"videos": listed, "unreadable": [], "lengths": {}, "counts": {}}
    for modality, values in per_modality.items():
        if values:
            v = np.asarray(values)
            out["lengths"][modality] = {"min": int(v.min()), "median": float(np.median(v)),
                                        "mean": round(float(v.mean()), 1), "max": int(v.max())}
            out["counts"][modality] = int(v.size)
    return out


STEPS = {"read": read, "validate": validate, "info": info, "dataset": dataset, "verify": verify,
         "reference": reference}


def keep_case(case: dict[str, Any], keep: Path) -> None:
    """Copy a bad case's folder into ``keep`` (links kept as links, FIFOs and devices left out)."""
    import shutil
    import stat

    def copy(src: str, dst: str) -> None:
        if stat.S_ISREG(Path(src).lstat().st_mode):
            shutil.copyfile(src, dst)

    shutil.copytree(case["root"], keep / f"case{case['id']}", symlinks=True, copy_function=copy,
                    dirs_exist_ok=True)
    (keep / f"case{case['id']}" / "what.txt").write_text(case["what"] + "\n")
