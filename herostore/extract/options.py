"""What an extraction run is asked to do, apart from the models and the output: feature shapes,
batching, and how the run is spread and shown. Also the per-device defaults (``auto`` device,
batch size, model dtype), so the command line and the library share them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import ExtractionError

__all__ = [
    "AUTO",
    "BATCH_SIZE",
    "MODEL_DTYPE",
    "ExtractOptions",
    "RunSettings",
    "default_batch_size",
    "default_dtype",
    "resolve_device",
]

AUTO = "auto"
# Per kind of device ("cuda" for any cuda:N, "cpu" for everything else).
BATCH_SIZE = {"cuda": 8, "cpu": 1}  # videos per model call
MODEL_DTYPE = {"cuda": "float16", "cpu": "float32"}  # what dtype="auto" runs the models in


def _kind(device: str) -> str:
    return "cuda" if str(device).startswith("cuda") else "cpu"


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when torch sees a GPU, else ``cpu``; any other name is kept."""
    if device != AUTO:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_batch_size(device: str) -> int:
    """Videos per model call on ``device`` (a resolved name) when none is asked for."""
    return BATCH_SIZE[_kind(device)]


def default_dtype(device: str) -> str:
    """The model dtype ``auto`` means on ``device`` (a resolved name)."""
    return MODEL_DTYPE[_kind(device)]


@dataclass(frozen=True)
class ExtractOptions:
    """How features are shaped and how one process batches its work (everything but the models)."""

    video_mae_output: str = "tokens"  # tokens [1568, 1024] | temporal [8, 1024]
    clip_output: str = "patches"  # patches [K*257, 1408] | cls [K, 1408]
    keyframes: int = 1
    silence_dbfs: float = -50.0  # audio whose RMS is below this has no speech: ASR is skipped
    batch_size: int | None = None  # None: default_batch_size(device)
    prefetch: int = 2  # videos decoded ahead
    decode_threads: int = 0  # decord's threads per video; 0: its default

    def __post_init__(self) -> None:
        if self.video_mae_output not in ("tokens", "temporal"):
            raise ExtractionError(f"video_mae_output {self.video_mae_output!r}: expected tokens or temporal")
        if self.clip_output not in ("patches", "cls"):
            raise ExtractionError(f"clip_output {self.clip_output!r}: expected patches or cls")
        for name in ("keyframes", "batch_size", "prefetch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ExtractionError(f"{name} {value}: expected at least 1")

    def for_device(self, device: str) -> ExtractOptions:
        """These options with the batch size filled in for ``device`` (a resolved name) when unset."""
        if self.batch_size is not None:
            return self
        return replace(self, batch_size=default_batch_size(device))


@dataclass(frozen=True)
class RunSettings:
    """How a run is spread and shown: one process (``workers=1``), a local dask cluster of ``workers``
    processes, or the existing cluster at ``scheduler``."""

    workers: int = 1
    scheduler: str | None = None  # e.g. tcp://host:8786
    progress: bool = True

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ExtractionError(f"workers {self.workers}: expected at least 1")

    @property
    def distributed(self) -> bool:
        return self.workers > 1 or bool(self.scheduler)
