"""Feature extraction: videos -> HERO features, written into a herostore store or spec `.npy` files.

``run_extraction`` (or ``prepare_extraction(...).run()``) is the library entry point; the
``herostore extract`` command and ``scripts/extract_features.py`` build its option objects
from their flags. Modules, one concept each:

- ``options``: ``ExtractOptions`` (feature shapes, batching), ``RunSettings`` (workers,
  scheduler, progress) and the per-device defaults (``auto`` device, batch size, dtype);
- ``models``: ``ModelConfig`` and one transformers wrapper per spec key;
- ``media``: decord decoding and frame / audio sampling;
- ``discovery``: which videos a run extracts (``discover_videos``, ``VideoItem``);
- ``output``: ``OutputSpec`` and the opened store or ``.npy`` folder (resume, atomic writes);
- ``runner``: extraction in one process (decode-ahead thread, batches, per-video failures,
  the per-process model cache ``get_models``) and ``extract_task``, the bulk engine's task;
- ``placement``: the device a task uses on its worker, and which workers take extraction tasks (GPUs);
- ``report``: ``ExtractionReport`` and the run summary;
- ``extraction``: a run start to end (``Extraction``, ``prepare_extraction``, ``run_extraction``) through the
  bulk engine (``herostore.bulk``: local or on a dask cluster, one progress display).

Synthetic clips and random-weight test models live in ``herostore.testing``.
Importing this package does not import torch or transformers.
"""

from .discovery import VideoItem, discover_videos
from .extraction import Extraction, prepare_extraction, run_extraction
from .media import AUDIO_RATE, DecodedVideo, decode_video, sample_indices
from .models import DEFAULT_MODELS, ROLES, ModelConfig, ModelLoadError, is_random_weight_model
from .options import ExtractOptions, RunSettings
from .output import OutputSpec
from .report import ExtractionReport

__all__ = [
    "AUDIO_RATE",
    "DEFAULT_MODELS",
    "ROLES",
    "DecodedVideo",
    "ExtractOptions",
    "Extraction",
    "ExtractionReport",
    "ModelConfig",
    "ModelLoadError",
    "OutputSpec",
    "RunSettings",
    "VideoItem",
    "decode_video",
    "discover_videos",
    "is_random_weight_model",
    "prepare_extraction",
    "run_extraction",
    "sample_indices",
]
