"""One error hierarchy for herostore.

Every class also inherits the builtin it refines, so callers that catch
``ValueError`` or ``KeyError`` keep working. Messages name the file or video id,
the key, and what was expected.
"""

from __future__ import annotations


class HerostoreError(Exception):
    """Base class of every error herostore raises on purpose."""


class SpecError(HerostoreError, ValueError):
    """Features that do not follow the HERO spec (keys, dims, shapes, dtypes)."""


class UnsafePickleError(HerostoreError, ValueError):
    """A pickled `.npy` file asks for a global outside the allow-list."""


class InvalidVideoIdError(HerostoreError, ValueError):
    """A video id that is empty or would escape the store."""


class VideoNotFoundError(HerostoreError, KeyError, FileNotFoundError):
    """A video id with no features in the store or folder."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StoreError(HerostoreError, ValueError):
    """A path that is not a herostore store, or a store this version cannot read."""


class CorruptStoreError(StoreError):
    """A damaged store: a missing, truncated or undecodable chunk, metadata that disagree or break the format."""


class ChecksumError(CorruptStoreError):
    """A chunk whose bytes do not match the checksum stored with them."""


class LabelError(HerostoreError, ValueError):
    """Malformed `labels.json` / `classes.json`, unknown labels, duplicate ids."""


class LabelFileExistsError(LabelError):
    """An existing `labels.json` / `classes.json` that differs from the one to be written."""


class ExtractionError(HerostoreError, RuntimeError):
    """A video that could not be decoded or run through the models."""


class ModelLoadError(ExtractionError):
    """A model that could not be found or loaded: it stops the whole run, unlike a per-video failure."""


class ClusterError(HerostoreError, RuntimeError):
    """A dask cluster that cannot run the work: unreachable, without workers, or workers that cannot see the data."""


class ArgumentError(HerostoreError, ValueError):
    """An argument outside the values a function accepts (the message lists the valid ones)."""
