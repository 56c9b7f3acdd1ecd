"""The extraction encoders: one small wrapper per spec key, loaded with transformers, and ``Models``, the set of them.

Each wrapper loads from a hub id or a local folder through the same ``from_pretrained`` path, runs in inference
mode on the chosen device and dtype, checks that its hidden size is the spec's dim for its key, and returns float32
numpy arrays of the spec's shape ``[T, D]`` (see ``models`` for which model each key uses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError
from ..schema import MODALITY_BY_NAME
from .loading import (
    fast_videomae_init,
    has_preprocessor,
    image_processor_class,
    load_error,
    load_pretrained,
    quiet_transformers,
)
from .media import AUDIO_RATE
from .models import (
    ASR_WINDOW_S,
    CLIP_MEAN,
    CLIP_STD,
    HUBERT_WINDOW_S,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ModelConfig,
    is_random_weight_model,
    resolve_model,
    torch_dtype,
)

__all__ = ["AUEncoder", "ClipEncoder", "HubertEncoder", "Models", "TextEncoder", "Transcriber", "VideoMAEEncoder"]


class _Wrapper:
    role = ""

    def __init__(self, config: ModelConfig):
        import torch

        self.ref = config.model_ref(self.role)
        if self.ref is None:
            raise ModelLoadError(f"no model given for {self.role}")
        self.path = resolve_model(self.ref, config.model_dir, self.role)
        self.random_weights = is_random_weight_model(self.path) if Path(self.path).is_dir() else False
        self.device = torch.device(config.resolved().device)
        self.dtype = torch_dtype(config)

    def _to_numpy(self, tensor: Any) -> np.ndarray:
        return np.ascontiguousarray(tensor.float().cpu().numpy())

    def _check_hidden_size(self) -> None:
        """Refuse a model whose features would not have the spec's width for this key."""
        expected = MODALITY_BY_NAME[self.role].dim
        found = getattr(self.model.config, "hidden_size", None)
        if found == expected:
            return
        where = repr(self.ref) if self.ref == self.path else f"{self.ref!r} ({self.path})"
        found_text = found if found is not None else "unknown (its config has no hidden_size)"
        raise ModelLoadError(f"{self.role} model {where}: hidden size {found_text}, expected {expected} "
                             f"(the spec's {self.role!r} features are [T, {expected}]); pass a model of that size")


class VideoMAEEncoder(_Wrapper):
    """VideoMAE-large over 16 frames: all 1568 tokens, or the mean over space per temporal slice."""

    role = "video_mae"

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        from transformers import VideoMAEModel

        with fast_videomae_init():
            self.model = load_pretrained(VideoMAEModel, self.path, self.role, self.ref, dtype=self.dtype)
        self._check_hidden_size()
        self.model = self.model.to(self.device).eval()
        processor = image_processor_class("VideoMAEImageProcessor")
        with quiet_transformers():
            self.processor = (processor.from_pretrained(self.path) if has_preprocessor(self.path)
                              else processor(image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD))
        cfg = self.model.config
        self.num_frames = int(cfg.num_frames)
        self.slices = self.num_frames // int(cfg.tubelet_size)

    def __call__(self, clips: Sequence[np.ndarray], *, pooled: bool = False) -> list[np.ndarray]:
        """``clips``: [num_frames, H, W, 3] uint8 each; ``pooled`` averages over space per temporal slice."""
        import torch

        with quiet_transformers():
            pixels = self.processor([list(clip) for clip in clips], return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            tokens = self.model(pixel_values=pixels.to(self.device, self.dtype)).last_hidden_state
        if pooled:  # [B, slices * h * w, D] -> [B, slices, D]
            tokens = tokens.reshape(tokens.shape[0], self.slices, -1, tokens.shape[-1]).mean(dim=2)
        return [self._to_numpy(t) for t in tokens]


class ClipEncoder(_Wrapper):
    """The EVA ViT-g/14 vision tower of BLIP-2 / MiniGPT-4 (``Blip2VisionModel``) on keyframes.

    Loads a standalone ``Blip2VisionModel`` folder or a whole Blip-2 checkpoint
    (``Salesforce/blip2-opt-2.7b``): ``key_mapping`` strips the ``vision_model.`` prefix
    so only the tower's weights are read and the Q-Former / language model are skipped.
    The output is ``last_hidden_state`` (post-layernorm), what BLIP-2's Q-Former consumes.
    """

    role = "clip"

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        from transformers import Blip2VisionModel

        self.model = load_pretrained(Blip2VisionModel, self.path, self.role, self.ref, dtype=self.dtype,
                           key_mapping={r"^vision_model\.": ""})
        self._check_hidden_size()
        self.model = self.model.to(self.device).eval()
        size = int(self.model.config.image_size)
        processor = image_processor_class("BlipImageProcessor")
        with quiet_transformers():
            self.processor = (processor.from_pretrained(self.path) if has_preprocessor(self.path)
                              else processor(size={"height": size, "width": size}, image_mean=CLIP_MEAN,
                                             image_std=CLIP_STD))

    def __call__(self, keyframe_sets: Sequence[np.ndarray], *, cls_only: bool = False) -> list[np.ndarray]:
        """Per video: its keyframes' patch tokens concatenated [K*257, 1408], or their CLS tokens [K, 1408]."""
        import torch

        images = [frame for frames in keyframe_sets for frame in frames]
        with quiet_transformers():
            pixels = self.processor(images, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            hidden = self.model(pixel_values=pixels.to(self.device, self.dtype)).last_hidden_state
        out, start = [], 0
        for frames in keyframe_sets:
            per_video = hidden[start : start + len(frames)]
            start += len(frames)
            per_video = per_video[:, 0] if cls_only else per_video.reshape(-1, per_video.shape[-1])
            out.append(self._to_numpy(per_video))
        return out


class HubertEncoder(_Wrapper):
    """HuBERT-large last hidden states of 16 kHz mono audio, 20 ms per frame."""

    role = "hubert"

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        from transformers import HubertModel, Wav2Vec2FeatureExtractor

        self.model = load_pretrained(HubertModel, self.path, self.role, self.ref, dtype=self.dtype)
        self._check_hidden_size()
        self.model = self.model.to(self.device).eval()
        normalize = getattr(self.model.config, "feat_extract_norm", "group") == "layer"
        with quiet_transformers():
            self.processor = (Wav2Vec2FeatureExtractor.from_pretrained(self.path) if has_preprocessor(self.path)
                              else Wav2Vec2FeatureExtractor(sampling_rate=AUDIO_RATE, do_normalize=normalize))
        cfg = self.model.config
        self.hop = int(np.prod(cfg.conv_stride))  # 320 samples
        self.receptive = 1 + sum((k - 1) * int(np.prod(cfg.conv_stride[:i]))
                                 for i, k in enumerate(cfg.conv_kernel))  # 400 samples

    def frames_for(self, samples: int) -> int:
        return (max(samples, self.receptive) - self.receptive) // self.hop + 1

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        import torch

        if len(audio) < self.receptive:  # shorter than one 25 ms frame: pad to exactly one frame
            audio = np.pad(audio, (0, self.receptive - len(audio)))
        step = self.hop * int(HUBERT_WINDOW_S * AUDIO_RATE // self.hop)
        overlap = self.receptive - self.hop
        parts = []
        for start in range(0, max(1, len(audio) - overlap), step):
            window = audio[start : start + step + overlap]
            if len(window) < self.receptive:
                break
            values = self.processor(window, sampling_rate=AUDIO_RATE, return_tensors="pt")["input_values"]
            with torch.inference_mode():
                parts.append(self.model(values.to(self.device, self.dtype)).last_hidden_state[0])
        return self._to_numpy(torch.cat(parts))


class Transcriber(_Wrapper):
    """ASR through ``pipeline("automatic-speech-recognition")``; Whisper gets the run's language."""

    role = "asr"

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        from transformers import pipeline

        try:
            with quiet_transformers():
                self.pipe = pipeline("automatic-speech-recognition", model=self.path, device=self.device,
                                     dtype=self.dtype)
        except Exception as exc:  # noqa: BLE001 - see _load
            raise load_error(self.role, self.ref, self.path, exc) from None
        self.generate_kwargs: dict[str, Any] = {}
        if self.pipe.model.config.model_type == "whisper":
            self.generate_kwargs["task"] = "transcribe"
            if config.whisper_language():
                self.generate_kwargs["language"] = config.whisper_language()

    def __call__(self, audios: Sequence[np.ndarray]) -> list[str]:
        """One transcript per clip; clips up to 30 s are batched, longer ones go through 30 s chunks."""
        texts: list[str] = [""] * len(audios)
        short = [i for i, a in enumerate(audios) if len(a) <= ASR_WINDOW_S * AUDIO_RATE]
        groups = [(short, {})] + [([i], {"chunk_length_s": ASR_WINDOW_S, "ignore_warning": True})
                                  for i in range(len(audios)) if i not in set(short)]
        for indexes, extra in groups:
            if not indexes:
                continue
            # The pipeline consumes its input dicts, so they are made fresh for every call.
            inputs = [{"raw": audios[i], "sampling_rate": AUDIO_RATE} for i in indexes]
            with quiet_transformers():
                outputs = self.pipe(inputs, batch_size=len(inputs), generate_kwargs=dict(self.generate_kwargs),
                                    **extra)
            for i, out in zip(indexes, outputs):
                texts[i] = str(out["text"]).strip()
        return texts


class TextEncoder(_Wrapper):
    """BERT-base token states (``[CLS] ... [SEP]``), truncated to the model's 512 positions."""

    role = "bert"

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        from transformers import AutoConfig, AutoModel, AutoTokenizer, BertModel

        try:
            with quiet_transformers():
                model_type = AutoConfig.from_pretrained(self.path).model_type
                self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        except Exception as exc:  # noqa: BLE001 - see _load
            raise load_error(self.role, self.ref, self.path, exc, "its config/tokenizer ") from None
        cls = BertModel if model_type == "bert" else AutoModel
        self.model = load_pretrained(cls, self.path, self.role, self.ref, dtype=self.dtype)
        self._check_hidden_size()
        self.model = self.model.to(self.device).eval()
        self.max_length = min(512, int(getattr(self.model.config, "max_position_embeddings", 512)))

    def __call__(self, texts: Sequence[str]) -> list[np.ndarray]:
        import torch

        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        with torch.inference_mode():
            hidden = self.model(**{k: v.to(self.device) for k, v in batch.items()}).last_hidden_state
        return [self._to_numpy(h[:n]) for h, n in zip(hidden, lengths)]


class AUEncoder(_Wrapper):
    """Optional ``au``: any transformers image encoder, one embedding (CLS) per VideoMAE frame.

    There is no transformers facial action-unit model with a 1024-d output to default to;
    pass a face/AU encoder with ``--au-model``. Without one, ``au`` is absent and loaders
    zero-fill it as the spec says.
    """

    role = "au"

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        from transformers import AutoImageProcessor, AutoModel

        self.model = load_pretrained(AutoModel, self.path, self.role, self.ref, dtype=self.dtype)
        self._check_hidden_size()
        self.model = self.model.to(self.device).eval()
        size = int(getattr(self.model.config, "image_size", 224))
        fallback = image_processor_class("BlipImageProcessor")
        with quiet_transformers():
            self.processor = (AutoImageProcessor.from_pretrained(self.path) if has_preprocessor(self.path)
                              else fallback(size={"height": size, "width": size},
                                            image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD))

    def __call__(self, clips: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch

        images = [frame for clip in clips for frame in clip]
        with quiet_transformers():
            pixels = self.processor(images, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            hidden = self.model(pixel_values=pixels.to(self.device, self.dtype)).last_hidden_state[:, 0]
        out, start = [], 0
        for clip in clips:
            out.append(self._to_numpy(hidden[start : start + len(clip)]))
            start += len(clip)
        return out


@dataclass
class Models:
    """All models of one ``ModelConfig``, loaded once per process."""

    config: ModelConfig
    video_mae: VideoMAEEncoder
    clip: ClipEncoder
    hubert: HubertEncoder
    asr: Transcriber
    bert: TextEncoder
    au: AUEncoder | None = None
    refs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, config: ModelConfig) -> Models:
        """Load every model ``config`` names, on its resolved device and dtype."""
        config = config.resolved()
        wrappers = {"video_mae": VideoMAEEncoder, "clip": ClipEncoder, "hubert": HubertEncoder,
                    "asr": Transcriber, "bert": TextEncoder}
        loaded = {role: wrapper(config) for role, wrapper in wrappers.items()}
        if config.au is not None:
            loaded["au"] = AUEncoder(config)
        refs = {role: w.ref for role, w in loaded.items()}
        return cls(config, refs=refs, **loaded)

    @property
    def random_weights(self) -> bool:
        return any(w.random_weights for w in self.wrappers())

    def wrappers(self) -> list[_Wrapper]:
        return [w for w in (self.video_mae, self.clip, self.hubert, self.asr, self.bert, self.au) if w is not None]
