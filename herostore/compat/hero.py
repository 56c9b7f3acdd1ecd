"""``HERODataset``: the HERO reference loader's constructor and samples, read through herostore.

A drop-in for ``minigpt4/datasets/datasets/hero_dataset.py`` of the HERO repo (``Anachronism-N/Emotion-LLaMA``):
same constructor ``HERODataset(vis_processor, text_processor, vis_root, ann_path, modality_dropout_prob=0.0)``,
same sample for valid data, but ``vis_root`` may be a spec ``features/`` folder of ``.npy`` dicts *or* a
herostore store (the format is detected), and a sample reads the five arrays lazily (the ``.npy`` dicts through
the allow-listed unpickler, never ``allow_pickle=True``).

The sample, as the reference builds it::

    image              zeros(3, 224, 224), a dummy: the features stand in for pixels
    video_features     [5, 64, 1024] float32; rows in the order video_mae (motion), hubert (audio), au,
                       bert (text), clip. Each array: a 3-D array averaged over axis 0; last axis cut or
                       zero-padded to 1024; time axis zero-padded to 64 or, if longer, subsampled at rows
                       torch.linspace(0, T-1, 64).long(). A missing au is zeros. (The reference also gives a 1-D
                       array a leading axis; herostore's readers refuse 1-D arrays, see below.)
    modality_mask      ones(5) float32; with modality_dropout_prob = p > 0 each entry is drawn
                       torch.bernoulli(1 - p) (torch's global RNG), if all five are dropped the first (motion)
                       is kept, and video_features rows are multiplied by the mask (dropped rows become zero).
                       The draw happens for every sample, training or not: use p = 0 for evaluation.
    instruction_input  "<video><VideoHere></video> " + random.choice(the 3 instructions) (Python's global RNG)
    answer             the label's emotion string, e.g. "happy"
    emotion            its index in EMOTIONS ('neutral', 'angry', 'happy', 'sad', 'worried', 'surprise', 'fear',
                       'contempt', 'doubt')
    image_id           the video id

Where the reference substitutes silently, this adapter raises instead:

- an emotion outside EMOTIONS: the reference uses index 0 (neutral); here a ``LabelError`` at construction
  listing the labels, their video ids and the valid emotions;
- a labelled video without features: the reference prints a warning and returns the *next* sample; here a
  ``LabelError`` at construction listing the ids;
- an unreadable or corrupt feature file: the reference returns the next sample; here the reader's error
  (``SpecError``, ``UnsafePickleError``, ...) is raised from ``__getitem__`` naming the file;
- malformed ``labels.json`` (an entry without a string ``video_id``/``emotion``) or a duplicate ``video_id``:
  the reference reads on (duplicates give repeated samples); here a ``LabelError`` at construction;
- a required array missing from a feature file: the reference fills zeros; herostore files cannot lack one
  (they are checked on writing), and a ``.npy`` dict without one raises ``SpecError`` when read;
- a 1-D array (``[D]``, e.g. one pooled vector): the reference treats it as one row (``[1, D]``); herostore's
  readers refuse it, as the spec asks for ``[T, D]``: a ``.npy`` dict holding one raises ``SpecError`` naming the
  file and key when read, and a store cannot hold one (``import-npy`` and ``write_video`` refuse it). Reshape
  such arrays to ``[1, D]`` before converting;
- ``modality_dropout_prob`` outside [0, 1]: the reference fails inside ``torch.bernoulli``; here a
  ``ValueError`` at construction.

``vis_processor`` and ``text_processor`` are kept as attributes and never applied, as in the reference: the
samples hold pre-extracted features and a fixed instruction, with no image or free text to process. The
reference's progress ``print`` calls are left out. Arrays stored as float16 (the float16 preset) are cast to
float32 before the 3-D average; the reference, which reads float32 ``.npy`` files, gives the same values.
"""

from __future__ import annotations

import os
import random
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..dataset import HeroDataset, subsample_index
from ..errors import LabelError
from ..fsutil import short_list
from ..labels import check_labels_against_classes, read_labels

__all__ = ["EMOTIONS", "FEATURE_DIM", "INSTRUCTIONS", "MODALITY_ORDER", "N_FRAMES", "HERODataset"]

EMOTIONS: tuple[str, ...] = ("neutral", "angry", "happy", "sad", "worried", "surprise", "fear", "contempt", "doubt")
MODALITY_ORDER: tuple[str, ...] = ("video_mae", "hubert", "au", "bert", "clip")  # motion, audio, au, text, global
INSTRUCTIONS: tuple[str, ...] = (
    "Please determine which emotion label in the video represents: happy, sad, neutral, angry, worried, surprise.",
    "Identify the displayed emotion in the video.",
    "Analyze the multimodal evidence and predict the emotion.",
)
INSTRUCTION_PREFIX = "<video><VideoHere></video> "
N_FRAMES = 64
FEATURE_DIM = 1024
IMAGE_SHAPE = (3, 224, 224)


class HERODataset(Dataset):
    """The HERO reference dataset over a spec ``features/`` folder or a herostore store (see the module doc)."""

    def __init__(
        self,
        vis_processor: Any,
        text_processor: Any,
        vis_root: str | os.PathLike,
        ann_path: str | os.PathLike,
        modality_dropout_prob: float = 0.0,
    ):
        p = modality_dropout_prob
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"modality_dropout_prob={p!r}: expected a probability in [0, 1]")
        self.vis_processor = vis_processor  # kept, never applied (as in the reference)
        self.text_processor = text_processor
        self.feature_root = vis_root
        self.modality_dropout_prob = float(p)
        self.emotion_instruction_pool = list(INSTRUCTIONS)
        self.emos = list(EMOTIONS)
        self.emo2idx = {emo: i for i, emo in enumerate(self.emos)}

        labels = read_labels(ann_path)
        check_labels_against_classes(labels, self.emos, f"{ann_path} (HERO's fixed emotion list)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # missing features are raised just below, with this adapter's advice
            self._data = HeroDataset(vis_root, ann_path, modalities=MODALITY_ORDER, classes=self.emos,
                                     dtype=torch.float32, skip_missing=True)
        if self._data.skipped:
            ids = self._data.skipped
            raise LabelError(f"{ann_path}: {len(ids)} labelled video id(s) have no features in {vis_root}: "
                             f"{short_list(ids)} "
                             f"(the reference loader would silently return the next sample instead)")
        self.annotation = [label.to_dict() for label in self._data.labels]

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self._data[index]
        video_features = torch.stack([fit(sample[m]) for m in MODALITY_ORDER], dim=0)
        video_features, modality_mask = self.apply_modality_dropout(video_features, torch.ones(len(MODALITY_ORDER)))
        instruction = INSTRUCTION_PREFIX + random.choice(self.emotion_instruction_pool)
        emotion = sample["emotion"]
        return {
            "image": torch.zeros(IMAGE_SHAPE),
            "video_features": video_features,
            "modality_mask": modality_mask,
            "instruction_input": instruction,
            "answer": str(emotion),
            "emotion": self.emo2idx[emotion],
            "image_id": sample["video_id"],
        }

    def apply_modality_dropout(self, video_features: torch.Tensor,
                               modality_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Drop each modality with ``modality_dropout_prob``; never all five (motion is then kept)."""
        if self.modality_dropout_prob <= 0:
            return video_features, modality_mask
        keep = torch.bernoulli(torch.full(modality_mask.shape, 1.0 - self.modality_dropout_prob))
        if keep.sum() == 0:
            keep[0] = 1.0
        return video_features * keep[:, None, None], keep

    def __repr__(self) -> str:
        return f"HERODataset({str(self.feature_root)!r}, {len(self)} samples, format={self._data.format!r})"


def fit(t: torch.Tensor, frames: int = N_FRAMES, dim: int = FEATURE_DIM) -> torch.Tensor:
    """One array in the reference's ``[frames, dim]`` float32 form (see the module doc)."""
    t = t.float()
    if t.ndim == 3:
        t = t.mean(dim=0)
    elif t.ndim == 1:
        t = t.unsqueeze(0)
    t = t[:, :dim]
    t = F.pad(t, (0, dim - t.shape[1]))
    if t.shape[0] < frames:
        t = F.pad(t, (0, 0, 0, frames - t.shape[0]))
    elif t.shape[0] > frames:
        t = t[subsample_index(t.shape[0], frames)]
    return t
