"""Drop-in adapters for code written against other projects' loaders."""

from .hero import HERODataset

__all__ = ["HERODataset"]
