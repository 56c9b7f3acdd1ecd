"""herostore: chunked, compressed Zarr storage for HERO multimodal emotion features.

One Zarr v3 group per dataset, one group per video, one array per modality; the
spec's dict ``.npy`` files both ways; a lazy PyTorch dataset over either format.
"""

__version__ = "0.1.0"

from .errors import (
    ExtractionError,
    HerostoreError,
    InvalidVideoIdError,
    LabelError,
    SpecError,
    StoreError,
    UnsafePickleError,
    VideoNotFoundError,
)
from .presets import DEFAULT_PRESET, PRESETS, Preset, get_preset
from .schema import MODALITIES, check_features
from .store import FeatureStore

__all__ = [
    "DEFAULT_PRESET",
    "MODALITIES",
    "PRESETS",
    "ExtractionError",
    "FeatureStore",
    "HerostoreError",
    "InvalidVideoIdError",
    "LabelError",
    "Preset",
    "SpecError",
    "StoreError",
    "UnsafePickleError",
    "VideoNotFoundError",
    "check_features",
    "get_preset",
]
