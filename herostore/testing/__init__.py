"""Synthetic material for the tests, the demo and the benchmarks; the library proper never imports it.

- ``features``: spec-shaped random feature dicts and small spec datasets of ``.npy`` files;
- ``media``: generated video clips with sound (and the bad files an extractor must refuse);
- ``tiny_models``: RANDOM-WEIGHT stand-ins for the extraction models, built offline.
"""

from .features import SAMPLE_EMOTIONS, make_npy_dataset, sample_features
from .media import write_clip, write_sample_set
from .tiny_models import TINY_AU_ID, build_tiny_models

__all__ = ["SAMPLE_EMOTIONS", "TINY_AU_ID", "build_tiny_models", "make_npy_dataset", "sample_features",
           "write_clip", "write_sample_set"]
