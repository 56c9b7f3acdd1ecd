"""Which extraction models run and how: the defaults per spec key, ``ModelConfig``, and where a model is found.

The encoders themselves are in ``encoders``; each loads from a hub id or a local folder through the same
``from_pretrained`` path and returns float32 numpy arrays of the spec's shape ``[T, D]``:

==========  =====================================  ==========================================
key         default model (``--language en``)      output
==========  =====================================  ==========================================
video_mae   MCG-NJU/videomae-large                 [1568, 1024] tokens, or [8, 1024] (temporal)
clip        Salesforce/blip2-opt-2.7b (vision)     [K*257, 1408] patches of K keyframes, or [K, 1408] CLS
hubert      facebook/hubert-large-ll60k            [(N-400)//320+1, 1024]
transcript  openai/whisper-large-v3-turbo (ASR)    str
bert        google-bert/bert-base-uncased          [tokens, 768]
au          none (``--au-model``)                  [frames, 1024]
==========  =====================================  ==========================================

``--language zh`` swaps HuBERT for TencentGameMate/chinese-hubert-large and BERT for
google-bert/bert-base-chinese, and asks Whisper for Chinese. Every encoder's hidden size
is checked against the spec's dim for its key when it loads (``ModelLoadError`` if not).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import ExtractionError, ModelLoadError
from .loading import load_error, quiet_transformers
from .options import AUTO, default_dtype, resolve_device

__all__ = [
    "DEFAULT_MODELS",
    "ROLES",
    "ModelConfig",
    "ModelLoadError",
    "is_random_weight_model",
    "resolve_model",
    "torch_dtype",
    "video_mae_num_frames",
]

ROLES: tuple[str, ...] = ("video_mae", "clip", "hubert", "asr", "bert", "au")
_VIDEO_MODELS = {
    "video_mae": "MCG-NJU/videomae-large",
    "clip": "Salesforce/blip2-opt-2.7b",
    "asr": "openai/whisper-large-v3-turbo",
}
DEFAULT_MODELS: dict[str, dict[str, str]] = {
    "en": {**_VIDEO_MODELS, "hubert": "facebook/hubert-large-ll60k", "bert": "google-bert/bert-base-uncased"},
    "zh": {**_VIDEO_MODELS, "hubert": "TencentGameMate/chinese-hubert-large", "bert": "google-bert/bert-base-chinese"},
}
# Documented fallbacks when a model folder carries no preprocessor config of its own.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
HUBERT_WINDOW_S = 30.0  # longer audio runs in windows that tile the 20 ms frames exactly
ASR_WINDOW_S = 30  # Whisper hears 30 s at a time; longer audio is chunked by the pipeline
# A model folder holding this file was built with random weights (``herostore.testing.tiny_models``): features
# made with it are meaningless, and everything written from them says so.
RANDOM_WEIGHTS_MARKER = "RANDOM_WEIGHTS"


@dataclass(frozen=True)
class ModelConfig:
    """Which models run and how; hashable, so each process caches its loaded models by it."""

    language: str = "en"
    model_dir: str | None = None
    video_mae: str | None = None  # id or folder; None: the language default
    clip: str | None = None
    hubert: str | None = None
    asr: str | None = None
    bert: str | None = None
    au: str | None = None  # no default: `au` is absent unless a model is given
    device: str = AUTO  # auto: cuda if torch sees a GPU, else cpu (options.resolve_device)
    dtype: str = AUTO  # auto: options.MODEL_DTYPE for the device
    asr_language: str | None = None  # None: the run's language; "auto": let Whisper detect it

    def __post_init__(self) -> None:
        choices = {"language": tuple(DEFAULT_MODELS), "dtype": (AUTO, "float32", "float16", "bfloat16")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ExtractionError(f"{name} {getattr(self, name)!r}: expected one of {', '.join(allowed)}")
        for name in ("model_dir", *ROLES):  # paths are kept as strings: the config is a hashable, JSON-able key
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                object.__setattr__(self, name, os.fspath(value))

    def resolved(self) -> ModelConfig:
        """This config with ``auto`` device and dtype replaced by what they mean on this machine."""
        device = resolve_device(self.device)
        dtype = default_dtype(device) if self.dtype == AUTO else self.dtype
        if (device, dtype) == (self.device, self.dtype):
            return self
        return replace(self, device=device, dtype=dtype)

    def absolute(self) -> ModelConfig:
        """This config with ``model_dir`` and local model folders made absolute, for processes started elsewhere."""
        changed = {}
        if self.model_dir is not None:
            changed["model_dir"] = os.path.abspath(os.path.expanduser(self.model_dir))
        for role in ROLES:
            ref = getattr(self, role)
            if ref is not None and Path(ref).expanduser().exists():
                changed[role] = os.path.abspath(os.path.expanduser(ref))
        return replace(self, **changed)

    def model_ref(self, role: str) -> str | None:
        """The id or path the config names for ``role`` (the language default when unset)."""
        given = getattr(self, role)
        return given if given is not None else DEFAULT_MODELS[self.language].get(role)

    def whisper_language(self) -> str | None:
        language = self.asr_language or self.language
        return None if language == "auto" else language

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_random_weight_model(path: str | os.PathLike) -> bool:
    """Whether a local model folder is marked as a random-weight test model."""
    return (Path(path) / RANDOM_WEIGHTS_MARKER).is_file()


def resolve_model(ref: str, model_dir: str | None, role: str) -> str:
    """A local folder for ``ref`` if there is one, else the hub id itself.

    ``ref`` may be a folder; with ``model_dir`` the id ``org/name`` is looked up as
    ``model_dir/org/name`` (the layout ``hf download org/name --local-dir model_dir/org/name`` makes),
    and a missing folder is an error rather than a silent download attempt.
    """
    path = Path(ref).expanduser()
    if path.is_dir():
        return str(path)
    if model_dir is not None:
        candidate = Path(model_dir).expanduser() / ref
        if candidate.is_dir():
            return str(candidate)
        raise ModelLoadError(
            f"{role} model {ref!r}: no folder {candidate} under --model-dir; download it with "
            f"`hf download {ref} --local-dir {candidate}` or pass --{role.replace('_', '-')}-model PATH"
        )
    return ref


def video_mae_num_frames(config: ModelConfig) -> int:
    """Frames the VideoMAE model takes (16 for VideoMAE-large), read from its config without loading weights."""
    ref = config.model_ref("video_mae") or ""
    path = resolve_model(ref, config.model_dir, "video_mae")
    local = Path(path) / "config.json"
    try:
        if local.is_file():
            return int(json.loads(local.read_text("utf-8")).get("num_frames", 16))
        from transformers import AutoConfig

        with quiet_transformers():
            return int(AutoConfig.from_pretrained(path).num_frames)
    except Exception as exc:  # noqa: BLE001
        raise load_error("video_mae", ref, path, exc, "its config ") from None


def torch_dtype(config: ModelConfig) -> Any:
    """The torch dtype the models of ``config`` run in."""
    import torch

    return getattr(torch, config.resolved().dtype)
