"""Extraction runs: find the videos, skip finished ones, decode ahead, run the models, write, report.

One process: a background thread decodes the next videos (decord) into a bounded queue
while the main thread runs the models on batches and writes each video atomically.
Several workers: the videos are cut into chunks and handed to a dask cluster (a local
one, or ``scheduler=ADDRESS``); every worker process loads the models once and writes
its own videos into the shared output. A video that fails is recorded with its reason
and the run goes on.
"""

from __future__ import annotations

import math
import os
import queue
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExtractionError, HerostoreError, InvalidVideoIdError
from ..presets import DEFAULT_PRESET, get_preset
from ..store import FeatureStore, check_video_id
from .media import DecodedVideo, decode_video
from .models import ROLES, ModelConfig, ModelLoadError, Models, video_mae_num_frames

__all__ = [
    "LIST_SUFFIXES",
    "STAGES",
    "VIDEO_SUFFIXES",
    "ExtractOptions",
    "Extraction",
    "ExtractionReport",
    "VideoItem",
    "discover_videos",
    "get_models",
    "prepare_extraction",
    "run_extraction",
]

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv", ".m4v", ".mpg", ".mpeg", ".wmv",
                            ".3gp", ".ts", ".mts", ".ogv"})
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
STAGES = ("decode", "video_mae", "clip", "au", "hubert", "asr", "bert", "write")
FORMATS = ("zarr", "npy")


@dataclass(frozen=True)
class VideoItem:
    video_id: str
    path: Path


@dataclass(frozen=True)
class ExtractOptions:
    """How features are shaped and how the work is scheduled (everything but the models)."""

    video_mae_output: str = "tokens"  # tokens [1568, 1024] | temporal [8, 1024]
    clip_output: str = "patches"  # patches [K*257, 1408] | cls [K, 1408]
    keyframes: int = 1
    silence_dbfs: float = -50.0  # audio whose RMS is below this has no speech: ASR is skipped
    batch_size: int = 1
    prefetch: int = 2
    decode_threads: int = 0

    def __post_init__(self) -> None:
        if self.video_mae_output not in ("tokens", "temporal"):
            raise ExtractionError(f"video_mae_output {self.video_mae_output!r}: expected tokens or temporal")
        if self.clip_output not in ("patches", "cls"):
            raise ExtractionError(f"clip_output {self.clip_output!r}: expected patches or cls")
        for name in ("keyframes", "batch_size", "prefetch"):
            if getattr(self, name) < 1:
                raise ExtractionError(f"{name} {getattr(self, name)}: expected at least 1")


@dataclass
class ExtractionReport:
    """What a run did: ids written, skipped (already complete) and failed (id -> reason)."""

    output: str
    format: str
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # seconds per stage
    elapsed: float = 0.0
    models: dict[str, str] = field(default_factory=dict)
    random_weight_models: bool = False
    interrupted: bool = False
    frames_clamped: list[str] = field(default_factory=list)  # ids whose sampled frames moved (see media.py)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted

    @property
    def videos_per_s(self) -> float:
        return len(self.written) / self.elapsed if self.elapsed > 0 else 0.0

    def merge(self, other: ExtractionReport) -> None:
        self.written += other.written
        self.skipped += other.skipped
        self.failed.update(other.failed)
        self.frames_clamped += other.frames_clamped
        for stage, seconds in other.timings.items():
            self.timings[stage] += seconds
        self.models = self.models or other.models
        self.random_weight_models |= other.random_weight_models

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: every field, plus ``videos_per_s``."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["timings"] = dict(self.timings)
        data["videos_per_s"] = self.videos_per_s
        return data

    def summary(self) -> str:
        """Human-readable lines: counts, speed, where the time went, every failure."""
        state = "interrupted" if self.interrupted else "done"
        head = (f"extract {state}: {len(self.written)} written, {len(self.skipped)} skipped (already complete), "
                f"{len(self.failed)} failed in {self.elapsed:.1f} s ({self.videos_per_s:.2f} videos/s) "
                f"-> {self.output} ({self.format})")
        lines = [head]
        busy = {k: v for k, v in self.timings.items() if v > 0}
        if busy:
            lines.append("time per stage (s, summed over workers): "
                         + ", ".join(f"{k} {busy[k]:.2f}" for k in STAGES if k in busy))
        if self.random_weight_models:
            lines.append("WARNING: random-weight test models were used; these features are meaningless")
        if self.frames_clamped:
            lines.append(f"{len(self.frames_clamped)} video(s) had undecodable frames near the end; their frames "
                         f"were sampled from the first 90% (frames_clamped): "
                         f"{', '.join(sorted(self.frames_clamped)[:10])}")
        if self.failed:
            lines.append(f"{len(self.failed)} failed:")
            lines += [f"  {vid}: {reason}" for vid, reason in sorted(self.failed.items())]
        if self.interrupted:
            lines.append("interrupted: finished videos are complete in the output; run again to resume")
        return "\n".join(lines)


# -------------------------------------------------------------------------------------------- discovery


def discover_videos(sources: str | os.PathLike | Sequence[str | os.PathLike], *, recursive: bool = False,
                    ) -> tuple[list[VideoItem], dict[str, str]]:
    """Videos named by ``sources``: files, folders (by suffix), or text files listing paths.

    A text file (``.txt``, ``.lst``, ``.list``) lists one path per line; blank lines and
    ``#`` comments are ignored, relative paths are relative to the list's folder. Returns
    the videos (id = file stem) and the ids refused up front: ids ``check_video_id``
    rejects and stems shared by several files (none of those files is extracted).
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    paths: list[Path] = []
    for source in sources:
        paths += _expand(Path(source).expanduser(), recursive)
    by_id: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        by_id[path.stem].append(path)
    items, refused = [], {}
    for vid, group in by_id.items():
        unique = list(dict.fromkeys(group))
        if len(unique) > 1:
            refused[vid] = (f"duplicate video id {vid!r}: {len(unique)} files have this stem "
                            f"({', '.join(map(str, unique[:3]))}); rename them so ids are unique")
            continue
        try:
            check_video_id(vid)
        except InvalidVideoIdError as exc:
            refused[vid] = f"{unique[0]}: {exc}"
            continue
        items.append(VideoItem(vid, unique[0]))
    return sorted(items, key=lambda item: item.video_id), refused


def _expand(path: Path, recursive: bool) -> list[Path]:
    if path.is_dir():
        pattern = "**/*" if recursive else "*"
        found = sorted(p for p in path.glob(pattern)
                       if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".") and p.is_file())
        if not found:
            raise ExtractionError(f"{path}: no video files found (looked for {', '.join(sorted(VIDEO_SUFFIXES))}"
                                  f"{'' if recursive else '; use --recursive for subfolders'})")
        return found
    if path.suffix.lower() in LIST_SUFFIXES and path.is_file():
        listed = []
        for line in path.read_text("utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                entry = Path(line).expanduser()
                listed.append(entry if entry.is_absolute() else path.parent / entry)
        if not listed:
            raise ExtractionError(f"{path}: the list names no videos (one path per line expected)")
        return listed
    if not path.exists():
        raise ExtractionError(f"--video_path {path}: no such file or folder (expected a video, a folder of videos "
                              f"or a text file listing them)")
    return [path]


# ----------------------------------------------------------------------------------------------- output


class _Output:
    """Where features go: a herostore store (zarr) or the spec's ``<id>.npy`` files (npy)."""

    def __init__(self, output_dir: str | os.PathLike, fmt: str, preset: str):
        if fmt not in FORMATS:
            raise ExtractionError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
        self.path = Path(output_dir)
        self.format = fmt
        if fmt == "zarr":
            self.store: FeatureStore | None = FeatureStore.create(self.path, preset)
        else:
            get_preset(preset)  # refuse a bad name the same way for both formats
            self.store = None
            self.path.mkdir(parents=True, exist_ok=True)

    def done(self, video_id: str) -> bool:
        if self.store is not None:
            return video_id in self.store
        return (self.path / f"{video_id}.npy").is_file()

    def write(self, video_id: str, features: dict[str, Any], notes: dict[str, Any], overwrite: bool) -> bool:
        if self.store is not None:
            return self.store.write_video(video_id, features, overwrite=overwrite, notes=notes)
        from ..npyfile import save_features

        target = self.path / f"{video_id}.npy"
        if not overwrite and target.is_file():
            return False
        save_features(target, features)  # the spec dict has no room for notes: see docs/extraction.md
        return True


# ----------------------------------------------------------------------------------------------- models

_MODELS: dict[ModelConfig, Models] = {}
_MODELS_LOCK = threading.Lock()


def get_models(config: ModelConfig) -> Models:
    """The loaded models for ``config``: loaded once per process and kept (the last two configs)."""
    with _MODELS_LOCK:
        if config not in _MODELS:
            if len(_MODELS) >= 2:
                _MODELS.clear()
            _MODELS[config] = Models.load(config)
        return _MODELS[config]


class _Timer:
    def __init__(self, timings: dict[str, float]):
        self.timings = timings
        self.stage = ""

    def __call__(self, stage: str) -> _Timer:
        self.stage = stage
        return self

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.stage] += time.perf_counter() - self.start


def _rms_dbfs(audio: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def extract_batch(models: Models, videos: Sequence[DecodedVideo], texts: Sequence[str | None],
                  options: ExtractOptions, timings: dict[str, float]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Features and notes for decoded videos; vision models run batched, audio per video.

    ``texts``: the ground-truth text per video (labels.json) or None to embed the transcript.
    """
    timer = _Timer(timings)
    with timer("video_mae"):
        mae = models.video_mae([v.frames for v in videos], pooled=options.video_mae_output == "temporal")
    with timer("clip"):
        clip = models.clip([v.keyframes for v in videos], cls_only=options.clip_output == "cls")
    au = None
    if models.au is not None:
        with timer("au"):
            au = models.au([v.frames for v in videos])
    hidden = int(models.hubert.model.config.hidden_size)
    hubert, speech = [], []
    for v in videos:
        if v.audio is None:  # no audio track: one zero row, flagged in the notes (the reference writes zeros too)
            hubert.append(np.zeros((1, hidden), np.float32))
            speech.append("none")
            continue
        with timer("hubert"):
            hubert.append(models.hubert(v.audio))
        speech.append("none" if _rms_dbfs(v.audio) < options.silence_dbfs else "present")
    transcripts = [""] * len(videos)
    speaking = [i for i, s in enumerate(speech) if s == "present"]
    if speaking:
        with timer("asr"):
            heard = models.asr([videos[i].audio for i in speaking])
        for i, text in zip(speaking, heard):
            transcripts[i] = text
            if not text:
                speech[i] = "none"  # the recogniser heard nothing
    embed = [t if t is not None else transcripts[i] for i, t in enumerate(texts)]
    with timer("bert"):
        bert = models.bert(embed)
    results = []
    for i, v in enumerate(videos):
        features = {"video_mae": mae[i], "clip": clip[i], "hubert": hubert[i], "bert": bert[i],
                    "transcript": transcripts[i]}
        if au is not None:
            features["au"] = au[i]
        notes = {
            "audio": "missing" if v.audio is None else "present",
            "speech": speech[i],
            "text_source": "labels" if texts[i] is not None else "transcript",
            "source": v.info(),
            "extraction": {
                "models": dict(models.refs),
                "video_mae_output": options.video_mae_output,
                "clip_output": options.clip_output,
                "keyframes": options.keyframes,
                "random_weight_test_models": models.random_weights,
            },
        }
        results.append((features, notes))
    return results


# ------------------------------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs for a chunk of videos; pickles for dask."""

    output_dir: str
    format: str
    preset: str
    models: ModelConfig
    options: ExtractOptions
    overwrite: bool
    texts: dict[str, str]


_END = object()


def _run_videos(items: Sequence[VideoItem], job: _Job, report: ExtractionReport,
                progress: _Progress | None = None, output: _Output | None = None) -> None:
    """Extract ``items`` in this process: decode ahead in a thread, run models on batches, write."""
    output = output or _Output(job.output_dir, job.format, job.preset)
    options = job.options
    num_frames = video_mae_num_frames(job.models)
    models: Models | None = None  # loaded when the first video is decoded, so decoding overlaps loading
    timings = report.timings
    decoded_q: queue.Queue = queue.Queue(maxsize=max(options.prefetch, options.batch_size))
    stop = threading.Event()

    def produce() -> None:
        for item in items:
            if stop.is_set():
                return
            start = time.perf_counter()
            try:
                result: Any = decode_video(item.path, num_frames=num_frames,
                                           keyframes=options.keyframes, num_threads=options.decode_threads)
            except ExtractionError as exc:
                result = exc
            except Exception as exc:  # noqa: BLE001 - any decoder crash is this video's failure
                result = ExtractionError(f"{item.path}: decoding failed ({type(exc).__name__}: {exc})")
            timings["decode"] += time.perf_counter() - start
            while not stop.is_set():
                try:
                    decoded_q.put((item, result), timeout=0.2)
                    break
                except queue.Full:
                    continue
        decoded_q.put(_END)

    thread = threading.Thread(target=produce, name="herostore-decode", daemon=True)
    thread.start()
    try:
        finished = False
        while not finished:
            batch: list[tuple[VideoItem, DecodedVideo]] = []
            while len(batch) < options.batch_size:
                entry = decoded_q.get()
                if entry is _END:
                    finished = True
                    break
                item, result = entry
                if isinstance(result, BaseException):
                    _fail(report, item, str(result), progress)
                else:
                    batch.append((item, result))
            if batch:
                if models is None:
                    models = get_models(job.models)
                    report.models = dict(models.refs)
                    report.random_weight_models = models.random_weights
                _process_batch(batch, models, job, output, report, progress)
    finally:
        stop.set()
        while thread.is_alive():
            try:
                decoded_q.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


def _process_batch(batch: list[tuple[VideoItem, DecodedVideo]], models: Models, job: _Job, output: _Output,
                   report: ExtractionReport, progress: _Progress | None) -> None:
    texts = [job.texts.get(item.video_id) for item, _ in batch]
    try:
        results = extract_batch(models, [v for _, v in batch], texts, job.options, report.timings)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001
        if len(batch) > 1:  # find the video that breaks the batch
            for one in batch:
                _process_batch([one], models, job, output, report, progress)
            return
        item = batch[0][0]
        _fail(report, item, f"{item.path}: model inference failed ({type(exc).__name__}: {exc})", progress)
        return
    for (item, _), (features, notes) in zip(batch, results):
        start = time.perf_counter()
        try:
            wrote = output.write(item.video_id, features, notes, job.overwrite)
        except MemoryError:
            raise
        except HerostoreError as exc:
            _fail(report, item, f"{item.path}: could not write features ({exc})", progress)
            continue
        except Exception as exc:  # noqa: BLE001 - a full disk or a lost mount fails this video, not the run
            _fail(report, item, f"{item.path}: could not write features ({type(exc).__name__}: {exc})", progress)
            continue
        report.timings["write"] += time.perf_counter() - start
        (report.written if wrote else report.skipped).append(item.video_id)
        if wrote and notes["source"].get("frames_clamped"):
            report.frames_clamped.append(item.video_id)
        if progress:
            progress.update(1)


def _fail(report: ExtractionReport, item: VideoItem, reason: str, progress: _Progress | None) -> None:
    report.failed[item.video_id] = reason
    if progress:
        progress.update(1, failed=True)


def _extract_chunk(items: list[VideoItem], job: _Job) -> ExtractionReport:
    """A dask task: extract ``items`` in this worker process (models cached per process)."""
    job = replace(job, models=_worker_device(job.models))
    report = ExtractionReport(job.output_dir, job.format)
    _run_videos(items, job, report)
    return report


def _worker_device(config: ModelConfig) -> ModelConfig:
    """Spread workers over the GPUs: worker n of a local cluster uses ``cuda:{n % gpus}``."""
    if config.device != "cuda":
        return config
    import torch

    count = torch.cuda.device_count()
    if count <= 1:
        return config
    try:
        from distributed import get_worker

        name = get_worker().name
        index = int(name) if str(name).isdigit() else abs(hash(name))
    except (ImportError, ValueError):
        return config
    return replace(config, device=f"cuda:{index % count}")


class _Progress:
    """tqdm when installed (videos/s and ETA), else one refreshed line on stderr; nothing when disabled."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.done, self.failed = total, enabled and total > 0, 0, 0
        self.start = self.last = time.perf_counter()
        self.bar = None
        if self.enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="video", desc="extract", file=sys.stderr, dynamic_ncols=True,
                                smoothing=0.1)
            except ImportError:
                pass

    def update(self, n: int = 1, *, failed: bool = False) -> None:
        self.done += n
        self.failed += n if failed else 0
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
            if failed:
                self.bar.set_postfix(failed=self.failed)
            return
        now = time.perf_counter()
        if now - self.last >= 1.0 or self.done == self.total:
            self.last = now
            rate = self.done / (now - self.start) if now > self.start else 0.0
            eta = (self.total - self.done) / rate if rate > 0 else math.inf
            eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "?"
            sys.stderr.write(f"\rextract {self.done}/{self.total} videos, {rate:.2f} videos/s, ETA {eta_text}, "
                             f"{self.failed} failed ")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\n")


class Extraction:
    """One extraction run; ``report`` fills in as it goes (so an interrupted run can still say what it did)."""

    def __init__(self, video_paths: str | os.PathLike | Sequence[str | os.PathLike], output_dir: str | os.PathLike,
                 *, format: str = "zarr", preset: str = DEFAULT_PRESET, models: ModelConfig | None = None,
                 options: ExtractOptions | None = None, labels: str | os.PathLike | None = None,
                 workers: int = 1, scheduler: str | None = None, overwrite: bool = False, progress: bool = True,
                 recursive: bool = False):
        if workers < 1:
            raise ExtractionError(f"workers {workers}: expected at least 1")
        self.items, self.refused = discover_videos(video_paths, recursive=recursive)
        self.output = _Output(output_dir, format, preset)
        self.job = _Job(str(output_dir), format, str(preset), models or ModelConfig(), options or ExtractOptions(),
                        overwrite, _label_texts(labels) if labels is not None else {})
        self.workers, self.scheduler, self.progress = workers, scheduler, progress
        self.report = ExtractionReport(str(output_dir), format)

    def run(self) -> ExtractionReport:
        report = self.report
        start = time.perf_counter()
        report.failed.update(self.refused)
        todo = [item for item in self.items if self.job.overwrite or not self.output.done(item.video_id)]
        pending = {item.video_id for item in todo}
        report.skipped += [item.video_id for item in self.items if item.video_id not in pending]
        progress = _Progress(len(todo), self.progress)
        try:
            if todo and (self.workers > 1 or self.scheduler):
                self._run_dask(todo, progress)
            elif todo:
                _run_videos(todo, self.job, report, progress, self.output)
        except KeyboardInterrupt:
            report.interrupted = True
            raise
        finally:
            progress.close()
            report.elapsed = time.perf_counter() - start
        return report

    def _run_dask(self, todo: list[VideoItem], progress: _Progress) -> None:
        from distributed import Client, LocalCluster, as_completed

        cluster = None
        if self.scheduler:
            client = Client(self.scheduler)
        else:
            cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None)
            client = Client(cluster)
        try:
            n_workers = max(1, len(client.scheduler_info().get("workers", {})) or self.workers)
            size = max(1, min(16, math.ceil(len(todo) / (4 * n_workers))))
            chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
            tag = uuid.uuid4().hex[:8]
            job = _absolute_job(self.job)
            futures = {client.submit(_extract_chunk, _absolute_items(chunk), job,
                                     key=f"herostore-extract-{tag}-{i}"): chunk
                       for i, chunk in enumerate(chunks)}
            for future in as_completed(futures):
                chunk = futures[future]
                try:
                    part = future.result()
                except ModelLoadError:
                    for other in futures:
                        other.cancel()
                    raise
                except Exception as exc:  # noqa: BLE001 - a dead worker fails its chunk, not the run
                    for item in chunk:
                        _fail(self.report, item, f"{item.path}: worker failed ({type(exc).__name__}: {exc})",
                              progress)
                    continue
                self.report.merge(part)
                progress.update(len(part.written) + len(part.skipped))
                if part.failed:
                    progress.update(len(part.failed), failed=True)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _absolute(path: str | os.PathLike) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _absolute_items(items: Sequence[VideoItem]) -> list[VideoItem]:
    """Worker processes may run in another folder (or on another machine): send absolute paths."""
    return [VideoItem(item.video_id, Path(_absolute(item.path))) for item in items]


def _absolute_job(job: _Job) -> _Job:
    models = job.models
    if models.model_dir is not None:
        models = replace(models, model_dir=_absolute(models.model_dir))
    local = {role: _absolute(ref) for role in ROLES
             if (ref := getattr(models, role)) is not None and Path(ref).expanduser().exists()}
    return replace(job, output_dir=_absolute(job.output_dir), models=replace(models, **local))


def _label_texts(labels: str | os.PathLike) -> dict[str, str]:
    from ..labels import read_labels

    return {label.video_id: label.text for label in read_labels(labels) if label.text is not None}


def run_extraction(
    video_paths: str | os.PathLike | Iterable[str | os.PathLike],
    output_dir: str | os.PathLike,
    **kwargs: Any,
) -> ExtractionReport:
    """Extract HERO features for videos into a herostore store (``zarr``) or spec ``.npy`` files.

    ``video_paths``: a video, a folder of videos, a text file listing paths, or a list of
    those. ``output_dir`` becomes the store itself (``zarr``) or the folder of
    ``<video_id>.npy`` files (``npy``). Keyword arguments are those of
    ``prepare_extraction``. Videos already complete in the output are skipped unless
    ``overwrite``. Per-video failures are in ``report.failed``; problems with the whole
    run (bad paths, models that do not load) raise ``HerostoreError``.
    """
    return prepare_extraction(video_paths, output_dir, **kwargs).run()


def prepare_extraction(
    video_paths: str | os.PathLike | Iterable[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    format: str = "zarr",
    preset: str = DEFAULT_PRESET,
    model_dir: str | os.PathLike | None = None,
    language: str = "en",
    models: dict[str, str] | None = None,
    labels: str | os.PathLike | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    overwrite: bool = False,
    device: str = "cpu",
    dtype: str = "auto",
    video_mae_output: str = "tokens",
    clip_output: str = "patches",
    keyframes: int = 1,
    asr_language: str | None = None,
    silence_dbfs: float = -50.0,
    batch_size: int = 1,
    prefetch: int = 2,
    recursive: bool = False,
    progress: bool = True,
) -> Extraction:
    """Check the arguments, find the videos and open the output; ``.run()`` does the work.

    ``models`` overrides model ids or folders per role (``video_mae``, ``clip``, ``hubert``,
    ``asr``, ``bert``, ``au``); ``model_dir`` holds local copies as ``model_dir/org/name``.
    """
    overrides = {role: ref for role, ref in (models or {}).items() if ref is not None}
    unknown = sorted(set(overrides) - set(ROLES))
    if unknown:
        raise ExtractionError(f"unknown model role {unknown[0]!r}: expected one of {', '.join(ROLES)}")
    config = ModelConfig(language=language, model_dir=None if model_dir is None else str(model_dir), device=device,
                         dtype=dtype, asr_language=asr_language, **overrides)
    options = ExtractOptions(video_mae_output=video_mae_output, clip_output=clip_output, keyframes=keyframes,
                             silence_dbfs=silence_dbfs, batch_size=batch_size, prefetch=prefetch)
    if not isinstance(video_paths, (str, os.PathLike)):
        video_paths = list(video_paths)
    return Extraction(video_paths, output_dir, format=format, preset=preset, models=config, options=options,
                      labels=labels, workers=workers, scheduler=scheduler, overwrite=overwrite, progress=progress,
                      recursive=recursive)
