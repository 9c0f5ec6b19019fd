"""A persistent embedding cache in SQLite and an Embedder wrapper that uses it.

Cache keys derive from content: ``(model_id, dimensions, sha256(text))``; values are the float32
vector bytes. The cache lives in its own table (``embedding_cache``), so it may share a SQLite file
with the local index; it uses WAL mode and a busy timeout, so other connections (threads or
processes) to the same file are safe.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from indexers.errors import EmbeddingError, IndexError_
from indexers.ports import Embedder

log = logging.getLogger(__name__)

_BATCH = 500


def text_key(text: str) -> bytes:
    """The sha256 digest of a text (UTF-8), the content part of a cache key."""
    return hashlib.sha256(text.encode("utf-8")).digest()


class EmbeddingCache:
    """Persistent ``(model_id, dimensions, sha256(text)) -> float32 vector`` store in a SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None

    def _con(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=NORMAL")
                con.execute("PRAGMA busy_timeout=30000")
                con.execute(
                    "CREATE TABLE IF NOT EXISTS embedding_cache ("
                    " model_id TEXT NOT NULL, dimensions INTEGER NOT NULL, text_sha256 BLOB NOT NULL,"
                    " vector BLOB NOT NULL, PRIMARY KEY (model_id, dimensions, text_sha256)) WITHOUT ROWID"
                )
            except sqlite3.Error as exc:
                raise IndexError_(f"the embedding cache at {self.path} could not be opened: {exc}") from exc
            self._db = con
        return self._db

    def get_many(self, model_id: str, dimensions: int, texts: Sequence[str]) -> dict[int, np.ndarray]:
        """Cached vectors by position in ``texts`` (positions without a cached vector are absent)."""
        keys = [text_key(t) for t in texts]
        positions: dict[bytes, list[int]] = {}
        for i, k in enumerate(keys):
            positions.setdefault(k, []).append(i)
        unique = list(positions)
        out: dict[int, np.ndarray] = {}
        with self._lock:
            con = self._con()
            for start in range(0, len(unique), _BATCH):
                part = unique[start : start + _BATCH]
                rows = con.execute(
                    "SELECT text_sha256, vector FROM embedding_cache WHERE model_id = ? AND dimensions = ? "
                    f"AND text_sha256 IN ({', '.join('?' * len(part))})",
                    [model_id, dimensions, *part],
                ).fetchall()
                for key, blob in rows:
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if vec.shape != (dimensions,):
                        continue  # a damaged row is treated as a miss and overwritten later
                    for i in positions[bytes(key)]:
                        out[i] = vec.copy()
        return out

    def put_many(self, model_id: str, dimensions: int, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store ``vectors[i]`` for ``texts[i]`` (replacing what was there) in one transaction."""
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.shape != (len(texts), dimensions):
            raise ValueError(f"expected vectors of shape {(len(texts), dimensions)}, got {vecs.shape}")
        rows = [(model_id, dimensions, text_key(t), vecs[i].tobytes()) for i, t in enumerate(texts)]
        if not rows:
            return
        with self._lock:
            con = self._con()
            try:
                con.execute("BEGIN IMMEDIATE")
                con.executemany(
                    "INSERT OR REPLACE INTO embedding_cache(model_id, dimensions, text_sha256, vector) "
                    "VALUES (?, ?, ?, ?)",
                    rows,
                )
                con.execute("COMMIT")
            except sqlite3.Error as exc:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise IndexError_(f"writing to the embedding cache at {self.path} failed: {exc}") from exc

    def count(self, model_id: str | None = None) -> int:
        with self._lock:
            if model_id is None:
                return int(self._con().execute("SELECT count(*) FROM embedding_cache").fetchone()[0])
            return int(
                self._con().execute("SELECT count(*) FROM embedding_cache WHERE model_id = ?", (model_id,)).fetchone()[0]
            )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> "EmbeddingCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class EmbedderStats:
    """Counters of a CachedEmbedder: texts served from the cache, texts embedded by the model,
    and wall time spent inside the model."""

    cache_hits: int = 0
    computed: int = 0
    seconds_in_model: float = 0.0


class CachedEmbedder:
    """An Embedder that serves repeated texts from an ``EmbeddingCache`` and embeds only the misses.

    Misses of one ``embed_documents`` call go to the inner embedder in a single batch (a text
    repeated within the call is embedded once). ``stats`` counts hits, computed texts and time in
    the model.
    """

    def __init__(self, inner: Embedder, cache: EmbeddingCache) -> None:
        self.inner = inner
        self.cache = cache
        self.stats = EmbedderStats()
        self._stats_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dimensions(self) -> int:
        return self.inner.dimensions

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed_documents takes a sequence of texts, not a single string")
        texts = list(texts)
        model_id, dims = self.model_id, self.dimensions
        out = np.empty((len(texts), dims), dtype=np.float32)
        found = self.cache.get_many(model_id, dims, texts)
        for i, vec in found.items():
            out[i] = vec
        missing: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            if i not in found:
                missing.setdefault(t, []).append(i)
        with self._stats_lock:
            self.stats.cache_hits += len(found)
        if missing:
            todo = list(missing)
            started = time.perf_counter()
            computed = np.asarray(self.inner.embed_documents(todo), dtype=np.float32)
            elapsed = time.perf_counter() - started
            if computed.shape != (len(todo), dims):
                raise EmbeddingError(
                    f"embedder {model_id} returned vectors of shape {computed.shape} for {len(todo)} texts; "
                    f"expected {(len(todo), dims)}"
                )
            with self._stats_lock:
                self.stats.computed += len(todo)
                self.stats.seconds_in_model += elapsed
            self.cache.put_many(model_id, dims, todo, computed)
            for row, t in enumerate(todo):
                for i in missing[t]:
                    out[i] = computed[row]
        return out

    def embed_query(self, text: str) -> np.ndarray:
        """Embed a query with ``inner.embed_query`` (models may embed queries differently), cached
        under ``<model_id>|query`` so query and document vectors never mix."""
        key_model, dims = self.model_id + "|query", self.dimensions
        found = self.cache.get_many(key_model, dims, [text])
        if 0 in found:
            with self._stats_lock:
                self.stats.cache_hits += 1
            return found[0]
        started = time.perf_counter()
        vec = np.asarray(self.inner.embed_query(text), dtype=np.float32)
        elapsed = time.perf_counter() - started
        if vec.shape != (dims,):
            raise EmbeddingError(f"embedder {self.model_id} returned a query vector of shape {vec.shape}; expected {(dims,)}")
        with self._stats_lock:
            self.stats.computed += 1
            self.stats.seconds_in_model += elapsed
        self.cache.put_many(key_model, dims, [text], vec.reshape(1, -1))
        return vec
