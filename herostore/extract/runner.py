"""Extraction in one process: decode ahead, run the models on batches, write each video, record failures.

A background thread decodes the next videos (decord) into a bounded queue while the
calling thread runs the models on batches and writes each video atomically. A video
that fails (decoding, the models, writing) is recorded with its reason and the run
goes on; a batch that fails in the models is retried one video at a time. The loaded
models are kept per process (``get_models``), so every task a worker process runs
reuses them. ``extract_task`` is the bulk engine's task (``herostore.bulk``): the same,
on whichever worker it lands, on the device that worker should use (``placement``).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..bulk import Outcome, TaskResult
from ..errors import ExtractionError, HerostoreError
from .discovery import VideoItem
from .encoders import Models
from .media import DecodedVideo, decode_video
from .models import ModelConfig, video_mae_num_frames
from .options import ExtractOptions
from .output import Output, OutputSpec
from .report import ExtractionReport

__all__ = ["Job", "extract_batch", "extract_task", "extract_videos", "get_models", "warm_up"]

Tick = Callable[[Outcome], None]


@dataclass(frozen=True)
class Job:
    """Everything a process needs to extract some of a run's videos; pickles, for worker processes."""

    output: OutputSpec
    models: ModelConfig
    options: ExtractOptions
    texts: dict[str, str]  # video id -> the labels' text, embedded by BERT instead of the transcript
    # the models and options as asked, before "auto" was settled: a worker settles them for itself
    requested: tuple[ModelConfig, ExtractOptions] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Settle the "auto" device and dtype and the per-device batch size where the job is made.
        if self.requested is None:
            object.__setattr__(self, "requested", (self.models, self.options))
        models = self.models.resolved()
        object.__setattr__(self, "models", models)
        object.__setattr__(self, "options", self.options.for_device(models.device))

    def absolute(self) -> Job:
        """This job with absolute output and model paths, for processes that run in another folder."""
        models, options = self.requested
        return Job(self.output.absolute(), self.models.absolute(), self.options, self.texts,
                   requested=(models.absolute(), options))

    def for_device(self, device: str) -> Job:
        """This job as asked, on ``device``: its dtype (``auto``) and batch size (unless asked) follow the device."""
        models, options = self.requested
        return Job(self.output, replace(models, device=device), options, self.texts, requested=self.requested)

    def on_this_worker(self) -> Job:
        """This job on the device this dask worker should use (``placement.choose_device``)."""
        from .placement import choose_device, worker_facts

        name, slots, cuda_count = worker_facts()
        device = choose_device(self.requested[0].device, cuda_count=cuda_count, gpu_slots=slots, worker_name=name)
        return self.for_device(device)

    def new_report(self) -> ExtractionReport:
        """An empty report for (part of) this job's run."""
        return ExtractionReport(self.output.path, self.output.format)


# ----------------------------------------------------------------------------------------------- models

_MODELS: dict[ModelConfig, Models] = {}
_MODELS_LOCK = threading.Lock()


def get_models(config: ModelConfig) -> Models:
    """The loaded models for ``config``: loaded once per process and kept (the last two configs)."""
    config = config.resolved()
    with _MODELS_LOCK:
        if config not in _MODELS:
            if len(_MODELS) >= 2:
                _MODELS.clear()
            _MODELS[config] = Models.load(config)
        return _MODELS[config]


# --------------------------------------------------------------------------------------------- features


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

_END = object()


def warm_up(job: Job) -> str:
    """On a dask worker (``client.run``): load the models its extraction tasks will use; the device chosen."""
    job = job.on_this_worker()
    get_models(job.models)
    return job.models.device


def extract_task(items: list[VideoItem], tick: Tick | None, *, job: Job, on_worker: bool) -> TaskResult:
    """The bulk engine's task: extract ``items`` here (``on_worker``: on the device this dask worker should use);
    one outcome per video, and the task's stage times, models and device as ``extra``."""
    start = time.perf_counter()
    if on_worker:
        job = job.on_this_worker()
    report = job.new_report()
    outcomes: list[Outcome] = []

    def record(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if tick is not None:
            tick(outcome)

    extract_videos(items, job, report, tick=record)
    extra = {"timings": dict(report.timings), "models": report.models, "device": job.models.device,
             "random_weight_models": report.random_weight_models, "videos": len(outcomes),
             "written": len(report.written), "seconds": time.perf_counter() - start}
    return TaskResult(outcomes, extra)


def extract_videos(items: Sequence[VideoItem], job: Job, report: ExtractionReport, *,
                   tick: Tick | None = None, output: Output | None = None) -> None:
    """Extract ``items`` in this process into ``report``: decode ahead in a thread, run models on batches, write.

    ``tick`` is called with each video's ``Outcome`` as it is settled. ``output``: the opened output, when the
    caller has it (else it is opened from ``job``).
    """
    output = output or Output(job.output)
    options = job.options
    batch_size = options.batch_size
    num_frames = video_mae_num_frames(job.models)
    models: Models | None = None  # loaded when the first video is decoded, so decoding overlaps loading
    timings = report.timings
    decoded_q: queue.Queue = queue.Queue(maxsize=max(options.prefetch, batch_size))
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
            while len(batch) < batch_size:
                entry = decoded_q.get()
                if entry is _END:
                    finished = True
                    break
                item, result = entry
                if isinstance(result, BaseException):
                    _fail(report, item, str(result), tick)
                else:
                    batch.append((item, result))
            if batch:
                if models is None:
                    models = get_models(job.models)
                    report.models = dict(models.refs)
                    report.random_weight_models = models.random_weights
                _process_batch(batch, models, job, output, report, tick)
    finally:
        stop.set()
        while thread.is_alive():
            try:
                decoded_q.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


def _process_batch(batch: list[tuple[VideoItem, DecodedVideo]], models: Models, job: Job, output: Output,
                   report: ExtractionReport, tick: Tick | None) -> None:
    texts = [job.texts.get(item.video_id) for item, _ in batch]
    try:
        results = extract_batch(models, [v for _, v in batch], texts, job.options, report.timings)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001
        if len(batch) > 1:  # find the video that breaks the batch
            for one in batch:
                _process_batch([one], models, job, output, report, tick)
            return
        item = batch[0][0]
        _fail(report, item, f"{item.path}: model inference failed ({type(exc).__name__}: {exc})", tick)
        return
    for (item, _), (features, notes) in zip(batch, results):
        start = time.perf_counter()
        try:
            wrote = output.write(item.video_id, features, notes)
        except MemoryError:
            raise
        except HerostoreError as exc:
            _fail(report, item, f"{item.path}: could not write features ({exc})", tick)
            continue
        except Exception as exc:  # noqa: BLE001 - a full disk or a lost mount fails this video, not the run
            _fail(report, item, f"{item.path}: could not write features ({type(exc).__name__}: {exc})", tick)
            continue
        report.timings["write"] += time.perf_counter() - start
        (report.written if wrote else report.skipped).append(item.video_id)
        clamped = bool(wrote and notes["source"].get("frames_clamped"))
        if clamped:
            report.frames_clamped.append(item.video_id)
        if tick:
            tick(Outcome(item.video_id, "written" if wrote else "skipped", value={"frames_clamped": clamped}))


def _fail(report: ExtractionReport, item: VideoItem, reason: str, tick: Tick | None) -> None:
    report.failed[item.video_id] = reason
    if tick:
        tick(Outcome(item.video_id, "failed", reason))
