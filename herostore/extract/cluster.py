"""Extraction on a dask cluster: the run's only contact with dask, behind ``extract_on_cluster``.

The videos are cut into chunks, one task each; a worker process loads the models once
(``runner.get_models``) and writes its chunks' videos into the shared output. A worker that
dies fails its chunk's videos; a model that does not load (``ModelLoadError``) stops the run.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace

from ..errors import ModelLoadError
from .discovery import VideoItem
from .models import ModelConfig
from .report import ExtractionReport
from .runner import Job, extract_videos

__all__ = ["extract_on_cluster"]

MAX_CHUNK = 16  # videos per task, at most; smaller when there are few videos per worker


def extract_on_cluster(items: Sequence[VideoItem], job: Job, *, workers: int = 1,
                       scheduler: str | None = None) -> Iterator[ExtractionReport]:
    """Extract ``items`` on a local cluster of ``workers`` processes, or the cluster at ``scheduler``.

    Yields one report per chunk of videos as chunks finish (a dead worker's chunk comes back with
    every video failed). Paths are made absolute first, since workers may run in another folder.
    Raises ``ModelLoadError`` after cancelling the other chunks. Close the iterator to stop early.
    """
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        client = Client(cluster)
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})) or workers)
        size = max(1, min(MAX_CHUNK, math.ceil(len(items) / (4 * n_workers))))
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        tag = uuid.uuid4().hex[:8]
        portable = job.absolute()
        futures = {client.submit(_extract_chunk, [item.absolute() for item in chunk], portable,
                                 key=f"herostore-extract-{tag}-{i}"): chunk
                   for i, chunk in enumerate(chunks)}
        for future in as_completed(futures):
            try:
                part = future.result()
            except ModelLoadError:
                for other in futures:
                    other.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - a dead worker fails its chunk, not the run
                part = _chunk_failed(futures[future], job, exc)
            yield part
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _chunk_failed(chunk: Sequence[VideoItem], job: Job, exc: BaseException) -> ExtractionReport:
    report = job.new_report()
    for item in chunk:
        report.failed[item.video_id] = f"{item.path}: worker failed ({type(exc).__name__}: {exc})"
    return report


def _extract_chunk(items: list[VideoItem], job: Job) -> ExtractionReport:
    """A dask task: extract ``items`` in this worker process (models cached per process)."""
    job = replace(job, models=_worker_device(job.models))
    report = job.new_report()
    extract_videos(items, job, report)
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
