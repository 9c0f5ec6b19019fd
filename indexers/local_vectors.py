"""The local index's vector arm: ``vectors.faiss``, derived from the embeddings in SQLite.

``VectorIndex`` owns the FAISS structure of one ``LocalIndex`` directory: an inner-product index
keyed by the chunk's SQLite row id, exact (``IndexIDMap2(IndexFlatIP)``) or approximate
(``IndexIDMap2(IndexHNSWFlat)``) as ``VectorConfig`` says (``auto``: exact below a size threshold),
the generation it reflects in memory and on disk, and how it is built, loaded, saved, updated and
searched. A file of another kind than the setting asks for is rebuilt when loaded.

- **File**: ``vectors.faiss`` starts with a header (magic, generation, dimensions) followed by the
  FAISS serialisation, written atomically (temp file + fsync + ``os.replace``) and streamed both
  ways (``PyCallbackIOWriter`` / ``PyCallbackIOReader``), so neither a save nor a load holds the
  index twice. A missing, unreadable or stale file (its generation differs from SQLite's) is
  rebuilt from SQLite and logged: it is derived data.
- **Build**: streamed from ``chunk_vectors`` in slices of ``BUILD_SLICE`` rows inside one read
  snapshot, so the peak is the index plus one slice.
- **Updates**: after a write by this process the in-memory copy is updated (``remove_ids`` then
  ``add_with_ids``) when it reflected the generation before the write; otherwise it is dropped and
  re-derived lazily (next search, ``flush()`` or ``close()``). HNSW cannot remove ids: a write that
  removes rows drops an in-memory HNSW, rebuilt lazily (tombstones are not implemented yet).
- **Search**: restricted to an allowed set (``indexers.local_allowed``) with an ``IDSelectorBitmap``
  before the top-k cut (with HNSW through ``SearchParametersHNSW``); with HNSW a small allowed set
  is searched exactly among its rows' vectors in SQLite instead.
- **Threads**: FAISS runs on ``VectorConfig.threads`` OpenMP threads (default 1; ``limit_threads``).

The caller (``indexers.local_index.LocalIndex``) serialises access (its lock) and passes the SQLite
connection; this module never writes SQLite.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np

from indexers.local_allowed import AllowedSet

log = logging.getLogger(__name__)

FAISS_NAME = "vectors.faiss"
_FAISS_MAGIC = b"ONDATA-FAISS-1\n"
_HEADER_LEN = len(_FAISS_MAGIC) + 16
BUILD_SLICE = 16384  # vectors read from SQLite per slice when building FAISS (about 25 MB at 384 dims)
_FETCH_BATCH = 500  # row ids per IN (...) list when reading vectors of a small allowed set


@dataclass(frozen=True)
class VectorConfig:
    """How the vector arm searches (``Settings.vector_index`` and friends).

    ``kind``: ``"flat"`` is exact (``IndexFlatIP``); ``"hnsw"`` approximate (``IndexHNSWFlat``, inner
    product, ``hnsw_m`` links per node, ``ef_construction`` / ``ef_search`` beam widths; ``ef_search``
    is raised to k when smaller); ``"auto"`` is flat below ``exact_below`` vectors and HNSW from there.
    With HNSW, a filtered or trimmed search whose allowed set has at most ``exact_allowed_max`` rows
    is answered exactly from those rows' vectors in SQLite (a very selective selector makes HNSW
    lose recall); a larger one searches HNSW with the selector (``SearchParametersHNSW(sel=...)``).
    ``threads``: FAISS OpenMP threads, process-wide (1: one query at a time on one core).
    """

    #: Exact by default: with the hashing embedder (near-random vectors) HNSW's recall@10 at 50k
    #: chunks was 0.32 (efSearch 64) to 0.62 (efSearch 512), far from 0.95 (see docs/scaling.md).
    kind: Literal["auto", "flat", "hnsw"] = "flat"
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    exact_below: int = 100_000
    exact_allowed_max: int = 4096
    threads: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("auto", "flat", "hnsw"):
            raise ValueError(f"vector index kind must be auto, flat or hnsw, got {self.kind!r}")
        for name in ("hnsw_m", "ef_construction", "ef_search", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.exact_below < 0 or self.exact_allowed_max < 0:
            raise ValueError("exact_below and exact_allowed_max must not be negative")

    def kind_for(self, n: int) -> str:
        """The structure an index of ``n`` vectors gets: ``"flat"`` or ``"hnsw"``."""
        if self.kind == "auto":
            return "hnsw" if n >= self.exact_below else "flat"
        return self.kind


class VectorIndex:
    """The FAISS structure of one index directory (see the module docstring). Not thread-safe on
    its own: ``LocalIndex`` calls it under its lock."""

    def __init__(self, directory: Path, *, dimensions: int, generation: Callable[[sqlite3.Connection], int],
                 config: VectorConfig | None = None) -> None:
        self.directory = directory
        self.dimensions = dimensions
        self.config = config or VectorConfig()
        self._generation = generation  # reads the index's generation from a connection
        self._faiss: Any = None  # faiss.IndexIDMap2, loaded lazily
        self._faiss_gen: int | None = None  # generation the in-memory FAISS reflects
        self._disk_gen: int | None = None  # generation of vectors.faiss as last read/written here

    @property
    def path(self) -> Path:
        return self.directory / FAISS_NAME

    @property
    def loaded(self) -> bool:
        """Whether a FAISS structure is held in memory."""
        return self._faiss is not None

    def reset(self) -> None:
        """Forget the in-memory structure and what is known of the file (on ``close()``)."""
        self._faiss = None
        self._faiss_gen = None
        self._disk_gen = None

    def is_fresh(self, gen: int) -> bool:
        """Whether the in-memory structure or the file reflects generation ``gen``."""
        return self._faiss_gen == gen or self.file_generation() == gen

    # ------------------------------------------------------------------ search

    def search(self, con: sqlite3.Connection, q: np.ndarray, allowed: AllowedSet | None,
               n: int) -> list[tuple[int, float]]:
        """The top ``n`` (row id, inner product) of ``q`` (shape (1, dims)) at ``con``'s generation,
        restricted to ``allowed`` (an ID selector) before the cut."""
        import faiss

        index = self.fresh(con)
        if index.ntotal == 0 or (allowed is not None and allowed.count == 0):
            return []
        hnsw = kind_of(index) == "hnsw"
        if allowed is not None and hnsw and allowed.count <= self.config.exact_allowed_max:
            return self._exact_among(con, q, allowed.ids(), n)
        k = min(n, index.ntotal if allowed is None else allowed.count)
        sel = bitmap = None
        if allowed is not None:
            bitmap = allowed.bitmap()  # held for the search: the selector points into it
            sel = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))  # n: bytes
        if hnsw:
            params = faiss.SearchParametersHNSW(efSearch=max(self.config.ef_search, k))
            if sel is not None:
                params.sel = sel
        else:
            params = faiss.SearchParameters(sel=sel) if sel is not None else None
        scores, ids = index.search(q, k, params=params)
        del bitmap
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def _exact_among(self, con: sqlite3.Connection, q: np.ndarray, rids: np.ndarray,
                     n: int) -> list[tuple[int, float]]:
        """Exact top ``n`` among row ids ``rids``, from their vectors in SQLite (``con``'s snapshot)."""
        got_ids: list[int] = []
        blobs: list[bytes] = []
        for start in range(0, len(rids), _FETCH_BATCH):
            part = [int(r) for r in rids[start : start + _FETCH_BATCH]]
            rows = con.execute(
                f"SELECT rid, vector FROM chunk_vectors WHERE rid IN ({', '.join('?' * len(part))})", part
            ).fetchall()
            for rid, blob in rows:
                got_ids.append(int(rid))
                blobs.append(blob)
        if not got_ids:
            return []
        matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(got_ids), self.dimensions)
        scores = matrix @ q[0]
        top = np.argsort(-scores, kind="stable")[:n]
        return [(got_ids[i], float(scores[i])) for i in top]

    # ------------------------------------------------------------------ maintenance

    def fresh(self, con: sqlite3.Connection) -> Any:
        """The FAISS structure at the generation of ``con``'s snapshot: kept in memory, else loaded
        from the file, else built from SQLite (and saved)."""
        gen = self._generation(con)
        if self._faiss is not None and self._faiss_gen == gen:
            return self._faiss
        loaded = self._load(gen)
        if loaded is not None:
            self._faiss, self._faiss_gen = loaded, gen
            self._disk_gen = gen
            return loaded
        index, built_gen = self._build(con)
        self._faiss, self._faiss_gen = index, built_gen
        self._save(index, built_gen)
        return index

    def flush(self, con: sqlite3.Connection) -> None:
        """Bring the file up to date with SQLite: nothing when it is current, else the in-memory
        structure (kept, loaded or rebuilt) is saved."""
        gen = self._generation(con)
        if self._faiss is None and self._disk_gen != gen and self.file_generation() == gen:
            self._disk_gen = gen  # the file on disk is current: no need to load it
        if self._disk_gen == gen and (self._faiss is None or self._faiss_gen == gen):
            return
        self.fresh(con)
        if self._faiss is not None and self._faiss_gen != self._disk_gen:
            self._save(self._faiss, self._faiss_gen)

    def rebuild(self, con: sqlite3.Connection) -> None:
        """Rebuild from the embeddings in SQLite and save, unconditionally."""
        index, gen = self._build(con)
        self._faiss, self._faiss_gen = index, gen
        self._save(index, gen)

    def apply(self, gen_before: int, gen_after: int, *, remove: list[int], add_ids: list[int],
              add_vectors: np.ndarray | None) -> None:
        """Keep an in-memory FAISS current after our own write; otherwise leave it stale."""
        if self._faiss is None or self._faiss_gen != gen_before:
            self._faiss, self._faiss_gen = None, None
            return
        try:
            if remove and kind_of(self._faiss) == "hnsw":
                # HNSW cannot remove ids: rebuilt lazily (next search, flush or close)
                self._faiss, self._faiss_gen = None, None
                return
            if remove:
                self._faiss.remove_ids(np.asarray(remove, dtype=np.int64))
            if add_ids and add_vectors is not None:
                self._faiss.add_with_ids(add_vectors, np.asarray(add_ids, dtype=np.int64))
            self._faiss_gen = gen_after
        except Exception as exc:  # pragma: no cover - fall back to a rebuild at next search
            log.warning("in-memory FAISS update failed (%s); it will be rebuilt", exc)
            self._faiss, self._faiss_gen = None, None

    def file_generation(self) -> int | None:
        """The generation recorded in the FAISS file's header (None if missing or unreadable)."""
        try:
            with open(self.path, "rb") as fh:
                head = fh.read(_HEADER_LEN)
        except OSError:
            return None
        if not head.startswith(_FAISS_MAGIC) or len(head) < _HEADER_LEN:
            return None
        return int.from_bytes(head[len(_FAISS_MAGIC) : len(_FAISS_MAGIC) + 8], "little")

    def _load(self, gen: int) -> Any:
        import faiss

        limit_threads(self.config.threads)

        path = self.path
        if not path.exists():
            log.info("no FAISS file at %s; rebuilding it from SQLite", path)
            return None
        try:
            with open(path, "rb") as fh:  # streamed: the index is read once, never held as bytes too
                head = fh.read(_HEADER_LEN)
                if not head.startswith(_FAISS_MAGIC) or len(head) < _HEADER_LEN:
                    raise ValueError("bad header")
                file_gen = int.from_bytes(head[len(_FAISS_MAGIC) : len(_FAISS_MAGIC) + 8], "little")
                file_dims = int.from_bytes(head[len(_FAISS_MAGIC) + 8 :], "little")
                if file_gen != gen or file_dims != self.dimensions:
                    log.info(
                        "FAISS file %s is stale (generation %d, index at %d); rebuilding it from SQLite",
                        path, file_gen, gen,
                    )
                    return None
                reader = faiss.PyCallbackIOReader(fh.read)
                index = faiss.read_index(reader)
                del reader
            if index.d != self.dimensions:
                raise ValueError("dimension mismatch")
            wanted = self.config.kind_for(index.ntotal)
            if kind_of(index) != wanted:
                log.info("FAISS file %s is %s but the setting asks for %s; rebuilding it from SQLite",
                         path, kind_of(index), wanted)
                return None
            return index
        except Exception as exc:  # any unreadable file is rebuilt: it is derived data
            log.warning("FAISS file %s is unreadable (%s); rebuilding it from SQLite", path, exc)
            return None

    def _build(self, con: sqlite3.Connection) -> tuple[Any, int]:
        import faiss

        limit_threads(self.config.threads)

        started = time.perf_counter()
        own = not con.in_transaction  # inside a search: its snapshot; else one of its own
        if own:
            con.execute("BEGIN")  # one read snapshot for the generation and the vectors
        try:
            gen = self._generation(con)
            n = int(con.execute("SELECT count(*) FROM chunk_vectors").fetchone()[0])
            index = self._empty(self.config.kind_for(n))
            total = 0
            cur = con.execute("SELECT rid, vector FROM chunk_vectors ORDER BY rid")
            while True:  # streamed in slices: the peak is the index itself plus one slice
                rows = cur.fetchmany(BUILD_SLICE)
                if not rows:
                    break
                ids = np.fromiter((r for r, _ in rows), dtype=np.int64, count=len(rows))
                matrix = np.frombuffer(b"".join(v for _, v in rows), dtype=np.float32)
                index.add_with_ids(matrix.reshape(len(rows), self.dimensions), ids)
                total += len(rows)
                del rows, ids, matrix
        finally:
            if own:
                con.execute("COMMIT")
        log.info(
            "built FAISS over %d vectors of %s in %.0f ms", total, self.directory,
            (time.perf_counter() - started) * 1000,
        )
        return index, gen

    def _empty(self, kind: str) -> Any:
        import faiss

        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dimensions, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.config.ef_construction
            inner.hnsw.efSearch = self.config.ef_search
        else:
            inner = faiss.IndexFlatIP(self.dimensions)
        return faiss.IndexIDMap2(inner)

    def _save(self, index: Any, gen: int | None) -> None:
        import faiss

        if gen is None:
            return
        header = _FAISS_MAGIC + int(gen).to_bytes(8, "little") + int(self.dimensions).to_bytes(8, "little")
        tmp = self.path.with_name(f"{FAISS_NAME}.tmp-{os.getpid()}-{threading.get_ident()}")
        try:
            with open(tmp, "wb") as fh:
                fh.write(header)
                writer = faiss.PyCallbackIOWriter(fh.write)  # streamed: no in-memory copy of the index
                faiss.write_index(index, writer)
                del writer
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            self._disk_gen = gen
        except OSError as exc:  # derived data: an unsaved file only costs a rebuild later
            log.warning("could not save FAISS file %s: %s", self.path, exc)
            try:
                tmp.unlink()
            except OSError:
                pass


_threads_set: int | None = None


def limit_threads(threads: int = 1) -> None:
    """Run FAISS on ``threads`` OpenMP threads (process-wide; set again only when it changes).

    The default, 1, searches one query at a time on one core: an exact search of one query over
    ~10k vectors takes well under a millisecond, and OpenMP workers only add wake-up and
    contention costs, badly so on a busy machine.
    """
    global _threads_set
    if _threads_set != threads:
        import faiss

        faiss.omp_set_num_threads(threads)
        _threads_set = threads


def kind_of(index: Any) -> str:
    """``"hnsw"`` or ``"flat"``: the structure inside an ``IndexIDMap2``."""
    import faiss

    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    return "hnsw" if isinstance(inner, faiss.IndexHNSW) else "flat"
