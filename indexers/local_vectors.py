"""The local index's vector arm: ``vectors.faiss`` (+ ``vectors.faiss.delta``), derived from the embeddings in SQLite.

``VectorIndex`` owns the vector structure of one ``LocalIndex`` directory, keyed by the chunk's
SQLite row id, of one of three kinds (``VectorConfig``; ``auto``: exact below a size threshold):

- ``flat``: exact inner product (``IndexIDMap2(IndexFlatIP)``).
- ``ivf``: approximate, then exact. An inverted file of 4-bit product-quantised codes
  (``IndexIVFPQFastScan``, inner product, ``d/2`` sub-quantisers: 1/16 of the float32 size)
  finds ``k × ivf_rerank`` candidates in ``ivf_nprobe`` of its ``ivf_nlist`` lists; they are
  re-ranked exactly from the float32 vectors, which the file stores beside the codes and a
  reader memory-maps. Filters reach it as an ID selector (``SearchParametersIVF(sel=...)``).
- ``hnsw``: approximate (``IndexIDMap2(IndexHNSWFlat)``); kept as a setting, but its recall on
  near-random vectors is poor (docs/scaling.md).

A filtered or trimmed search restricts the structure to the allowed rows before the top-k cut (an
``IDSelectorBitmap`` of ``indexers.local_allowed``); with ``hnsw`` an allowed set of at most
``exact_allowed_max`` rows, with ``ivf`` one of at most that or 1/``IVF_EXACT_SHARE`` of the
vectors, is searched exactly among its rows' vectors instead.

**Incremental: base + delta + tombstones.** The structure in memory is a *base* (what the file
``vectors.faiss`` holds) plus the rows added since (the *delta*, added into the same FAISS index)
and a mask of *dead* row ids (rows removed since; FAISS never removes them, a selector skips
them). A write by this process adds its rows and marks its removed ones (``apply``); a structure
behind the caller's SQLite snapshot catches up from SQLite: the rows above its watermark and the
row ids of ``chunk_tombstones`` since its generation (``indexers.local_allowed.log_reaches``), so
a 1% change costs 1%. ``flush()`` saves the delta alone (``vectors.faiss.delta``: its row ids,
vectors and dead row ids, naming the base it extends), or, when the delta's rows or the dead rows
pass ``COMPACT_FRACTION`` of the base (or there is no base yet), *compacts*: rebuilds the base from
SQLite (``ivf`` retrains its lists then) and removes the delta. Nothing else rebuilds: a missing,
unreadable or foreign file, one of another kind than the setting asks for, or one the tombstone
log no longer reaches, is rebuilt from SQLite (and logged): it is derived data.

**Readers never rebuild on the search path** (``current``): once a structure is held, a search
catches up in place with at most ``CATCH_UP_INLINE`` changed rows; further behind, it keeps
answering from what it holds while a background thread (its own read-only SQLite connection) loads
the new files and catches up, then swaps the reference. A structure newer than the caller's
snapshot is used as it is: the caller's fetch re-checks every row against its snapshot.

- **Files**: both start with ``_MAGIC`` and a JSON header (generation, dimensions, kind, counts,
  offsets), are written to a temporary file, fsynced and renamed over the old one
  (``indexers.atomic.AtomicFile``): a reader that memory-mapped the old base keeps reading the old inode. The
  FAISS part is streamed both ways (``PyCallbackIOWriter`` / ``PyCallbackIOReader``), never held
  as bytes as well; the ``ivf`` float32 vectors are written slice by slice and memory-mapped
  (``numpy.memmap``) when opened, so a cold open reads the small code part only.
- **Build**: streamed from ``chunk_vectors`` in slices of ``BUILD_SLICE`` rows inside one read
  snapshot, so the peak is the structure plus one slice (``ivf``: the codes plus one slice; the
  float32 vectors go straight to the file). ``ivf`` first trains on a sample of at most
  ``TRAIN_PER_LIST`` vectors per list, read by random row ids. A folder that cannot be written
  only costs the saving (logged): the structure is built in memory (``ivf``: with its float32
  vectors read from SQLite).
- **Threads**: FAISS runs on ``VectorConfig.threads`` OpenMP threads (default 1; ``limit_threads``).

The caller (``indexers.local_index.LocalIndex``) serialises access (its lock) and passes the SQLite
connection (the background refresh opens its own through ``connect``); this module never writes
SQLite. ``bench_index`` builds one over given vectors for ``bench/vectors.py``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np

from indexers.atomic import AtomicFile
from indexers.local_allowed import AllowedSet, log_reaches, sql_ints
from indexers.local_refresh import BackgroundRefresh

log = logging.getLogger(__name__)

FAISS_NAME = "vectors.faiss"
DELTA_SUFFIX = ".delta"
_MAGIC = b"ONDATA-VECTORS-2\n"
_HEADER_BYTES = 4096  # magic + JSON header, padded: the data that follows starts page-aligned
BUILD_SLICE = 16384  # vectors read from SQLite per slice when building (about 25 MB at 384 dims)
_FETCH_BATCH = 500  # row ids per IN (...) list when reading vectors of a small allowed set
#: Compact (rebuild the base) when the delta's rows or the dead rows exceed this fraction of the base.
COMPACT_FRACTION = 0.10
#: A search catches up in place with at most this many changed rows; more are left to a background refresh.
CATCH_UP_INLINE = 4096
#: With IVF, an allowed set of at most 1/IVF_EXACT_SHARE of the vectors (or ``exact_allowed_max``
#: rows) is scored exactly among its own vectors: about as fast as scanning the codes (~0.3 us a row
#: gathered and scored against ~15 ns a scanned code), and a small set through the selector loses
#: recall (its best rows are weak matches in lists the query does not probe).
IVF_EXACT_SHARE = 20
#: IVF training sample: at most this many vectors per list (FAISS wants at least 39).
TRAIN_PER_LIST = 64
_MIN_TRAIN = 39 * 16

Kind = Literal["flat", "ivf", "hnsw"]


@dataclass(frozen=True)
class VectorConfig:
    """How the vector arm searches (``Settings.vector_index`` and friends).

    ``kind``: ``"flat"`` is exact (``IndexFlatIP``); ``"ivf"`` approximate then exact (4-bit PQ
    codes in ``ivf_nlist`` inverted lists, ``0``: about ``sqrt(n)``; ``ivf_nprobe`` lists searched,
    ``0``: three quarters of them; ``k × ivf_rerank`` candidates re-ranked exactly); ``"hnsw"``
    approximate (``IndexHNSWFlat``, ``hnsw_m`` links per node, ``ef_construction`` / ``ef_search``
    beam widths; ``ef_search`` is raised to k when smaller); ``"auto"`` is flat below
    ``exact_below`` vectors and IVF from there. With HNSW, a filtered or trimmed search whose allowed
    set has at most ``exact_allowed_max`` rows (IVF: or at most 1/``IVF_EXACT_SHARE`` of the vectors)
    is answered exactly among those rows' vectors.
    ``threads``: FAISS OpenMP threads, set in each thread that searches (1: one query at a time on one core).
    """

    kind: Literal["auto", "flat", "ivf", "hnsw"] = "auto"
    ivf_nlist: int = 0
    ivf_nprobe: int = 0
    ivf_rerank: int = 30
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    exact_below: int = 20_000  # flat p95 stays within a few ms below it; IVF is 4-10x faster above (docs/scaling.md)
    exact_allowed_max: int = 4096
    threads: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("auto", "flat", "ivf", "hnsw"):
            raise ValueError(f"vector index kind must be auto, flat, ivf or hnsw, got {self.kind!r}")
        for name in ("ivf_rerank", "hnsw_m", "ef_construction", "ef_search", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("ivf_nlist", "ivf_nprobe", "exact_below", "exact_allowed_max"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")

    def kind_for(self, n: int) -> Kind:
        """The structure an index of ``n`` vectors gets: ``"flat"``, ``"ivf"`` or ``"hnsw"``."""
        if self.kind == "auto":
            return "ivf" if n >= self.exact_below else "flat"
        return self.kind  # type: ignore[return-value]

    def nlist_for(self, n: int) -> int:
        """IVF lists for ``n`` vectors: ``ivf_nlist``, or about ``sqrt(n)`` (at least 1; at most ``n / 39``)."""
        if self.ivf_nlist:
            return max(1, min(self.ivf_nlist, n))
        return max(1, min(int(math.sqrt(max(n, 1))), n // 39 or 1))

    def nprobe_for(self, nlist: int) -> int:
        """IVF lists searched: ``ivf_nprobe`` (at most ``nlist``), or three quarters of them (the
        hashing embedder's near-random vectors need that for recall@10 >= 0.95: docs/scaling.md)."""
        return max(1, min(self.ivf_nprobe or math.ceil(3 * nlist / 4), nlist))


class _Rows:
    """A growable (row ids, float32 vectors) pair: the delta's rows, ascending row ids."""

    def __init__(self, dims: int) -> None:
        self.dims = dims
        self.n = 0
        self._rids = np.zeros(0, dtype=np.int64)
        self._vecs = np.zeros((0, dims), dtype=np.float32)

    def add(self, rids: np.ndarray, vecs: np.ndarray) -> None:
        need = self.n + len(rids)
        if need > len(self._rids):
            cap = max(need, 1024, len(self._rids) * 2)
            grown_r = np.zeros(cap, dtype=np.int64)
            grown_v = np.zeros((cap, self.dims), dtype=np.float32)
            grown_r[: self.n], grown_v[: self.n] = self._rids[: self.n], self._vecs[: self.n]
            self._rids, self._vecs = grown_r, grown_v
        self._rids[self.n : need], self._vecs[self.n : need] = rids, vecs
        self.n = need

    @property
    def rids(self) -> np.ndarray:
        return self._rids[: self.n]

    @property
    def vecs(self) -> np.ndarray:
        return self._vecs[: self.n]


class Structure:
    """One vector structure in memory: a base plus the delta and the dead rows (module docstring)."""

    def __init__(self, kind: Kind, index: Any, dims: int, *, generation: int, watermark: int, base_count: int,
                 base_id: str, base_rids: np.ndarray | None = None, base_vecs: np.ndarray | None = None,
                 nprobe: int = 1) -> None:
        self.kind = kind
        self.index = index  # flat / hnsw: IndexIDMap2; ivf: IndexIVFPQFastScan with ids = row ids
        self.dims = dims
        self.generation = generation
        self.watermark = watermark  # every row id <= watermark has been seen
        self.base_count = base_count
        self.base_id = base_id  # names the base a delta file extends
        self.base_rids = base_rids if base_rids is not None else np.zeros(0, dtype=np.int64)  # ivf: ascending
        self.base_vecs = base_vecs  # ivf: float32 (base_count, dims), memory-mapped from the file
        self.nprobe = nprobe
        self.delta = _Rows(dims)
        self.dead = np.zeros(0, dtype=bool)  # by row id
        self.n_dead = 0
        self.saved_generation: int | None = None  # the generation the files on disk hold
        self._dead_bitmap: np.ndarray | None = None

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def live(self) -> int:
        return self.ntotal - self.n_dead

    def add(self, rids: np.ndarray, vecs: np.ndarray) -> None:
        if not len(rids):
            return
        rids = np.ascontiguousarray(rids, dtype=np.int64)
        vecs = np.ascontiguousarray(vecs, dtype=np.float32).reshape(len(rids), self.dims)
        self.index.add_with_ids(vecs, rids)
        self.delta.add(rids, vecs)
        self.watermark = max(self.watermark, int(rids.max()))

    def kill(self, rids: np.ndarray) -> None:
        rids = np.asarray(rids, dtype=np.int64)
        rids = rids[(rids >= 0) & (rids <= self.watermark)]
        if not rids.size:
            return
        if int(rids.max()) >= self.dead.shape[0]:
            grown = np.zeros(max(int(rids.max()) + 1, self.dead.shape[0] * 2, 1024), dtype=bool)
            grown[: self.dead.shape[0]] = self.dead
            self.dead = grown
        rids = np.unique(rids)
        fresh = rids[~self.dead[rids]]
        self.dead[fresh] = True
        self.n_dead += int(fresh.size)
        self._dead_bitmap = None

    def dead_ids(self) -> np.ndarray:
        return np.flatnonzero(self.dead).astype(np.int64)

    def needs_compaction(self) -> bool:
        """Whether the delta or the dead rows passed ``COMPACT_FRACTION`` of the base (or there is no base)."""
        if self.base_count == 0:
            return self.ntotal > 0
        return max(self.delta.n, self.n_dead) > COMPACT_FRACTION * self.base_count

    def dead_selector(self) -> tuple[Any, Any]:
        """A selector of the live rows (``IDSelectorNot`` of the dead bitmap) and what it points into."""
        import faiss

        if self._dead_bitmap is None:
            self._dead_bitmap = np.packbits(self.dead, bitorder="little")
        inner = faiss.IDSelectorBitmap(len(self._dead_bitmap), faiss.swig_ptr(self._dead_bitmap))
        return faiss.IDSelectorNot(inner), (inner, self._dead_bitmap)

    def rows_among(self, allowed: AllowedSet | None) -> tuple[np.ndarray, np.ndarray]:
        """(row ids, float32 vectors) of every live row of the base and the delta (``ivf``) in ``allowed``."""
        parts_r, parts_v = [], []
        if self.base_vecs is not None and len(self.base_rids):
            parts_r.append(self.base_rids)
            parts_v.append(np.asarray(self.base_vecs))
        if self.delta.n:
            parts_r.append(self.delta.rids)
            parts_v.append(self.delta.vecs)
        if not parts_r:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.dims), dtype=np.float32)
        rids, vecs = np.concatenate(parts_r), np.concatenate(parts_v)
        keep = np.ones(len(rids), dtype=bool)
        if self.n_dead:
            inside = rids < self.dead.shape[0]
            keep[inside] = ~self.dead[rids[inside]]
        if allowed is not None:
            keep &= allowed.take(rids)
        return rids[keep], vecs[keep]

    def vectors_of(self, rids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found row ids, their float32 vectors) from the base and the delta (``ivf``)."""
        rids = np.asarray(rids, dtype=np.int64)
        out_r, out_v = [], []
        if self.base_vecs is not None and len(self.base_rids):
            pos = np.searchsorted(self.base_rids, rids)
            pos_c = np.minimum(pos, len(self.base_rids) - 1)
            hit = self.base_rids[pos_c] == rids
            if hit.any():
                order = np.sort(pos_c[hit])  # ascending positions: sequential reads of the mapped file
                out_r.append(self.base_rids[order])
                out_v.append(np.asarray(self.base_vecs[order]))
        if self.delta.n:
            d_rids = self.delta.rids
            pos = np.searchsorted(d_rids, rids)
            pos_c = np.minimum(pos, len(d_rids) - 1)
            hit = d_rids[pos_c] == rids
            if hit.any():
                out_r.append(d_rids[pos_c[hit]])
                out_v.append(self.delta.vecs[pos_c[hit]])
        if not out_r:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.dims), dtype=np.float32)
        return np.concatenate(out_r), np.concatenate(out_v)


class VectorIndex:
    """The vector structure of one index directory (see the module docstring). Not thread-safe on
    its own: ``LocalIndex`` calls it under its lock."""

    def __init__(self, directory: Path, *, dimensions: int, generation: Callable[[sqlite3.Connection], int],
                 config: VectorConfig | None = None,
                 connect: Callable[[], sqlite3.Connection] | None = None) -> None:
        self.directory = directory
        self.dimensions = dimensions
        self.config = config or VectorConfig()
        self._generation = generation  # reads the index's generation from a connection
        self._st: Structure | None = None
        # background refreshes (indexers.local_refresh) on read-only connections of ``connect`` (None: none)
        self._refresh: BackgroundRefresh[Structure] | None = None if connect is None else BackgroundRefresh(
            connect, name="ondata-vectors-refresh", what=f"the vector index of {directory}")
        self.full_builds = 0  # structures built from scratch (tests, logs)
        self.swaps = 0  # structures swapped in by a background refresh

    @property
    def path(self) -> Path:
        return self.directory / FAISS_NAME

    @property
    def delta_path(self) -> Path:
        return self.directory / (FAISS_NAME + DELTA_SUFFIX)

    @property
    def loaded(self) -> bool:
        """Whether a structure is held in memory."""
        return self._st is not None

    def reset(self) -> None:
        """Forget the in-memory structure (on ``close()``), after any background refresh."""
        self.wait_refreshed()
        self._st = None

    def is_fresh(self, gen: int) -> bool:
        """Whether the in-memory structure or the files reflect generation ``gen``."""
        return (self._st is not None and self._st.generation == gen) or self.file_generation() == gen

    # ------------------------------------------------------------------ search

    def search(self, con: sqlite3.Connection, q: np.ndarray, allowed: AllowedSet | None,
               n: int) -> list[tuple[int, float]]:
        """The top ``n`` (row id, inner product) of ``q`` (shape (1, dims)) at ``con``'s generation,
        restricted to ``allowed`` (an ID selector) before the cut."""
        return self.prepare(con, q, allowed, n)()

    def prepare(self, con: sqlite3.Connection, q: np.ndarray, allowed: AllowedSet | None,
                n: int) -> Callable[[], list[tuple[int, float]]]:
        """``search`` in two parts: this one, in the caller's thread and read snapshot, does all that
        reads SQLite or a cache (the structure at ``con``'s generation, the allowed set's bitmap,
        the dead-row selector, an exact search among a small allowed set read from SQLite); the
        callable it returns runs only FAISS and numpy over what it was given, so it may run on
        another thread (``LocalIndex.search`` runs it beside the keyword arm) while the caller
        keeps the index lock and the snapshot open until it returns. It runs FAISS on
        ``config.threads`` threads in whichever thread calls it (``limit_threads``)."""
        import faiss

        st = self.current(con)
        if st.live <= 0 or (allowed is not None and allowed.count == 0):
            return list
        if allowed is not None and st.kind == "ivf" and allowed.count <= max(self.config.exact_allowed_max,
                                                                             st.ntotal // IVF_EXACT_SHARE):
            return lambda: _top(*st.vectors_of(allowed.ids()), q, n)
        if allowed is not None and st.kind == "hnsw" and allowed.count <= self.config.exact_allowed_max:
            found = self._exact_among(con, q, allowed.ids(), n)
            return lambda: found
        k = min(n, st.live if allowed is None else allowed.count)
        keep: Any = None
        if allowed is not None:
            bitmap = allowed.bitmap()  # held for the search: the selector points into it
            sel = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
            keep = bitmap
        elif st.n_dead:
            sel, keep = st.dead_selector()
        else:
            sel = None
        if st.kind == "ivf" and st.ntotal <= k * self.config.ivf_rerank:
            return lambda: _top(*st.rows_among(allowed), q, n)  # every row a candidate: exactly, without the codes
        if st.kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=st.nprobe)
            kk = k * self.config.ivf_rerank
        elif st.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.config.ef_search, k))
            kk = k
        else:
            params = faiss.SearchParameters()
            kk = k
        if sel is not None:
            params.sel = sel
        threads = self.config.threads

        def run(_pinned: tuple = (keep, sel)) -> list[tuple[int, float]]:  # params.sel points into them
            limit_threads(threads)
            scores, ids = st.index.search(q, kk, params=params)
            if st.kind == "ivf":  # exact re-ranking of the candidates from the float32 vectors
                cand = ids[0][ids[0] >= 0]
                return _top(*st.vectors_of(cand), q, n)
            return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

        return run

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
        return _top(np.asarray(got_ids, dtype=np.int64), matrix, q, n)

    # ------------------------------------------------------------------ maintenance

    def fresh(self, con: sqlite3.Connection) -> Structure:
        """The structure at the generation of ``con``'s snapshot: kept in memory (caught up from
        SQLite when behind), else loaded from the files (and caught up), else built from SQLite.
        Writers (``flush``, ``rebuild``) and a first search use it; a later search uses ``current``."""
        gen = self._generation(con)
        st = self._st
        if st is not None and st.generation != gen:
            st = st if self._catch_up(con, st, gen) else None
        if st is None:
            st = self._load(con, gen)
        if st is None:
            st = self._build(con)
        self._st = st
        return st

    def current(self, con: sqlite3.Connection) -> Structure:
        """The structure a search uses; never rebuilt here once one is held.

        Behind ``con``'s snapshot by at most ``CATCH_UP_INLINE`` rows (added plus removed), it catches
        up in place (a small change costs its size); further behind, or when it cannot catch up (the
        tombstone log no longer reaches it, the file was compacted by another process), the search
        keeps using it as it is while a background thread (its own read-only SQLite connection)
        prepares the new one from the files and SQLite, then swaps the reference. Until then the
        rows added since are missing and the rows removed since are dropped by the caller's fetch
        (which re-checks every row against the snapshot). With nothing held yet (the first search) it
        is ``fresh``: loaded, or built when there is no usable file."""
        st = self._st
        if st is None or self._refresh is None:
            return self.fresh(con)
        gen = self._generation(con)
        if st.generation >= gen:
            return st  # current, or newer than this snapshot (the fetch re-checks every row)
        if not self._refresh.running and log_reaches(con, st.generation) and \
                _change_since(con, st) <= CATCH_UP_INLINE and self._catch_up(con, st, gen):
            return st
        self._refresh.start(self._prepared, self._swap)
        return st

    def _prepared(self, con: sqlite3.Connection) -> Structure:
        """Background: a new structure at ``con``'s snapshot, from the files (caught up) or SQLite."""
        new = self._load(con, self._generation(con))
        return new if new is not None else self._build(con)

    def _swap(self, new: Structure) -> None:
        old = self._st
        if old is None or old.generation < new.generation:
            self._st = new
            self.swaps += 1

    def wait_refreshed(self, timeout: float | None = None) -> None:
        """Wait for a background refresh to finish (tests, ``close()``)."""
        if self._refresh is not None:
            self._refresh.wait(timeout)

    def _catch_up(self, con: sqlite3.Connection, st: Structure, gen: int) -> bool:
        """Bring ``st`` forward to ``gen`` from SQLite (rows above its watermark, tombstones since
        its generation); False when it cannot (newer than ``gen``, the log does not reach back, or
        the setting now asks for another kind)."""
        if st.generation > gen:
            return True  # newer than this snapshot (a reader's): used as it is, the fetch re-checks rows
        if not log_reaches(con, st.generation):
            return False
        if st.kind == "ivf" and not st.index.is_trained:
            return False  # built empty: nothing to add the rows to
        st.kill(sql_ints(con, "SELECT group_concat(rid) FROM chunk_tombstones WHERE gen >= ?", [st.generation]))
        cur = con.execute("SELECT rid, vector FROM chunk_vectors WHERE rid > ? ORDER BY rid", [st.watermark])
        while rows := cur.fetchmany(BUILD_SLICE):
            rids = np.fromiter((r for r, _ in rows), dtype=np.int64, count=len(rows))
            st.add(rids, np.frombuffer(b"".join(v for _, v in rows), dtype=np.float32).reshape(len(rows), self.dimensions))
        st.generation = gen
        return True

    def flush(self, con: sqlite3.Connection) -> None:
        """Bring the files up to date with SQLite: nothing when they are current; else the delta is
        saved, or the base is rebuilt (compacted) when the delta or the dead rows are due."""
        gen = self._generation(con)
        if self._st is None and self.file_generation() == gen:
            return  # the files on disk are current: no need to load them
        st = self.fresh(con)
        if st.saved_generation == gen:
            return
        if st.needs_compaction() or self.config.kind_for(st.live) != st.kind:
            self._st = None  # dropped before the rebuild: the peak is one structure
            self._st = self._build(con)
            return
        self._save_delta(st)

    def rebuild(self, con: sqlite3.Connection) -> None:
        """Rebuild from the embeddings in SQLite and save, unconditionally."""
        self._st = None
        self._st = self._build(con)

    def apply(self, gen_before: int, gen_after: int, *, remove: list[int], add_ids: list[int],
              add_vectors: np.ndarray | None) -> None:
        """Keep an in-memory structure current after our own write (its delta and dead rows);
        one that was behind is left to catch up from SQLite later."""
        st = self._st
        if st is None or st.generation != gen_before:
            return
        try:
            if st.kind == "ivf" and not st.index.is_trained:
                self._st = None  # nothing trained yet: built at the next search or flush
                return
            st.kill(np.asarray(remove, dtype=np.int64))
            if add_ids and add_vectors is not None:
                st.add(np.asarray(add_ids, dtype=np.int64), add_vectors)
            st.generation = gen_after
        except Exception as exc:  # pragma: no cover - fall back to a rebuild at next search
            log.warning("in-memory vector update failed (%s); it will be rebuilt", exc)
            self._st = None

    def file_generation(self) -> int | None:
        """The generation the files hold: the delta's when it extends the base, else the base's."""
        base = _read_header(self.path)
        if base is None:
            return None
        delta = _read_header(self.delta_path)
        if delta is not None and delta.get("base_id") == base.get("base_id"):
            return int(delta["generation"])
        return int(base["generation"])

    # ------------------------------------------------------------------ files

    def _load(self, con: sqlite3.Connection, gen: int) -> Structure | None:
        import faiss

        limit_threads(self.config.threads)
        path = self.path
        if not path.exists():
            log.info("no vector file at %s; building it from SQLite", path)
            return None
        try:
            head = _read_header(path)
            if head is None:
                raise ValueError("bad header")
            if int(head["dims"]) != self.dimensions:
                raise ValueError(f"{head['dims']} dimensions, the index has {self.dimensions}")
            with open(path, "rb") as fh:  # streamed: the FAISS part is read once, never held as bytes too
                fh.seek(int(head["faiss_offset"]))
                reader = faiss.PyCallbackIOReader(fh.read)
                index = faiss.read_index(reader)
                del reader
            kind = head["kind"]
            st = Structure(kind, index, self.dimensions, generation=int(head["generation"]),
                           watermark=int(head["watermark"]), base_count=int(head["count"]), base_id=head["base_id"])
            if kind == "ivf":
                count = int(head["count"])
                st.base_rids = np.array(np.memmap(path, dtype=np.int64, mode="r", offset=int(head["rids_offset"]),
                                                  shape=(count,))) if count else st.base_rids
                st.base_vecs = _map_vectors(path, int(head["vecs_offset"]), count, self.dimensions) if count else None
                st.nprobe = self.config.nprobe_for(faiss.extract_index_ivf(index).nlist)
            st.saved_generation = st.generation
            self._load_delta(st)
        except Exception as exc:  # any unreadable file is rebuilt: it is derived data
            log.warning("vector file %s is unreadable (%s); building it from SQLite", path, exc)
            return None
        if st.kind != self.config.kind_for(st.live):
            log.info("vector file %s is %s but the setting asks for %s; rebuilding it from SQLite",
                     path, st.kind, self.config.kind_for(st.live))
            return None
        if st.generation < gen and not self._catch_up(con, st, gen):
            log.info("vector file %s (generation %d) cannot catch up with the index (at %d); rebuilding it from SQLite",
                     path, st.generation, gen)
            return None
        return st

    def _load_delta(self, st: Structure) -> None:
        """Add the rows and dead rows of ``vectors.faiss.delta`` when it extends this base."""
        head = _read_header(self.delta_path)
        if head is None or head.get("base_id") != st.base_id:
            return
        try:
            n_add, n_dead, d = int(head["added"]), int(head["dead"]), self.dimensions
            with open(self.delta_path, "rb") as fh:
                fh.seek(_HEADER_BYTES)
                rids = np.frombuffer(_read_exact(fh, n_add * 8), dtype=np.int64)
                vecs = np.frombuffer(_read_exact(fh, n_add * d * 4), dtype=np.float32).reshape(n_add, d)
                dead = np.frombuffer(_read_exact(fh, n_dead * 8), dtype=np.int64)
            st.add(rids, vecs)
            st.kill(dead)
            st.watermark = max(st.watermark, int(head["watermark"]))
            st.generation = st.saved_generation = int(head["generation"])
        except (OSError, ValueError, KeyError) as exc:
            log.warning("vector delta %s is unreadable (%s); its rows are caught up from SQLite", self.delta_path, exc)

    def _save_delta(self, st: Structure) -> None:
        rids, vecs, dead = st.delta.rids, st.delta.vecs, st.dead_ids()
        head = {"generation": st.generation, "dims": self.dimensions, "base_id": st.base_id,
                "watermark": st.watermark, "added": int(len(rids)), "dead": int(len(dead))}

        def body(fh) -> None:
            fh.write(rids.tobytes())
            fh.write(np.ascontiguousarray(vecs).tobytes())
            fh.write(dead.tobytes())

        if _write_atomically(self.delta_path, head, body):
            st.saved_generation = st.generation

    def _build(self, con: sqlite3.Connection) -> Structure:
        """Build the structure from SQLite in one read snapshot, streamed, and save it as the new base."""
        import faiss

        limit_threads(self.config.threads)
        self.full_builds += 1
        started = time.perf_counter()
        own = not con.in_transaction  # inside a search: its snapshot; else one of its own
        if own:
            con.execute("BEGIN")
        out: _Out | None = None
        try:
            gen = self._generation(con)
            n, top = (int(x) for x in con.execute("SELECT count(*), coalesce(max(rid), 0) FROM chunk_vectors").fetchone())
            kind = self.config.kind_for(n)
            base_id = f"{gen}-{os.getpid()}-{time.time_ns()}"
            index = self._empty(kind, con, n)
            d = self.dimensions
            rids_offset = _HEADER_BYTES
            vecs_offset = rids_offset + n * 8
            faiss_offset = vecs_offset + n * d * 4 if kind == "ivf" else _HEADER_BYTES
            out = _Out(self.path)  # a folder we cannot write to only costs the saving: built in memory then
            total = 0
            cur = con.execute("SELECT rid, vector FROM chunk_vectors ORDER BY rid")
            while rows := cur.fetchmany(BUILD_SLICE):  # the peak: the structure plus one slice
                ids = np.fromiter((r for r, _ in rows), dtype=np.int64, count=len(rows))
                matrix = np.frombuffer(b"".join(v for _, v in rows), dtype=np.float32).reshape(len(rows), d)
                index.add_with_ids(matrix, ids)
                if kind == "ivf":  # the float32 vectors go straight to the file
                    out.write_at(rids_offset + total * 8, ids.tobytes())
                    out.write_at(vecs_offset + total * d * 4, matrix.tobytes())
                total += len(rows)
                del rows, ids, matrix
            head = {"generation": gen, "dims": d, "kind": kind, "count": total, "watermark": top,
                    "base_id": base_id, "rids_offset": rids_offset, "vecs_offset": vecs_offset,
                    "faiss_offset": faiss_offset}
            saved = out.finish(index, head)
        except BaseException:
            if out is not None:
                out.abort()
            raise
        finally:
            if own:
                con.execute("COMMIT")
        st = Structure(kind, index, d, generation=gen, watermark=top, base_count=total, base_id=base_id)
        saved = saved and out.commit()
        if kind == "ivf":
            st.nprobe = self.config.nprobe_for(faiss.extract_index_ivf(index).nlist)
            if saved and total:
                st.base_rids = np.array(np.memmap(self.path, dtype=np.int64, mode="r", offset=rids_offset,
                                                  shape=(total,)))
                st.base_vecs = _map_vectors(self.path, vecs_offset, total, d)
            elif total:  # unsaved (read-only folder, full disk): the vectors held in memory, from SQLite
                st.base_rids, st.base_vecs = _all_vectors(con, d)  # rows never change: any snapshot has them
        if saved:
            st.saved_generation = gen
            _unlink(self.delta_path)
        log.info("built the %s vector index over %d vectors of %s in %.0f ms", kind, total, self.directory,
                 (time.perf_counter() - started) * 1000)
        return st

    def _empty(self, kind: Kind, con: sqlite3.Connection, n: int) -> Any:
        """An empty FAISS index of ``kind`` (``ivf``: trained on a sample of the ``n`` stored vectors)."""
        import faiss

        d = self.dimensions
        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(d, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.config.ef_construction
            inner.hnsw.efSearch = self.config.ef_search
            return faiss.IndexIDMap2(inner)
        if kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(d))
        nlist = self.config.nlist_for(n)
        m = d // 2 if d % 2 == 0 else d
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFPQFastScan(quantizer, d, nlist, m, 4, faiss.METRIC_INNER_PRODUCT)
        index.own_fields = True
        quantizer.this.disown()
        index.cp.niter = 10  # k-means iterations of the lists (default 25): the lists only prune the scan
        index.pq.cp.niter = 10
        if n:
            index.train(_train_sample(con, d, min(n, TRAIN_PER_LIST * nlist)))
        return index


def _map_vectors(path: Path, offset: int, count: int, dims: int) -> np.ndarray:
    """The base's float32 vectors, memory-mapped read-only (pages are read when re-ranking touches
    them; they are the page cache's, shared, and count in RSS once mapped)."""
    return np.memmap(path, dtype=np.float32, mode="r", offset=offset, shape=(count, dims))


def _change_since(con: sqlite3.Connection, st: Structure) -> int:
    """Rows added above ``st``'s watermark plus row ids removed since its generation."""
    added = int(con.execute("SELECT count(*) FROM chunk_vectors WHERE rid > ?", [st.watermark]).fetchone()[0])
    removed = int(con.execute("SELECT count(*) FROM chunk_tombstones WHERE gen >= ?", [st.generation]).fetchone()[0])
    return added + removed


def bench_index(directory: Path, config: VectorConfig, vectors: np.ndarray) -> tuple[VectorIndex, sqlite3.Connection]:
    """A ``VectorIndex`` of ``config`` over ``vectors`` (row ids 1..n) in ``directory``, with the few
    SQLite tables it reads, for ``bench/vectors.py``: search it with ``index.search(con, q, allowed, k)``."""
    directory.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(directory / "vectors.sqlite", isolation_level=None)
    con.executescript(
        "CREATE TABLE chunk_vectors (rid INTEGER PRIMARY KEY, vector BLOB NOT NULL);"
        "CREATE TABLE index_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE chunk_tombstones (gen INTEGER NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (gen, rid));"
        "INSERT INTO index_meta VALUES ('generation', '1'), ('tombstones_since', '0');"
    )
    con.execute("BEGIN")
    for start in range(0, len(vectors), BUILD_SLICE):
        part = np.ascontiguousarray(vectors[start : start + BUILD_SLICE], dtype=np.float32)
        con.executemany("INSERT INTO chunk_vectors VALUES (?, ?)",
                        ((start + i + 1, part[i].tobytes()) for i in range(len(part))))
    con.execute("COMMIT")

    def generation(c: sqlite3.Connection) -> int:
        return int(c.execute("SELECT value FROM index_meta WHERE key = 'generation'").fetchone()[0])

    index = VectorIndex(directory, dimensions=vectors.shape[1], generation=generation, config=config)
    index.rebuild(con)
    return index, con


def _top(rids: np.ndarray, vecs: np.ndarray, q: np.ndarray, n: int) -> list[tuple[int, float]]:
    """Exact top ``n`` (row id, inner product) among ``vecs`` (rows of ``rids``)."""
    if not len(rids):
        return []
    scores = inner_products(vecs, q[0])
    top = np.argsort(-scores, kind="stable")[:n]
    return [(int(rids[i]), float(scores[i])) for i in top]


def inner_products(vecs: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``vecs @ q`` with FAISS's single-threaded SIMD kernel: numpy's matrix-vector product goes
    through a multi-threaded BLAS, 40x slower for a few thousand rows on a busy machine."""
    import faiss

    vecs = np.ascontiguousarray(vecs, dtype=np.float32)
    q = np.ascontiguousarray(q, dtype=np.float32)
    out = np.empty(len(vecs), dtype=np.float32)
    if len(vecs):
        faiss.fvec_inner_products_ny(faiss.swig_ptr(out), faiss.swig_ptr(q), faiss.swig_ptr(vecs), q.shape[0], len(vecs))
    return out


def _train_sample(con: sqlite3.Connection, d: int, size: int) -> np.ndarray:
    """About ``size`` stored vectors at random row ids (tiled to at least ``_MIN_TRAIN`` rows: k-means
    wants 39 points per centroid, and PQ has 16 per sub-quantiser)."""
    lo, hi = (int(x) for x in con.execute("SELECT min(rid), max(rid) FROM chunk_vectors").fetchone())
    rng = np.random.default_rng(hi)
    n = int(con.execute("SELECT count(*) FROM chunk_vectors").fetchone()[0])
    if size >= n:
        picked = None
    else:  # row ids have gaps (deletes): draw more, keep those that exist
        picked = np.unique(rng.integers(lo, hi + 1, size=min(hi - lo + 1, int(size * (hi - lo + 1) / n) + 64)))
    blobs: list[bytes] = []
    if picked is None:
        blobs = [v for (v,) in con.execute("SELECT vector FROM chunk_vectors")]
    else:
        for start in range(0, len(picked), _FETCH_BATCH):
            part = [int(r) for r in picked[start : start + _FETCH_BATCH]]
            blobs.extend(v for (v,) in con.execute(
                f"SELECT vector FROM chunk_vectors WHERE rid IN ({', '.join('?' * len(part))})", part))
    x = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), d)
    if len(x) < _MIN_TRAIN:
        x = np.tile(x, (math.ceil(_MIN_TRAIN / max(len(x), 1)), 1))
    return np.ascontiguousarray(x)


def _all_vectors(con: sqlite3.Connection, d: int) -> tuple[np.ndarray, np.ndarray]:
    rows = con.execute("SELECT rid, vector FROM chunk_vectors ORDER BY rid").fetchall()
    rids = np.fromiter((r for r, _ in rows), dtype=np.int64, count=len(rows))
    return rids, np.frombuffer(b"".join(v for _, v in rows), dtype=np.float32).reshape(len(rows), d)


def _header_bytes(head: dict) -> bytes:
    raw = _MAGIC + json.dumps(head, sort_keys=True).encode() + b"\n"
    if len(raw) > _HEADER_BYTES:
        raise ValueError("vector file header too long")
    return raw.ljust(_HEADER_BYTES, b"\0")


def _read_header(path: Path) -> dict | None:
    """The JSON header of a vector file (None when missing or not one)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_HEADER_BYTES)
    except OSError:
        return None
    if not raw.startswith(_MAGIC) or len(raw) < _HEADER_BYTES:
        return None
    try:
        head = json.loads(raw[len(_MAGIC) :].split(b"\n", 1)[0])
        int(head["generation"])
        return head
    except (ValueError, KeyError, TypeError):
        return None


def _read_exact(fh, size: int) -> bytes:
    data = fh.read(size)
    if len(data) != size:
        raise ValueError("truncated")
    return data


class _Out:
    """A new base file being written at offsets (an ``AtomicFile``); the first ``OSError`` (read-only
    folder, full disk) is logged and ends the saving: the structure is still built, in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: AtomicFile | None = None
        try:
            self.file = AtomicFile(path)
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        log.warning("could not save vector file %s: %s", self.path, exc)
        self.abort()

    def abort(self) -> None:
        file, self.file = self.file, None
        if file is not None:
            file.abort()

    def write_at(self, offset: int, data: bytes) -> None:
        if self.file is None:
            return
        try:
            self.file.fh.seek(offset)
            self.file.fh.write(data)
        except OSError as exc:
            self._fail(exc)

    def finish(self, index: Any, head: dict) -> bool:
        """Write the FAISS part (streamed) and the header; False when not saved (``commit`` makes it the base)."""
        import faiss

        if self.file is None:
            return False
        fh = self.file.fh
        try:
            fh.seek(int(head["faiss_offset"]))
            writer = faiss.PyCallbackIOWriter(fh.write)  # streamed: no in-memory copy of the index
            faiss.write_index(index, writer)
            del writer
            fh.seek(0)
            fh.write(_header_bytes(head))
            return True
        except OSError as exc:
            self._fail(exc)
            return False

    def commit(self) -> bool:
        """fsync the file and rename it over the base; False (logged, removed) when that fails."""
        file, self.file = self.file, None
        if file is None:
            return False
        try:
            file.commit()
            return True
        except OSError as exc:
            log.warning("could not save vector file %s: %s", self.path, exc)
            return False


def _write_atomically(path: Path, head: dict, body: Callable[[Any], None]) -> bool:
    try:
        with AtomicFile(path) as fh:
            fh.write(_header_bytes(head))
            body(fh)
    except OSError as exc:  # derived data: an unsaved file only costs a catch-up or rebuild later
        log.warning("could not save vector file %s: %s", path, exc)
        return False
    return True


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


_threads_set = threading.local()  # OpenMP's thread count is per calling thread


def limit_threads(threads: int = 1) -> None:
    """Run FAISS on ``threads`` OpenMP threads in the calling thread (set again only when it changes).

    OpenMP keeps the setting per thread: a thread that never set it (a server's worker, the
    vector worker of ``LocalIndex.search``) runs FAISS on every core, so each thread that searches
    sets it itself. The default, 1, searches one query at a time on one core: an exact search of
    one query over ~10k vectors takes well under a millisecond, and OpenMP workers only add
    wake-up and contention costs, badly so on a busy machine.
    """
    if getattr(_threads_set, "threads", None) != threads:
        import faiss

        faiss.omp_set_num_threads(threads)
        _threads_set.threads = threads


def kind_of(structure: Any) -> str:
    """``"flat"``, ``"ivf"`` or ``"hnsw"``: the kind of a ``Structure`` (or of a FAISS index)."""
    if isinstance(structure, Structure):
        return structure.kind
    import faiss

    inner = faiss.downcast_index(structure.index) if hasattr(structure, "index") else structure
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    return "ivf" if isinstance(inner, faiss.IndexIVF) else "flat"
