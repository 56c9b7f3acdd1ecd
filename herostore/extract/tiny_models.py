"""Tiny RANDOM-WEIGHT stand-ins for the extraction models, built offline.

These are **test models**: their weights are random and their features mean nothing.
They have the spec's hidden sizes (VideoMAE 1024, Blip-2 vision 1408, HuBERT 1024,
BERT 768) with one layer, few heads and small intermediate sizes, so the whole
extraction pipeline (loading through ``from_pretrained``, the ASR pipeline,
preprocessing, shapes, writing) runs in seconds on a CPU with no network.

``build_tiny_models(root)`` lays them out as ``--model-dir`` expects, one folder per
model id (``root/MCG-NJU/videomae-large``, ...), each with a ``README.md`` and a
``RANDOM_WEIGHTS`` marker file. Loading a folder with that marker makes the extractor
warn and record ``"random_weight_test_models": true`` in what it writes.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

__all__ = ["MARKER", "TINY_AU_ID", "build_tiny_models", "is_random_weight_model"]

MARKER = "RANDOM_WEIGHTS"
_VERSION = 1
_DONE = ".herostore-tiny-models.json"
TINY_AU_ID = "herostore-tiny/au-vit"  # no real default exists for `au`; only built on request

_README = """# RANDOM-WEIGHT TEST MODEL - NOT {model_id}

Built offline by `herostore.extract.tiny_models` for tests, the demo and the CPU benchmark.
Same architecture family and hidden size as the real `{model_id}` ({what}), but 1 layer, random
weights: every feature it produces is meaningless. Never use these features for training.
"""

_WHISPER_SPECIALS = (
    "<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|zh|>", "<|translate|>", "<|transcribe|>",
    "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>",
)
# A small WordPiece vocabulary: specials, ASCII, a few English words and common Chinese characters.
_BERT_WORDS = [
    "i", "am", "so", "happy", "today", "feel", "terrible", "the", "a", "is", "it", "you", "what", "this", "that",
    "not", "no", "yes", "good", "bad", "very", "sad", "angry", "##s", "##ed", "##ing", "##ly", "hello", "world",
    "speech", "video",
]
_BERT_CHINESE = "我你他她们今天很高兴难过生气害怕惊讶的了是不好在有这那个说话视频声音情绪中文"


def is_random_weight_model(path: str | os.PathLike) -> bool:
    """Whether a local model folder was made here as a random-weight test model."""
    return (Path(path) / MARKER).is_file()


def build_tiny_models(root: str | os.PathLike, *, languages: tuple[str, ...] = ("en", "zh"),
                      au: bool = False, seed: int = 0) -> Path:
    """Build the random-weight test models under ``root`` (idempotent); returns ``root``.

    ``languages`` picks which language-specific defaults (HuBERT, BERT) get a folder;
    ``au`` adds a tiny 1024-d ViT under ``TINY_AU_ID`` for ``--au-model``.
    """
    import torch

    from .models import _quiet_transformers

    root = Path(root)
    wanted = {"version": _VERSION, "languages": sorted(languages), "au": au, "seed": seed}
    done = root / _DONE
    if done.is_file():
        try:
            if json.loads(done.read_text()) == wanted:
                return root
        except ValueError:
            pass
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text(
        "# Random-weight test models (herostore)\n\nEvery folder here holds a 1-layer model with random weights and"
        " the spec's hidden size, named after the real checkpoint it stands in for. Features made with them are"
        " meaningless; they exist so tests, the demo and the benchmark run offline.\n"
    )
    torch.manual_seed(seed)
    with _quiet_transformers():
        _build_all(root, languages, au)
    done.write_text(json.dumps(wanted))
    return root


def _build_all(root: Path, languages: tuple[str, ...], au: bool) -> None:
    from .models import DEFAULT_MODELS

    builders = {"video_mae": _video_mae, "clip": _blip2, "hubert": _hubert, "asr": _whisper, "bert": _bert}
    made: dict[str, str] = {}  # role -> first model id built for it
    for language in languages:
        for role, build in builders.items():
            model_id = DEFAULT_MODELS[language][role]
            if model_id in made.values():
                continue
            if role in made:  # same architecture for another language: share the weights (hard links)
                source = root / made[role]
                _build_into(root / model_id, model_id, lambda out, s=source: _link_copy(s, out))
            else:
                _build_into(root / model_id, model_id, build)
                made[role] = model_id
    if au:
        _build_into(root / TINY_AU_ID, TINY_AU_ID, _au_vit)


def _build_into(target: Path, model_id: str, build) -> None:
    """Build into a scratch folder and rename it into place, so a killed build leaves nothing half-made."""
    scratch = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    scratch.mkdir(parents=True)
    try:
        what = build(scratch)
        (scratch / MARKER).write_text("random weights: test model, not a real checkpoint\n")
        (scratch / "README.md").write_text(_README.format(model_id=model_id, what=what))
        if target.exists():
            shutil.rmtree(target)
        os.rename(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _link_copy(source: Path, out: Path) -> str:
    for item in source.iterdir():
        if item.name in (MARKER, "README.md"):
            continue
        try:
            os.link(item, out / item.name)
        except OSError:
            shutil.copy2(item, out / item.name)
    return f"same random weights as {source.name}"


def _video_mae(out: Path) -> str:
    from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEImageProcessor
    from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    from .models import fast_videomae_init

    # Saved as VideoMAEForPreTraining like MCG-NJU/videomae-large, so loading VideoMAEModel strips the prefix.
    config = VideoMAEConfig(
        image_size=224, patch_size=16, num_frames=16, tubelet_size=2, hidden_size=1024, num_hidden_layers=1,
        num_attention_heads=4, intermediate_size=256, use_mean_pooling=False, decoder_num_attention_heads=2,
        decoder_hidden_size=64, decoder_num_hidden_layers=1, decoder_intermediate_size=64,
    )
    with fast_videomae_init():
        model = VideoMAEForPreTraining(config)
    model.save_pretrained(out)
    VideoMAEImageProcessor(image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD).save_pretrained(out)
    return "VideoMAE, hidden 1024, 16 frames, tubelet 2, patch 16"


def _blip2(out: Path) -> str:
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2QFormerConfig,
        Blip2VisionConfig,
        OPTConfig,
    )

    # A whole Blip-2 checkpoint like Salesforce/blip2-opt-2.7b (tiny Q-Former and OPT), so the extractor's
    # path that pulls the vision tower out of a full checkpoint is what gets tested. No preprocessor config:
    # the extractor's documented defaults (224 px, CLIP mean/std) are used.
    vision = Blip2VisionConfig(hidden_size=1408, num_hidden_layers=1, num_attention_heads=8, intermediate_size=256,
                               image_size=224, patch_size=14)
    qformer = Blip2QFormerConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                 encoder_hidden_size=1408)
    text = OPTConfig(hidden_size=32, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2, vocab_size=64,
                     word_embed_proj_dim=32, max_position_embeddings=64)
    config = Blip2Config(vision_config=vision.to_dict(), qformer_config=qformer.to_dict(),
                         text_config=text.to_dict(), num_query_tokens=4)
    Blip2ForConditionalGeneration(config).save_pretrained(out)
    return "Blip-2 with the EVA ViT-g/14 vision tower shape: hidden 1408, patch 14, 224 px"


def _hubert(out: Path) -> str:
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    # Real strides and kernels keep the frame count exact: (N - 400) // 320 + 1 at 16 kHz.
    config = HubertConfig(
        hidden_size=1024, num_hidden_layers=1, num_attention_heads=4, intermediate_size=256,
        conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=16,
        feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
    )
    HubertModel(config).save_pretrained(out)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(out)
    return "HuBERT, hidden 1024, 20 ms frames at 16 kHz"


def _whisper(out: Path) -> str:
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    vocab = {ch: i for i, ch in enumerate(sorted(ByteLevel.alphabet()))}
    for token in _WHISPER_SPECIALS:
        vocab[token] = len(vocab)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = WhisperTokenizer(vocab=str(out / "vocab.json"), merges=str(out / "merges.txt"),
                                 pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": list(_WHISPER_SPECIALS[1:])})
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(), tokenizer=tokenizer).save_pretrained(out)
    ids = {t: vocab[t] for t in _WHISPER_SPECIALS}
    eot = ids["<|endoftext|>"]
    config = WhisperConfig(
        vocab_size=len(vocab), d_model=64, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=80,
        max_target_positions=64, decoder_start_token_id=ids["<|startoftranscript|>"], bos_token_id=eot,
        eos_token_id=eot, pad_token_id=eot, begin_suppress_tokens=None, suppress_tokens=None,
    )
    model = WhisperForConditionalGeneration(config)
    # Like a real multilingual Whisper generation config, so `language=` works; short max_length keeps it fast.
    generation = GenerationConfig(
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, decoder_start_token_id=ids["<|startoftranscript|>"],
        max_length=12, is_multilingual=True, no_timestamps_token_id=ids["<|notimestamps|>"],
        lang_to_id={"<|en|>": ids["<|en|>"], "<|zh|>": ids["<|zh|>"]},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
    )
    model.generation_config = generation
    model.save_pretrained(out)
    return "Whisper (d_model 64) with a byte-level tokenizer and processor"


def _bert(out: Path) -> str:
    from transformers import BertConfig, BertModel, BertTokenizer

    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    tokens += [w for w in _BERT_WORDS if w not in tokens] + list(dict.fromkeys(_BERT_CHINESE))
    (out / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True,
                              tokenize_chinese_chars=True)
    tokenizer.save_pretrained(out)
    config = BertConfig(vocab_size=len(tokens), hidden_size=768, num_hidden_layers=1, num_attention_heads=4,
                        intermediate_size=256, max_position_embeddings=512)
    BertModel(config).save_pretrained(out)
    return "BERT, hidden 768, WordPiece vocab with Chinese characters"


def _au_vit(out: Path) -> str:
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(hidden_size=1024, num_hidden_layers=1, num_attention_heads=4, intermediate_size=256,
                       image_size=112, patch_size=16)
    ViTModel(config).save_pretrained(out)
    return "ViT image encoder, hidden 1024, 112 px (a stand-in for a face/AU encoder)"
