"""Which device an extraction task uses on its worker, and which workers may take extraction tasks.

On a cluster the device is chosen on each worker, from what that worker sees, never on the machine that submits
the run (it may have no GPU at all):

- workers that declare a ``GPU`` resource (``dask worker --resources GPU=1``) are the only ones given extraction
  tasks (each task holds one ``GPU`` unit, so a worker runs one at a time), unless the run asks for ``cpu``;
- ``auto`` means ``cuda`` when the worker's torch sees a GPU, else ``cpu``; a worker that declares a GPU but sees
  none is an error (a wrong ``CUDA_VISIBLE_DEVICES``), not a silent run on its CPU;
- ``cuda`` on a worker that sees several GPUs picks ``cuda:{n % count}`` from the number ``n`` in the worker's name
  (``0``..``N-1`` in a local cluster, ``gpu3`` when started so), so workers of one machine spread over its GPUs;
  a worker pinned with ``CUDA_VISIBLE_DEVICES=k`` sees one GPU and uses it. ``cuda:N`` is kept as asked.

The batch size then follows the chosen device (``options.default_batch_size``) unless one was asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..bulk import worker_index
from ..errors import ExtractionError
from .options import AUTO

__all__ = ["GPU_RESOURCE", "choose_device", "task_resources", "worker_facts"]

GPU_RESOURCE = "GPU"  # the dask resource name GPU workers declare


def task_resources(workers: Mapping[str, Mapping[str, Any]], device: str) -> dict[str, float] | None:
    """What each extraction task asks of its worker: one ``GPU`` unit when any worker declares that resource and
    the run may use a GPU (``device`` is not ``cpu``), else nothing (any worker)."""
    if device == "cpu":
        return None
    if any(float(w.get("resources", {}).get(GPU_RESOURCE, 0)) > 0 for w in workers.values()):
        return {GPU_RESOURCE: 1}
    return None


def choose_device(requested: str, *, cuda_count: int, gpu_slots: float = 0, worker_name: Any = None) -> str:
    """The device a worker runs the models on (see the module doc). ``cuda_count``: GPUs its torch sees;
    ``gpu_slots``: the ``GPU`` resource it declares (0: none); ``worker_name``: for spreading over several GPUs."""
    where = f"worker {worker_name!r}" if worker_name is not None else "this process"
    if requested == AUTO:
        if cuda_count == 0:
            if gpu_slots > 0:
                raise ExtractionError(f"{where} declares {GPU_RESOURCE}={gpu_slots:g} but torch sees no CUDA device "
                                      f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); fix "
                                      f"the worker's GPU, or run with --device cpu")
            return "cpu"
        requested = "cuda"
    if not requested.startswith("cuda"):
        return requested
    if cuda_count == 0:
        raise ExtractionError(f"{where}: device {requested!r} asked for, but torch sees no CUDA device")
    if requested == "cuda":
        if cuda_count == 1:
            return "cuda"
        index = worker_index(worker_name) if worker_name is not None else None
        return f"cuda:{(index or 0) % cuda_count}"
    try:
        number = int(requested.split(":", 1)[1])
    except (IndexError, ValueError):
        raise ExtractionError(f"device {requested!r}: expected cpu, cuda or cuda:N") from None
    if number >= cuda_count:
        raise ExtractionError(f"{where}: device {requested!r} asked for, but torch sees {cuda_count} CUDA device(s)")
    return requested


def worker_facts() -> tuple[Any, float, int]:
    """This process's dask worker name (None outside a worker), the ``GPU`` slots it declares, the GPUs torch sees."""
    name, slots = None, 0.0
    try:
        from distributed import get_worker

        worker = get_worker()
        name = worker.name
        slots = float(worker.state.total_resources.get(GPU_RESOURCE, 0))
    except (ImportError, ValueError):
        pass
    import torch

    return name, slots, torch.cuda.device_count() if torch.cuda.is_available() else 0
