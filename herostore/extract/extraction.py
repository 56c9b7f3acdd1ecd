"""An extraction run, start to end: find the videos, skip finished ones, extract the rest, report.

The rest is extracted in this process (``runner.extract_videos``) or, with several workers or a
scheduler, on a dask cluster (``cluster.extract_on_cluster``); either way ``report`` fills in as
the run goes, so an interrupted run can still say what it did.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

from .discovery import VideoItem, discover_videos
from .models import ModelConfig
from .options import ExtractOptions, RunSettings
from .output import Output, OutputSpec
from .progress import Progress
from .report import ExtractionReport
from .runner import Job, extract_videos

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
        progress = Progress(len(todo), self.settings.progress)
        try:
            if todo and self.settings.distributed:
                self._run_on_cluster(todo, progress)
            elif todo:
                extract_videos(todo, self.job, report, progress=progress, output=self.output)
        except KeyboardInterrupt:
            report.interrupted = True
            raise
        finally:
            progress.close()
            report.elapsed = time.perf_counter() - start
        return report

    def _run_on_cluster(self, todo: list[VideoItem], progress: Progress) -> None:
        from .cluster import extract_on_cluster

        parts = extract_on_cluster(todo, self.job, workers=self.settings.workers, scheduler=self.settings.scheduler)
        with contextlib.closing(parts):
            for part in parts:
                self.report.merge(part)
                progress.update(len(part.written) + len(part.skipped))
                progress.update(len(part.failed), failed=True)


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
