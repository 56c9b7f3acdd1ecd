"""Feature extraction: videos -> HERO features, written into a herostore store or spec `.npy` files.

``run_extraction`` is the library entry point (the ``herostore extract`` command and
``scripts/extract_features.py`` call it). Modules: ``media`` (decord decoding and frame
/ audio sampling), ``models`` (one transformers wrapper per spec key), ``pipeline``
(discovery, resume, prefetch, progress, failures, dask), ``sample_media`` and
``tiny_models`` (synthetic clips and random-weight test models, for tests and demos).
Importing this package does not import torch or transformers.
"""

from .media import AUDIO_RATE, DecodedVideo, decode_video, sample_indices
from .models import DEFAULT_MODELS, ROLES, ModelConfig, ModelLoadError
from .pipeline import (
    Extraction,
    ExtractionReport,
    ExtractOptions,
    VideoItem,
    discover_videos,
    prepare_extraction,
    run_extraction,
)
from .sample_media import write_clip, write_sample_set
from .tiny_models import build_tiny_models, is_random_weight_model

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
    "VideoItem",
    "build_tiny_models",
    "decode_video",
    "discover_videos",
    "is_random_weight_model",
    "prepare_extraction",
    "run_extraction",
    "sample_indices",
    "write_clip",
    "write_sample_set",
]
