"""Feature extraction: videos -> HERO features, written into a herostore store or spec `.npy` files.

``run_extraction`` is the library entry point (the ``herostore extract`` command and
``scripts/extract_features.py`` call it). Modules: ``media`` (decord decoding and frame
/ audio sampling), ``models`` (one transformers wrapper per spec key), ``pipeline``
(discovery, resume, prefetch, progress, failures, dask). Synthetic clips and random-weight
test models live in ``herostore.testing``.
Importing this package does not import torch or transformers.
"""

from .media import AUDIO_RATE, DecodedVideo, decode_video, sample_indices
from .models import DEFAULT_MODELS, ROLES, ModelConfig, ModelLoadError, is_random_weight_model
from .pipeline import (
    Extraction,
    ExtractionReport,
    ExtractOptions,
    VideoItem,
    discover_videos,
    prepare_extraction,
    run_extraction,
)

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
    "decode_video",
    "discover_videos",
    "is_random_weight_model",
    "prepare_extraction",
    "run_extraction",
    "sample_indices",
]
