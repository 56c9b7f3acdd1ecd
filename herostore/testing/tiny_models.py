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

``build_tiny_models(root, full_size=True)`` builds the same folders with the REAL
architectures' sizes instead (VideoMAE-large, the Blip-2 EVA ViT-g/14 tower, HuBERT-large,
whisper-large-v3-turbo, BERT-base), still with random weights: for measuring where the
time goes at real size (``benchmarks/extract_bench.py --full-size``) without the hub.
They take about 5 GB on disk (saved in float16) and minutes to build; tests never build them.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from ..extract.models import RANDOM_WEIGHTS_MARKER as MARKER

__all__ = ["TINY_AU_ID", "build_tiny_models", "model_configs"]

_VERSION = 1
# Random weights never say end-of-text: generation runs to the cap. 40 tokens is about a 10 s utterance.
FULL_SIZE_ASR_MAX_TOKENS = 40
_DONE = ".herostore-tiny-models.json"
TINY_AU_ID = "herostore-tiny/au-vit"  # no real default exists for `au`; only built on request

_README = """# RANDOM-WEIGHT TEST MODEL - NOT {model_id}

Built offline by `herostore.testing.tiny_models` for tests, the demo and the CPU benchmark.
Same architecture family and hidden size as the real `{model_id}` ({what}), but 1 layer, random
weights: every feature it produces is meaningless. Never use these features for training.
"""
_README_FULL = """# RANDOM-WEIGHT FULL-SIZE MODEL - NOT {model_id}

Built offline by `herostore.testing.tiny_models` (`full_size=True`) for benchmarks at real size.
The real `{model_id}` architecture and sizes ({what}), but random weights (saved in float16):
every feature it produces is meaningless. Never use these features for training.
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


def build_tiny_models(root: str | os.PathLike, *, languages: tuple[str, ...] = ("en", "zh"),
                      au: bool = False, seed: int = 0, full_size: bool = False) -> Path:
    """Build the random-weight test models under ``root`` (idempotent); returns ``root``.

    ``languages`` picks which language-specific defaults (HuBERT, BERT) get a folder;
    ``au`` adds a 1024-d ViT under ``TINY_AU_ID`` for ``--au-model``. ``full_size`` gives
    every model the real architecture's depth and widths (``model_configs(True)``) instead
    of one small layer: still random weights, meant for benchmarks only.
    """
    import torch

    from ..extract.loading import quiet_transformers

    root = Path(root)
    wanted = {"version": _VERSION, "languages": sorted(languages), "au": au, "seed": seed}
    if full_size:
        wanted["full_size"] = True
    done = root / _DONE
    if done.is_file():
        try:
            if json.loads(done.read_text()) == wanted:
                return root
        except ValueError:
            pass
    root.mkdir(parents=True, exist_ok=True)
    size = "the real architecture's sizes" if full_size else "1 layer and the spec's hidden size"
    (root / "README.md").write_text(
        f"# Random-weight test models (herostore)\n\nEvery folder here holds a model with random weights and {size},"
        " named after the real checkpoint it stands in for. Features made with them are meaningless; they exist so"
        " tests, the demo and the benchmark run offline.\n"
    )
    torch.manual_seed(seed)
    with quiet_transformers():
        _build_all(root, languages, au, full_size)
    done.write_text(json.dumps(wanted))
    return root


def _build_all(root: Path, languages: tuple[str, ...], au: bool, full: bool) -> None:
    from ..extract.models import DEFAULT_MODELS

    configs = model_configs(full)
    builders = {"video_mae": _video_mae, "clip": _blip2, "hubert": _hubert, "asr": _whisper, "bert": _bert}
    made: dict[str, str] = {}  # role -> first model id built for it
    for language in languages:
        for role, build in builders.items():
            model_id = DEFAULT_MODELS[language][role]
            if model_id in made.values():
                continue
            if role in made:  # same architecture for another language: share the weights (hard links)
                source = root / made[role]
                _build_into(root / model_id, model_id, lambda out, s=source: _link_copy(s, out), full)
            else:
                _build_into(root / model_id, model_id, lambda out, b=build, r=role: b(out, configs[r], full), full)
                made[role] = model_id
    if au:
        _build_into(root / TINY_AU_ID, TINY_AU_ID, lambda out: _au_vit(out, configs["au"], full), full)


def _build_into(target: Path, model_id: str, build, full: bool = False) -> None:
    """Build into a scratch folder and rename it into place, so a killed build leaves nothing half-made."""
    scratch = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    scratch.mkdir(parents=True)
    try:
        what = build(scratch)
        (scratch / MARKER).write_text("random weights: test model, not a real checkpoint\n")
        (scratch / "README.md").write_text((_README_FULL if full else _README).format(model_id=model_id, what=what))
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


def model_configs(full_size: bool = False) -> dict[str, Any]:
    """The transformers configs the builders use, per role (``video_mae``, ``clip``, ``hubert``, ``asr``,
    ``bert``, ``au``): one small layer at the spec's hidden sizes, or with ``full_size`` the real
    checkpoints' architectures. Cheap: nothing is built."""
    from transformers import (
        BertConfig,
        Blip2VisionConfig,
        HubertConfig,
        VideoMAEConfig,
        ViTConfig,
        WhisperConfig,
    )

    vocab = _whisper_vocab(full_size)
    ids = {t: vocab[t] for t in _WHISPER_SPECIALS}
    eot = ids["<|endoftext|>"]
    whisper = {"vocab_size": len(vocab), "decoder_start_token_id": ids["<|startoftranscript|>"],
               "bos_token_id": eot, "eos_token_id": eot, "pad_token_id": eot, "begin_suppress_tokens": None,
               "suppress_tokens": None}
    # Real strides and kernels keep HuBERT's frame count exact at either size: (N - 400) // 320 + 1 at 16 kHz.
    hubert = {"feat_extract_norm": "layer", "do_stable_layer_norm": True, "conv_bias": True,
              "num_conv_pos_embedding_groups": 16}
    if full_size:  # the configs of the real checkpoints (their config.json), random weights
        return {
            "video_mae": VideoMAEConfig(  # MCG-NJU/videomae-large
                image_size=224, patch_size=16, num_frames=16, tubelet_size=2, hidden_size=1024,
                num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, qkv_bias=True,
                use_mean_pooling=False),
            "clip": Blip2VisionConfig(  # the EVA ViT-g/14 tower of Salesforce/blip2-opt-2.7b
                hidden_size=1408, intermediate_size=6144, num_hidden_layers=39, num_attention_heads=16,
                image_size=224, patch_size=14, qkv_bias=True, layer_norm_eps=1e-6),
            "hubert": HubertConfig(  # facebook/hubert-large-ll60k
                hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                conv_dim=(512,) * 7, num_conv_pos_embeddings=128, **hubert),
            "asr": WhisperConfig(  # openai/whisper-large-v3-turbo
                d_model=1280, encoder_layers=32, decoder_layers=4, encoder_attention_heads=20,
                decoder_attention_heads=20, encoder_ffn_dim=5120, decoder_ffn_dim=5120, num_mel_bins=128,
                max_source_positions=1500, max_target_positions=448, **whisper),
            "bert": BertConfig(  # google-bert/bert-base-uncased (with the small test vocabulary)
                vocab_size=len(_bert_tokens()), hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                intermediate_size=3072, max_position_embeddings=512),
            "au": ViTConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,  # a ViT-L/16
                            intermediate_size=4096, image_size=224, patch_size=16),
        }
    return {
        "video_mae": VideoMAEConfig(
            image_size=224, patch_size=16, num_frames=16, tubelet_size=2, hidden_size=1024, num_hidden_layers=1,
            num_attention_heads=4, intermediate_size=256, use_mean_pooling=False, decoder_num_attention_heads=2,
            decoder_hidden_size=64, decoder_num_hidden_layers=1, decoder_intermediate_size=64),
        "clip": Blip2VisionConfig(hidden_size=1408, num_hidden_layers=1, num_attention_heads=8,
                                  intermediate_size=256, image_size=224, patch_size=14),
        "hubert": HubertConfig(hidden_size=1024, num_hidden_layers=1, num_attention_heads=4, intermediate_size=256,
                               conv_dim=(32,) * 7, num_conv_pos_embeddings=16, **hubert),
        "asr": WhisperConfig(d_model=64, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                             decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=80,
                             max_target_positions=64, **whisper),
        "bert": BertConfig(vocab_size=len(_bert_tokens()), hidden_size=768, num_hidden_layers=1,
                           num_attention_heads=4, intermediate_size=256, max_position_embeddings=512),
        "au": ViTConfig(hidden_size=1024, num_hidden_layers=1, num_attention_heads=4, intermediate_size=256,
                        image_size=112, patch_size=16),
    }


def _save(model: Any, out: Path, full: bool) -> None:
    import torch

    (model.to(torch.float16) if full else model).save_pretrained(out)  # float16 halves the full-size files


def _video_mae(out: Path, config: Any, full: bool) -> str:
    from transformers import VideoMAEForPreTraining, VideoMAEImageProcessor, VideoMAEModel
    from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    from ..extract.loading import fast_videomae_init

    # Tiny: saved as VideoMAEForPreTraining like MCG-NJU/videomae-large, so loading VideoMAEModel strips the
    # prefix. Full size: the encoder alone (the pre-training decoder would only take disk and build time).
    with fast_videomae_init():
        model = (VideoMAEModel if full else VideoMAEForPreTraining)(config)
    _save(model, out, full)
    VideoMAEImageProcessor(image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD).save_pretrained(out)
    return (f"VideoMAE, hidden {config.hidden_size}, {config.num_hidden_layers} layers, 16 frames, tubelet 2, "
            f"patch 16")


def _blip2(out: Path, vision: Any, full: bool) -> str:
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2QFormerConfig,
        Blip2VisionModel,
        OPTConfig,
    )

    what = (f"Blip-2 with the EVA ViT-g/14 vision tower shape: hidden 1408, {vision.num_hidden_layers} layers, "
            f"patch 14, 224 px")
    if full:  # the vision tower alone: the extractor reads nothing else of a Blip-2 checkpoint
        _save(Blip2VisionModel(vision), out, full)
        return what + " (standalone Blip2VisionModel)"
    # A whole Blip-2 checkpoint like Salesforce/blip2-opt-2.7b (tiny Q-Former and OPT), so the extractor's
    # path that pulls the vision tower out of a full checkpoint is what gets tested. No preprocessor config:
    # the extractor's documented defaults (224 px, CLIP mean/std) are used.
    qformer = Blip2QFormerConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                 encoder_hidden_size=1408)
    text = OPTConfig(hidden_size=32, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2, vocab_size=64,
                     word_embed_proj_dim=32, max_position_embeddings=64)
    config = Blip2Config(vision_config=vision.to_dict(), qformer_config=qformer.to_dict(),
                         text_config=text.to_dict(), num_query_tokens=4)
    Blip2ForConditionalGeneration(config).save_pretrained(out)
    return what


def _hubert(out: Path, config: Any, full: bool) -> str:
    from transformers import HubertModel, Wav2Vec2FeatureExtractor

    _save(HubertModel(config), out, full)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(out)
    return f"HuBERT, hidden 1024, {config.num_hidden_layers} layers, 20 ms frames at 16 kHz"


def _whisper_vocab(full: bool) -> dict[str, int]:
    """Byte-level alphabet, then (full size) filler tokens up to whisper-large-v3's 51866, then the specials."""
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = sorted(ByteLevel.alphabet())
    tokens = list(alphabet)
    if full:  # two-byte tokens: never produced by encoding (no merges), but every generated id decodes
        fillers = (a + b for a in alphabet for b in alphabet)
        tokens += [next(fillers) for _ in range(51866 - len(_WHISPER_SPECIALS) - len(alphabet))]
    tokens += list(_WHISPER_SPECIALS)
    return {token: i for i, token in enumerate(tokens)}


def _whisper(out: Path, config: Any, full: bool) -> str:
    from transformers import (
        GenerationConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    vocab = _whisper_vocab(full)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = WhisperTokenizer(vocab=str(out / "vocab.json"), merges=str(out / "merges.txt"),
                                 pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": list(_WHISPER_SPECIALS[1:])})
    features = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    WhisperProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(out)
    ids = {t: vocab[t] for t in _WHISPER_SPECIALS}
    eot = ids["<|endoftext|>"]
    model = WhisperForConditionalGeneration(config)
    # Like a real multilingual Whisper generation config, so `language=` works; short max_length keeps it fast.
    generation = GenerationConfig(
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, decoder_start_token_id=ids["<|startoftranscript|>"],
        max_length=FULL_SIZE_ASR_MAX_TOKENS if full else 12, is_multilingual=True,
        no_timestamps_token_id=ids["<|notimestamps|>"], lang_to_id={"<|en|>": ids["<|en|>"], "<|zh|>": ids["<|zh|>"]},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
    )
    model.generation_config = generation
    _save(model, out, full)
    if full:
        return (f"whisper-large-v3-turbo: d_model {config.d_model}, {config.encoder_layers} encoder / "
                f"{config.decoder_layers} decoder layers, {config.num_mel_bins} mel bins, vocabulary {len(vocab)}; "
                f"transcripts capped at {FULL_SIZE_ASR_MAX_TOKENS} tokens (random weights never stop)")
    return "Whisper (d_model 64) with a byte-level tokenizer and processor"


def _bert_tokens() -> list[str]:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    return tokens + [w for w in _BERT_WORDS if w not in tokens] + list(dict.fromkeys(_BERT_CHINESE))


def _bert(out: Path, config: Any, full: bool) -> str:
    from transformers import BertModel, BertTokenizer

    tokens = _bert_tokens()
    (out / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True,
                              tokenize_chinese_chars=True)
    tokenizer.save_pretrained(out)
    _save(BertModel(config), out, full)
    return (f"BERT, hidden 768, {config.num_hidden_layers} layers, a small WordPiece vocab with Chinese characters "
            f"(the embedding lookup is all the vocabulary size changes)")


def _au_vit(out: Path, config: Any, full: bool) -> str:
    from transformers import ViTModel

    _save(ViTModel(config), out, full)
    return (f"ViT image encoder, hidden 1024, {config.num_hidden_layers} layers, {config.image_size} px "
            f"(a stand-in for a face/AU encoder)")
