"""A BERT sentence encoder in plain torch, for sentence-transformers folders of the simplest shape.

``ondata ask`` used to spend most of its start-up importing sentence-transformers (which imports
transformers, scikit-learn, scipy and more: about 5 CPU seconds before the first query, measured
by ``bench/startup.py``) to run a 6-layer MiniLM. ``BertEncoder`` loads the same folder with only
torch, ``tokenizers`` and ``safetensors`` and computes the same vectors (equal to float32 rounding;
``tests/test_embedders.py`` compares it with sentence-transformers), when the folder is exactly:

- ``modules.json``: a Transformer module, a Pooling module with mean pooling only, optionally Normalize;
- ``config.json``: ``model_type`` ``bert`` with absolute position embeddings and the ``gelu`` activation;
- ``tokenizer.json`` and ``model.safetensors`` present.

``supports(path)`` says whether a folder has that shape; anything else is loaded by
sentence-transformers (``indexers.embedders.local``). Inference only: no dropout, no gradients.
Texts are sorted by length and padded per batch as sentence-transformers does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def supports(path: Path | None) -> bool:
    """True when the sentence-transformers folder ``path`` is a plain BERT + mean pooling (+ normalize) model."""
    if path is None:
        return False
    try:
        modules = _read(path / "modules.json")
        kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
        if kinds not in (["Transformer", "Pooling", "Normalize"], ["Transformer", "Pooling"]) or modules[0].get("path"):
            return False
        pooling = _read(path / modules[1]["path"] / "config.json")
        mean_only = pooling.get("pooling_mode_mean_tokens") and not any(
            pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                                     "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"))
        if pooling.get("pooling_mode") not in (None, "mean") or (pooling.get("pooling_mode") is None and not mean_only):
            return False
        config = _read(path / "config.json")
        return (config.get("model_type") == "bert" and config.get("hidden_act") == "gelu"
                and config.get("position_embedding_type", "absolute") == "absolute"
                and (path / "tokenizer.json").is_file() and (path / "model.safetensors").is_file())
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        return False


class BertEncoder:
    """Mean-pooled, L2-normalised BERT sentence vectors, float32 (what sentence-transformers' ``encode(...,
    normalize_embeddings=True)`` returns for such a folder, with or without its Normalize module)."""

    def __init__(self, path: Path, *, device: str = "cpu") -> None:
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        self.path = Path(path)
        config = _read(self.path / "config.json")
        st_config = _read(self.path / "sentence_bert_config.json") if (self.path / "sentence_bert_config.json").is_file() else {}
        modules = _read(self.path / "modules.json")
        self.has_normalize = modules[-1].get("type", "").endswith("Normalize")
        self.max_seq_length = int(st_config.get("max_seq_length") or config.get("max_position_embeddings", 512))
        self.do_lower_case = bool(st_config.get("do_lower_case", False))
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.dimensions = self.hidden

        base = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self.plain = Tokenizer.from_str(base.to_str())  # for measuring and splitting texts: no specials, no limits
        self.plain.no_truncation()
        self.plain.no_padding()
        self.tokenizer = base  # for model input: [CLS] ... [SEP], truncated, padded to the longest of the batch
        self.tokenizer.enable_truncation(self.max_seq_length)
        pad_token = "[PAD]" if base.token_to_id("[PAD]") is not None else base.id_to_token(int(config.get("pad_token_id", 0)))
        self.tokenizer.enable_padding(pad_id=int(base.token_to_id(pad_token)), pad_token=pad_token)
        self.special_tokens = len(self.tokenizer.encode("", add_special_tokens=True).ids)

        weights = load_file(str(self.path / "model.safetensors"), device=device)
        prefix = "bert." if any(k.startswith("bert.") for k in weights) else ""
        self.w = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
        self.torch = torch
        self.device = device

    def _layer_norm(self, x, name: str):
        return self.torch.nn.functional.layer_norm(x, (self.hidden,), self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps)

    def _linear(self, x, name: str):
        return self.torch.nn.functional.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def _forward(self, ids, mask):
        F = self.torch.nn.functional
        w = self.w
        batch, length = ids.shape
        positions = self.torch.arange(length, device=ids.device)
        # the order of the additions and the mask handling follow transformers' BertModel, so results match it
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.token_type_embeddings.weight"][0]
        x = x + w["embeddings.position_embeddings.weight"][positions][None]
        x = self._layer_norm(x, "embeddings.LayerNorm")
        attend = None if bool(mask.all()) else mask[:, None, None, :].bool().expand(batch, 1, length, length)
        size = self.hidden // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def heads(t):
                return t.view(batch, length, self.heads, size).transpose(1, 2)

            q = heads(self._linear(x, p + "attention.self.query"))
            k = heads(self._linear(x, p + "attention.self.key"))
            v = heads(self._linear(x, p + "attention.self.value"))
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=attend, scale=1.0 / math.sqrt(size))
            context = context.transpose(1, 2).reshape(batch, length, self.hidden)
            x = self._layer_norm(self._linear(context, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            h = F.gelu(self._linear(x, p + "intermediate.dense"))
            x = self._layer_norm(self._linear(h, p + "output.dense") + x, p + "output.LayerNorm")
        m = mask[:, :, None].to(x.dtype)
        pooled = (x * m).sum(dim=1) / self.torch.clamp(m.sum(dim=1), min=1e-9)
        if self.has_normalize:  # the folder's Normalize module ...
            pooled = F.normalize(pooled, p=2, dim=1)
        return F.normalize(pooled, p=2, dim=1)  # ... and encode(normalize_embeddings=True), as sentence-transformers does

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """One vector per text (longest texts first in each batch, as sentence-transformers orders them)."""
        texts = [t.lower() for t in texts] if self.do_lower_case else list(texts)
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        with self.torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                idx = order[start:start + batch_size]
                encodings = self.tokenizer.encode_batch([texts[i] for i in idx])
                ids = self.torch.tensor([e.ids for e in encodings], dtype=self.torch.long, device=self.device)
                mask = self.torch.tensor([e.attention_mask for e in encodings], dtype=self.torch.long, device=self.device)
                out[idx] = self._forward(ids, mask).float().cpu().numpy()
        return out

    def pieces(self, texts: Sequence[str]) -> list[tuple[list[tuple[int, int]], list[int | None]]]:
        """``(offsets, word_ids)`` of each text's word pieces (offsets into the text), without special tokens
        or truncation."""
        return [(list(e.offsets), list(e.word_ids)) for e in self.plain.encode_batch(list(texts), add_special_tokens=False)]
