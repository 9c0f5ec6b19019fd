"""A persistent embedding cache in SQLite and an Embedder wrapper that uses it.

Cache keys derive from content: ``(model_id, dimensions, sha256(text))``. Vectors are stored
compactly, as float16 by default (``dtype="float32"`` keeps them exact): 2 bytes a dimension, in a
rowid table (``embedding_vectors``) whose rows stay on their B-tree page (the schema-1 table
``embedding_cache`` was WITHOUT ROWID, where a float32 blob above ~1 KB spilled to overflow pages:
about 4.7 KB a chunk at 384 dimensions; now five rows fill a 4 KB page, about 0.85 KB a chunk). The
rowid is 63 bits of sha256(model ref, text digest); each row also keeps the model ref and the first
16 bytes of the text's sha256, checked on read, so a rowid collision is a cache miss, never a wrong
vector. Model ids and dimensions are
interned in ``embedding_models``.

A file with the schema-1 table is migrated in place when first opened: its rows are converted and
copied in one transaction, then the old table is dropped (logged with the row count; nothing is lost).

``CachedEmbedder`` returns vectors at the cache's precision whether they were cached or just computed,
so a first run and a re-run index the very same vectors.

The cache may share a SQLite file with the local index; it uses WAL mode and a busy timeout, so
other connections (threads or processes) to the same file are safe.
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
_DIGEST = 16  # bytes of the text's sha256 kept in a row (with the 63-bit rowid: 191 bits checked)
DTYPES = ("float16", "float32")


def text_key(text: str) -> bytes:
    """The sha256 digest of a text (UTF-8), the content part of a cache key."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def row_key(model_ref: int, digest: bytes) -> int:
    """The rowid of a cache row: 63 bits of sha256(model ref, text digest), a non-negative int64."""
    h = hashlib.sha256(model_ref.to_bytes(8, "little") + bytes(digest)).digest()
    return int.from_bytes(h[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def decode_vector(blob: bytes, dimensions: int) -> np.ndarray | None:
    """A stored vector as float32 (its length tells float16 from float32), or None if damaged."""
    if len(blob) == 2 * dimensions:
        return np.frombuffer(blob, dtype=np.float16).astype(np.float32)
    if len(blob) == 4 * dimensions:
        return np.frombuffer(blob, dtype=np.float32).copy()
    return None


class EmbeddingCache:
    """Persistent ``(model_id, dimensions, sha256(text)) -> vector`` store in a SQLite file.

    ``dtype`` is the storage precision of new vectors: ``"float16"`` (default, half the bytes; a
    unit vector's components round-trip within ~5e-4) or ``"float32"`` (exact)."""

    def __init__(self, path: str | Path, dtype: str = "float16") -> None:
        if dtype not in DTYPES:
            raise ValueError(f"embedding cache dtype must be one of {DTYPES}, got {dtype!r}")
        self.path = Path(path)
        self.dtype = dtype
        self._np_dtype = np.dtype(dtype)
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._models: dict[tuple[str, int], int] = {}

    def quantize(self, vectors: np.ndarray) -> np.ndarray:
        """``vectors`` (float32) as they come back from the cache: rounded through the storage dtype."""
        vecs = np.asarray(vectors, dtype=np.float32)
        if self._np_dtype == np.float32:
            return vecs
        return vecs.astype(self._np_dtype).astype(np.float32)

    def _con(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=NORMAL")
                con.execute("PRAGMA busy_timeout=30000")
                con.execute(
                    "CREATE TABLE IF NOT EXISTS embedding_models (id INTEGER PRIMARY KEY,"
                    " model_id TEXT NOT NULL, dimensions INTEGER NOT NULL, UNIQUE (model_id, dimensions))"
                )
                con.execute(
                    "CREATE TABLE IF NOT EXISTS embedding_vectors (key INTEGER PRIMARY KEY,"
                    " model INTEGER NOT NULL, digest BLOB NOT NULL, vector BLOB NOT NULL)"
                )
                self._migrate_v1(con)
            except sqlite3.Error as exc:
                raise IndexError_(f"the embedding cache at {self.path} could not be opened: {exc}") from exc
            self._db = con
        return self._db

    def _migrate_v1(self, con: sqlite3.Connection) -> None:
        """Convert the rows of a schema-1 ``embedding_cache`` table (float32, WITHOUT ROWID) into
        ``embedding_vectors`` in one transaction, then drop it. Rows of a wrong length are kept as
        they are (a damaged row is a miss on read, as before)."""
        exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'embedding_cache'"
        if con.execute(exists).fetchone() is None:
            return
        con.execute("BEGIN IMMEDIATE")
        try:
            if con.execute(exists).fetchone() is None:  # another connection migrated it meanwhile
                con.execute("ROLLBACK")
                return
            moved = 0
            models: dict[tuple[str, int], int] = {}
            cur = con.execute("SELECT model_id, dimensions, text_sha256, vector FROM embedding_cache")
            while True:
                part = cur.fetchmany(_BATCH)
                if not part:
                    break
                rows = []
                for model_id, dims, digest, blob in part:
                    ref = models.get((model_id, dims))
                    if ref is None:
                        ref = models[(model_id, dims)] = self._model_ref(con, model_id, dims)
                    vec = decode_vector(blob, dims)
                    stored = blob if vec is None else vec.astype(self._np_dtype).tobytes()
                    rows.append((row_key(ref, digest), ref, bytes(digest)[:_DIGEST], stored))
                con.executemany(
                    "INSERT OR REPLACE INTO embedding_vectors(key, model, digest, vector) VALUES (?, ?, ?, ?)",
                    rows,
                )
                moved += len(rows)
            con.execute("DROP TABLE embedding_cache")
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        log.info("embedding cache %s: migrated %d vectors from the schema-1 table to %s storage", self.path, moved, self.dtype)

    @staticmethod
    def _model_ref(con: sqlite3.Connection, model_id: str, dimensions: int) -> int:
        con.execute("INSERT OR IGNORE INTO embedding_models(model_id, dimensions) VALUES (?, ?)", (model_id, dimensions))
        row = con.execute(
            "SELECT id FROM embedding_models WHERE model_id = ? AND dimensions = ?", (model_id, dimensions)
        ).fetchone()
        return int(row[0])

    def _ref(self, model_id: str, dimensions: int, create: bool) -> int | None:
        """The interned id of ``(model_id, dimensions)``; None if unknown and not ``create``."""
        ref = self._models.get((model_id, dimensions))
        if ref is not None:
            return ref
        con = self._con()
        row = con.execute(
            "SELECT id FROM embedding_models WHERE model_id = ? AND dimensions = ?", (model_id, dimensions)
        ).fetchone()
        if row is None:
            if not create:
                return None
            ref = self._model_ref(con, model_id, dimensions)
        else:
            ref = int(row[0])
        self._models[(model_id, dimensions)] = ref
        return ref

    def get_many(self, model_id: str, dimensions: int, texts: Sequence[str]) -> dict[int, np.ndarray]:
        """Cached vectors (float32) by position in ``texts`` (positions without a cached vector are absent)."""
        out: dict[int, np.ndarray] = {}
        with self._lock:
            ref = self._ref(model_id, dimensions, create=False)
            if ref is None:
                return out
            by_digest: dict[bytes, list[int]] = {}  # text digest -> positions in texts
            for i, t in enumerate(texts):
                by_digest.setdefault(text_key(t), []).append(i)
            keys = list({row_key(ref, d) for d in by_digest})
            positions = {d[:_DIGEST]: at for d, at in by_digest.items()}
            con = self._con()
            for start in range(0, len(keys), _BATCH):
                part = keys[start : start + _BATCH]
                rows = con.execute(
                    f"SELECT model, digest, vector FROM embedding_vectors WHERE key IN ({', '.join('?' * len(part))})",
                    part,
                ).fetchall()
                for model, digest, blob in rows:
                    at = positions.get(bytes(digest)) if model == ref else None
                    if at is None:
                        continue  # a rowid collision with another text or model: a miss
                    vec = decode_vector(blob, dimensions)
                    if vec is None:
                        continue  # a damaged row is treated as a miss and overwritten later
                    for i in at:
                        out[i] = vec if len(at) == 1 else vec.copy()
        return out

    def put_many(self, model_id: str, dimensions: int, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store ``vectors[i]`` for ``texts[i]`` (replacing what was there) in one transaction."""
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.shape != (len(texts), dimensions):
            raise ValueError(f"expected vectors of shape {(len(texts), dimensions)}, got {vecs.shape}")
        if not len(texts):
            return
        stored = vecs.astype(self._np_dtype)
        with self._lock:
            con = self._con()
            try:
                ref = self._ref(model_id, dimensions, create=True)
                assert ref is not None
                rows = []
                for i, t in enumerate(texts):
                    d = text_key(t)
                    rows.append((row_key(ref, d), ref, d[:_DIGEST], stored[i].tobytes()))
                con.execute("BEGIN IMMEDIATE")
                con.executemany(
                    "INSERT OR REPLACE INTO embedding_vectors(key, model, digest, vector) VALUES (?, ?, ?, ?)",
                    rows,
                )
                con.execute("COMMIT")
            except sqlite3.Error as exc:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise IndexError_(f"writing to the embedding cache at {self.path} failed: {exc}") from exc

    def count(self, model_id: str | None = None) -> int:
        with self._lock:
            con = self._con()
            if model_id is None:
                return int(con.execute("SELECT count(*) FROM embedding_vectors").fetchone()[0])
            return int(
                con.execute(
                    "SELECT count(*) FROM embedding_vectors WHERE model IN"
                    " (SELECT id FROM embedding_models WHERE model_id = ?)",
                    (model_id,),
                ).fetchone()[0]
            )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            self._models.clear()

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
    repeated within the call is embedded once). Vectors come back at the cache's precision
    (``EmbeddingCache.quantize``) whether cached or computed now. ``stats`` counts hits, computed texts and time in
    the model; ``last_call()`` is the same for this thread's latest ``embed_documents`` call (exact while
    other threads embed concurrently, unlike differences of ``stats``).
    """

    def __init__(self, inner: Embedder, cache: EmbeddingCache) -> None:
        self.inner = inner
        self.cache = cache
        self.stats = EmbedderStats()
        self._stats_lock = threading.Lock()
        self._last = threading.local()

    def last_call(self) -> EmbedderStats:
        """Hits, computed texts and model time of this thread's latest ``embed_documents`` call."""
        return getattr(self._last, "stats", EmbedderStats())

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
        call = EmbedderStats(cache_hits=len(found))
        self._last.stats = call
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
            call.computed, call.seconds_in_model = len(todo), elapsed
            with self._stats_lock:
                self.stats.computed += len(todo)
                self.stats.seconds_in_model += elapsed
            self.cache.put_many(model_id, dims, todo, computed)
            computed = self.cache.quantize(computed)  # what a re-run will read back from the cache
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
        return self.cache.quantize(vec)
