"""A fast, deterministic embedder without a model: signed feature hashing of words.

Each text is lowercased and split into words; every word unigram, word bigram and character
trigram (of ``#word#``) is hashed with BLAKE2b (stable across processes, unlike ``hash()``) to a
dimension and a sign. Texts that share words get similar vectors, which makes this embedder good
enough to test retrieval end to end. Vectors are float32 and L2-normalised.
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Sequence

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)

UNIGRAM_WEIGHT = 1.0
BIGRAM_WEIGHT = 0.5
TRIGRAM_WEIGHT = 0.25


def _slot(feature: str, dimensions: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dimensions, (1.0 if (value >> 63) & 1 else -1.0)


class HashingEmbedder:
    """Feature-hashing embedder (``model_id`` ``hashing-v1``); no model, no I/O, deterministic."""

    def __init__(self, *, dimensions: int = 256) -> None:
        if not isinstance(dimensions, int) or dimensions < 8:
            raise ValueError("HashingEmbedder dimensions must be an int >= 8")
        self._dimensions = dimensions
        # Per-instance memo of word / bigram features: texts repeat words a lot.
        self._word = functools.lru_cache(maxsize=200_000)(self._word_features)
        self._bigram = functools.lru_cache(maxsize=200_000)(self._bigram_feature)

    @property
    def model_id(self) -> str:
        return "hashing-v1"

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def _word_features(self, word: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
        slots, weights = [], []
        i, s = _slot("w:" + word, self._dimensions)
        slots.append(i)
        weights.append(s * UNIGRAM_WEIGHT)
        padded = f"#{word}#"
        for k in range(len(padded) - 2):
            i, s = _slot("c:" + padded[k : k + 3], self._dimensions)
            slots.append(i)
            weights.append(s * TRIGRAM_WEIGHT)
        return tuple(slots), tuple(weights)

    def _bigram_feature(self, pair: tuple[str, str]) -> tuple[int, float]:
        i, s = _slot("b:" + pair[0] + " " + pair[1], self._dimensions)
        return i, s * BIGRAM_WEIGHT

    def _embed_one(self, text: str) -> np.ndarray:
        words = _WORD.findall(text.lower())
        slots: list[int] = []
        weights: list[float] = []
        for w in words:
            s, wt = self._word(w)
            slots.extend(s)
            weights.extend(wt)
        for pair in zip(words, words[1:]):
            s, wt = self._bigram(pair)
            slots.append(s)
            weights.append(wt)
        vec = np.zeros(self._dimensions, dtype=np.float64)
        if slots:
            np.add.at(vec, np.asarray(slots, dtype=np.int64), np.asarray(weights, dtype=np.float64))
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            # Empty or word-less text: a fixed unit vector, so the output is always normalised.
            vec[_slot("<empty>", self._dimensions)[0]] = 1.0
            norm = 1.0
        return (vec / norm).astype(np.float32)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed_documents takes a sequence of texts, not a single string")
        out = np.empty((len(texts), self._dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = self._embed_one(text)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed_one(text)
