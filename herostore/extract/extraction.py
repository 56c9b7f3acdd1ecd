"""An extraction run, start to end: find the videos, skip finished ones, extract the rest, report.

The rest goes through the bulk engine (``herostore.bulk``): in this process for one worker, else on a local
cluster of ``workers`` processes or the cluster at ``scheduler``, as tasks of ``runner.extract_task`` (models
loaded once per worker process, the device chosen on each worker: ``placement``). Either way ``report`` fills in
as the run goes, so an interrupted run can still say what it did.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

from ..bulk import COMPLETED_DURING_RUN, Outcome, open_session, run_tasks
from .discovery import VideoItem, discover_videos
from .models import ModelConfig
from .options import BATCH_SIZE, ExtractOptions, RunSettings
from .output import Output, OutputSpec
from .placement import task_resources
from .report import ExtractionReport
from .runner import Job, extract_task

# A first guess of one video's extraction (tiny models on a CPU core: ~0.8 s), for the engine's first batches;
# later batches are sized from what the tasks took.
EXTRACT_SECONDS = 1.0

__all__ = ["Extraction", "prepare_extraction", "run_extraction"]

Sources = str | os.PathLike | Iterable[str | os.PathLike]


class Extraction:
    """A checked run, ready to go: the videos found, the output opened, the models' device and batch
    size settled (``job``). ``run()`` does the work; ``report`` fills in as it goes."""

    def __init__(self, items: Sequence[VideoItem], refused: dict[str, str], output: Output, job: Job,
                 settings: RunSettings):
        self.items, self.refused, self.output, self.job, self.settings = items, refused, output, job, settings
        self.report = job.new_report()

    def run(self) -> ExtractionReport:
        """Extract every video not yet complete in the output (all of them with ``overwrite``)."""
        report = self.report
        start = time.perf_counter()
        report.failed.update(self.refused)
        overwrite = self.job.output.overwrite
        todo = [item for item in self.items if overwrite or not self.output.done(item.video_id)]
        pending = {item.video_id for item in todo}
        report.skipped += [item.video_id for item in self.items if item.video_id not in pending]
        settings = self.settings
        try:
            with open_session(settings.workers, settings.scheduler, items=len(todo)) as session:
                job = self.job if session.inline else self.job.absolute()
                if not session.inline:
                    session.check_paths([job.output.path, job.models.model_dir, *[i.path for i in todo[:1]]])
                device = self.job.requested[0].device
                resources = None if session.inline else task_resources(session.workers(), device)
                # a task holds at least one model batch: the one asked for, or the default of the device it runs on
                min_batch = self.job.requested[1].batch_size or (BATCH_SIZE["cuda"] if resources
                                                                 else job.options.batch_size)
                items = todo if session.inline else [item.absolute() for item in todo]
                facts = run_tasks(session, partial(extract_task, job=job, on_worker=not session.inline), items,
                                  _Collector(report), describe=lambda item: (item.video_id, str(item.path)),
                                  desc="extract", progress=settings.progress and bool(todo), complete=(),
                                  item_seconds=EXTRACT_SECONDS, min_batch=min_batch, resources=resources)
                report.workers, report.workers_lost = facts.workers, facts.workers_lost
        except KeyboardInterrupt:
            report.interrupted = True
            raise
        finally:
            report.elapsed = time.perf_counter() - start
        return report


class _Collector:
    """Fills an ``ExtractionReport`` from the engine's outcomes and each task's extras."""

    def __init__(self, report: ExtractionReport):
        self.report = report

    def add(self, outcome: Outcome) -> None:
        report = self.report
        if outcome.status == "failed":
            report.failed[outcome.video_id] = outcome.detail
            return
        (report.written if outcome.status == "written" else report.skipped).append(outcome.video_id)
        if outcome.detail == COMPLETED_DURING_RUN:
            report.completed_elsewhere.append(outcome.video_id)
        if isinstance(outcome.value, dict) and outcome.value.get("frames_clamped"):
            report.frames_clamped.append(outcome.video_id)

    def add_extra(self, extra: dict[str, Any], worker: str) -> None:
        report = self.report
        for stage, seconds in extra.get("timings", {}).items():
            report.timings[stage] += seconds
        report.models = report.models or dict(extra.get("models") or {})
        report.random_weight_models |= bool(extra.get("random_weight_models"))
        where = f"{worker or 'this process'} ({extra.get('device', '?')})"
        entry = report.devices.setdefault(where, {"tasks": 0, "videos": 0, "written": 0, "busy_s": 0.0})
        entry["tasks"] += 1
        entry["videos"] += int(extra.get("videos", 0))
        entry["written"] += int(extra.get("written", 0))
        entry["busy_s"] += float(extra.get("seconds", 0.0))


def prepare_extraction(
    sources: Sources,
    output: OutputSpec | str | os.PathLike,
    *,
    models: ModelConfig | None = None,
    options: ExtractOptions | None = None,
    settings: RunSettings | None = None,
    labels: str | os.PathLike | None = None,
    recursive: bool = False,
) -> Extraction:
    """Check a run, find its videos and open its output; ``.run()`` on the result does the work.

    ``sources``: a video, a folder of videos (``recursive``: and its subfolders), a text file
    listing paths, or a list of those. ``output``: an ``OutputSpec`` (a bare path means a Zarr
    store with the default preset). ``models``, ``options``, ``settings``: their defaults when
    None (models on the ``auto`` device, batch size for that device, one process). ``labels``:
    a labels.json whose ``text`` BERT embeds instead of the transcript.
    """
    settings = settings or RunSettings()
    if not isinstance(sources, (str, os.PathLike)):
        sources = list(sources)
    items, refused = discover_videos(sources, recursive=recursive)
    spec = output if isinstance(output, OutputSpec) else OutputSpec(output)
    opened = Output(spec)
    texts = _label_texts(labels) if labels is not None else {}
    job = Job(spec, models or ModelConfig(), options or ExtractOptions(), texts)
    return Extraction(items, refused, opened, job, settings)


def run_extraction(sources: Sources, output: OutputSpec | str | os.PathLike, **kwargs: Any) -> ExtractionReport:
    """Extract HERO features for videos into a herostore store (``zarr``) or spec ``.npy`` files.

    Arguments are those of ``prepare_extraction``. Videos already complete in the output are
    skipped unless ``OutputSpec(overwrite=True)``. Per-video failures are in ``report.failed``;
    problems with the whole run (bad paths, models that do not load) raise ``HerostoreError``.
    """
    return prepare_extraction(sources, output, **kwargs).run()


def _label_texts(labels: str | os.PathLike) -> dict[str, str]:
    from ..labels import read_labels

    return {label.video_id: label.text for label in read_labels(labels) if label.text is not None}
