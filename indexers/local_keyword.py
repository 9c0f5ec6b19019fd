"""The keyword arm of the local index: an in-memory BM25 inverted index derived from SQLite.

FTS5's ``MATCH 'a OR b OR c' ORDER BY bm25 LIMIT k`` scores every matching row through SQLite's
virtual-table interface (2 s per query at 1M chunks). Here the postings of the query's terms are
numpy arrays: a query gathers them, drops the dead and the disallowed rows (the ``AllowedSet`` of
``indexers.local_allowed``, applied *before* the top-k cut), scores BM25 in a few vectorised
operations and takes the top k with ``partition``. Terms are scored rarest first (dynamic MaxScore,
exact): once the k-th best partial score beats the sum of the remaining terms' upper bounds (each
term's largest contribution to a live row, cached per term until the statistics change), the
remaining terms are only looked up for the candidate rows, the hopeless candidates dropped first,
so the work is the postings of the rare terms plus a binary search per candidate, not the
postings of every matching row.

Terms are ``indexers.text.terms`` of each field (the one text module: its words, stopwords and
Snowball stems), for documents and queries alike. A chunk's term frequency is the weighted sum
``w_title * tf_title + w_section * tf_section + w_content * tf_content`` (``LocalIndex.bm25_weights``)
and its length the same weighted sum of field lengths in words, stopwords included, as FTS5 counts
them (BM25F with one ``b``). Scores use the
statistics of the live rows at query time (N, each term's live document frequency, the mean
length), so an index caught up incrementally ranks exactly as one built from scratch:
``idf = ln(1 + (N - df + 0.5) / (df + 0.5))`` and ``tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl))``.

Maintenance, like ``vectors.faiss``: the structure is derived from SQLite and tagged with its
*generation*. It is a base segment (term -> sorted row ids and frequencies, CSR) plus a delta
segment of the rows added since, plus a mask of live rows (tombstones). It catches up with a new
generation incrementally: the rows above its watermark are tokenised into the delta, the row ids in
``chunk_tombstones`` since its generation are marked dead. ``compact()`` merges the delta into the
base and drops dead postings (``flush()`` does it once the delta or the dead rows pass
``COMPACT_FRACTION`` of the base). ``save()`` writes the compacted base to ``keyword.bin`` when
it was rebuilt or compacted, else only the delta (its postings, new rows and dead rows) to
``keyword.bin.delta``, which names the base it extends: a 1% change writes about 1%. Both files
are a header (magic, generation, watermark, BM25 parameters) and raw arrays, written atomically (indexers/atomic.py);
``load`` memory-maps the base's postings. A missing, corrupt or foreign base, or one the tombstone
log no longer reaches, is rebuilt from SQLite (and logged); an unusable delta is ignored and its
rows caught up from SQLite. A search does either in place only when it is small (``BUILD_INLINE``,
``CATCH_UP_INLINE``, measured by ``refresh_cost``); otherwise ``indexers.local_index`` does it on a
background refresh thread.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Sequence

import numpy as np

from indexers.atomic import AtomicFile
from indexers.local_allowed import AllowedSet, log_reaches, sql_ints
from indexers.text import STOPWORDS, stem, terms, words

log = logging.getLogger(__name__)

KEYWORD_NAME = "keyword.bin"
_MAGIC = b"ONDATA-KEYWORD-1\n"
#: Compact when the delta's postings or the dead rows exceed this fraction of the base.
COMPACT_FRACTION = 0.10
#: Only a query term in more than this fraction of the rows may be looked up for the candidates
#: instead of scored over all its postings (``KeywordIndex.search``); 0: any term, 1: none.
FREQUENT_DF = 0.0
#: At most this many distinct query terms are scored.
MAX_QUERY_TERMS = 64
_READ_BATCH = 2000
_SLACK = 1e-9  # relative margin of the MaxScore comparisons (floating-point rounding is ~1e-16)
_SLICE = 1 << 20  # postings per slice when the base is rebuilt (bounds its temporaries)
#: At most this many postings of base + delta joined per term are kept for the next queries (~12 bytes each).
JOINED_POSTINGS = 4 << 20
#: A search catches a held keyword index up in place with at most this many changed rows (added plus
#: removed, as ``indexers.local_vectors.CATCH_UP_INLINE``); further behind, a background refresh does.
CATCH_UP_INLINE = 4096
#: With no usable ``keyword.bin``, a search builds the keyword index in place over at most this many rows
#: (~1.4 s at 10k); over more, the text arm answers from FTS5 while a background refresh builds it.
BUILD_INLINE = 10_000


def analyze(text: str) -> list[str]:
    """The index terms of ``text``: Snowball stems of its non-stopword words (``indexers.text.terms``)."""
    return terms(text)


def query_terms(text: str) -> list[str]:
    """The distinct terms of a query, in order, at most ``MAX_QUERY_TERMS``."""
    return list(dict.fromkeys(analyze(text)))[:MAX_QUERY_TERMS]


class KeywordIndex:
    """BM25 over base + delta segments with tombstones; see the module docstring. Not thread-safe:
    ``LocalIndex`` calls it under its lock, inside a read snapshot."""

    k1 = 1.2
    b = 0.75

    def __init__(self, weights: Sequence[float]) -> None:
        self.weights = tuple(float(w) for w in weights)
        self.generation: int | None = None
        self.watermark = 0
        self.saved_generation: int | None = None
        self.full_builds = 0
        self.lookup_queries = 0  # queries whose last terms were only looked up (bench, tests)
        self.unsaved_build = False  # built from scratch since the last save
        self._base_id: str | None = None  # names the saved base segment (its delta file names it too)
        self._base_watermark = 0  # the watermark of the base segment
        self._vocab: dict[str, int] = {}
        self._base_offsets = np.zeros(1, dtype=np.int64)
        self._base_rids = np.zeros(0, dtype=np.int64)
        self._base_tfs = np.zeros(0, dtype=np.float32)
        # the delta segment: parts of (term ids, row ids, frequencies) sorted by term then row id,
        # merged like a binary counter (a part at most half the size of the one before it)
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._word_tid: dict[str, int] = {}  # word -> term id of its stem, -1 for a stopword
        self._delta_postings = 0
        self._dead_since_base = 0
        self._doclen = np.zeros(0, dtype=np.float64)
        self._live = np.zeros(0, dtype=bool)
        self._n_live = 0
        self._total_len = 0.0
        self._acc = np.zeros(0, dtype=np.float64)
        self._df_cache: dict[int, tuple[int, float, float]] = {}  # term id -> (df, idf, bound), this generation
        self._norm: np.ndarray | None = None  # k1 (1 - b + b dl / avgdl) of every row, this generation
        self._joined: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # term id -> base + delta postings, these parts
        self._joined_size = 0

    # ---------------------------------------------------------------- keeping up with SQLite

    def refresh(self, con: sqlite3.Connection, generation: int) -> None:
        """Bring the index to ``generation`` (the caller's read snapshot of SQLite)."""
        if self.generation == generation:
            return
        self._df_cache, self._norm = {}, None
        if self.generation is not None and self.generation < generation and log_reaches(con, self.generation):
            self._catch_up(con, self.generation)
        else:
            self._build(con)
        self.generation = generation

    def refresh_cost(self, con: sqlite3.Connection, generation: int, limit: int) -> int:
        """The rows ``refresh(con, generation)`` would read, counted up to ``limit + 1``: the rows added above
        the watermark plus those removed since its generation when it can catch up, else every row."""
        if self.generation == generation:
            return 0
        bound = [limit + 1]
        if self.generation is not None and self.generation < generation and log_reaches(con, self.generation):
            added = con.execute("SELECT count(*) FROM (SELECT 1 FROM chunks WHERE rid > ? LIMIT ?)",
                                [self.watermark, *bound]).fetchone()[0]
            removed = con.execute("SELECT count(*) FROM (SELECT 1 FROM chunk_tombstones WHERE gen >= ? LIMIT ?)",
                                  [self.generation, *bound]).fetchone()[0]
            return int(added) + int(removed)
        return int(con.execute("SELECT count(*) FROM (SELECT 1 FROM chunks LIMIT ?)", bound).fetchone()[0])

    def _reset(self) -> None:
        self._vocab = {}
        self._base_offsets = np.zeros(1, dtype=np.int64)
        self._base_rids = np.zeros(0, dtype=np.int64)
        self._base_tfs = np.zeros(0, dtype=np.float32)
        self._parts, self._word_tid = [], {}
        self._forget_joined()
        self._delta_postings = self._dead_since_base = 0
        self._base_id, self._base_watermark = None, 0
        self._doclen = np.zeros(0, dtype=np.float64)
        self._live = np.zeros(0, dtype=bool)
        self._n_live, self._total_len = 0, 0.0
        self._df_cache, self._norm = {}, None
        self.watermark = 0

    def _build(self, con: sqlite3.Connection) -> None:
        started = time.perf_counter()
        self.full_builds += 1
        self.unsaved_build = True
        self._reset()
        self._add_rows(con, above=0, merge=False)  # one sort at the end instead
        self.compact()
        log.info("built the keyword index over %d chunks in %.0f ms", self._n_live,
                 (time.perf_counter() - started) * 1000)

    def _catch_up(self, con: sqlite3.Connection, since: int) -> None:
        dead = sql_ints(con, "SELECT group_concat(rid) FROM chunk_tombstones WHERE gen >= ?", [since])
        dead = dead[dead < self._live.shape[0]]
        if dead.size:
            dead = np.unique(dead)
            dead = dead[self._live[dead]]
            self._live[dead] = False
            self._n_live -= int(dead.size)
            self._total_len -= float(self._doclen[dead].sum())
            self._doclen[dead] = 0.0
            self._dead_since_base += int(dead.size)
            self._df_cache, self._norm = {}, None
        self._add_rows(con, above=self.watermark)

    def _grow(self, bound: int) -> None:
        size = self._live.shape[0]
        if bound <= size:
            return
        size = max(bound, 1024, size + size // 2)
        live = np.zeros(size, dtype=bool)
        live[: self._live.shape[0]] = self._live
        doclen = np.zeros(size, dtype=np.float64)
        doclen[: self._doclen.shape[0]] = self._doclen
        self._live, self._doclen = live, doclen
        self._acc = np.zeros(size, dtype=np.float64)

    def _add_rows(self, con: sqlite3.Connection, *, above: int, merge: bool = True) -> None:
        """Tokenise the rows with ``rid > above`` into the delta segment, one batch at a time."""
        fields = [(k, w) for k, w in enumerate(self.weights) if w != 0]
        last = above
        while True:
            rows = con.execute(
                "SELECT rid, title, section, content FROM chunks WHERE rid > ? ORDER BY rid LIMIT ?",
                [last, _READ_BATCH],
            ).fetchall()
            if not rows:
                break
            self._grow(int(rows[-1][0]) + 1)
            self._add_batch(rows, fields, merge=merge)
            last = int(rows[-1][0])
        self.watermark = max(self.watermark, last)

    def _term_id(self, word: str) -> int:
        if word in STOPWORDS:
            tid = -1
        else:
            term = stem(word)
            tid = self._vocab.get(term, -1)
            if tid < 0:
                tid = self._vocab[term] = len(self._vocab)
        self._word_tid[word] = tid
        return tid

    def _add_batch(self, rows: list[tuple], fields: list[tuple[int, float]], *, merge: bool) -> None:
        get, term_id = self._word_tid.get, self._term_id
        flat_t: list[int] = []
        flat_i: list[int] = []
        flat_w: list[float] = []
        rids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        lengths = np.zeros(len(rows), dtype=np.float64)
        for i, row in enumerate(rows):
            for k, weight in fields:
                text = row[1 + k]
                if not text:
                    continue
                ws = words(text)
                lengths[i] += weight * len(ws)
                ids = [get(w, -2) for w in ws]
                if -2 in ids:
                    ids = [term_id(w) if t == -2 else t for w, t in zip(ws, ids)]
                flat_t.extend(ids)
                flat_i.extend([i] * len(ids))
                flat_w.extend([weight] * len(ids))
        self._live[rids] = True
        self._doclen[rids] = lengths
        self._n_live += len(rows)
        self._total_len += float(lengths.sum())
        self._df_cache, self._norm = {}, None  # the statistics changed
        t = np.array(flat_t, dtype=np.int64)
        keep = t >= 0
        if not keep.any():
            return
        t, d, w = t[keep], np.array(flat_i, dtype=np.int64)[keep], np.array(flat_w, dtype=np.float64)[keep]
        keys, inverse = np.unique(t * len(rows) + d, return_inverse=True)  # sorted by term, then row
        tf = np.bincount(inverse, weights=w).astype(np.float32)
        r = rids[keys % len(rows)]
        self._push_part((keys // len(rows)).astype(np.int32),  # 12 bytes a delta posting, not 20
                        r.astype(np.int32) if int(rids[-1]) < 2**31 else r, tf, merge=merge)

    def _push_part(self, t: np.ndarray, r: np.ndarray, f: np.ndarray, *, merge: bool) -> None:
        """Add a part (sorted by term, then row id) and merge while the last is not smaller than
        half the one before it: O(log) parts, each posting merged O(log) times."""
        self._parts.append((t, r, f))
        self._forget_joined()
        self._delta_postings += int(t.shape[0])
        while merge and len(self._parts) >= 2 and self._parts[-2][0].shape[0] <= 2 * self._parts[-1][0].shape[0]:
            b, a = self._parts.pop(), self._parts.pop()
            self._parts.append(_merge_sorted([a, b]))

    def needs_compaction(self) -> bool:
        base = max(int(self._base_rids.shape[0]), 1)
        return (self._delta_postings > COMPACT_FRACTION * base
                or self._dead_since_base > COMPACT_FRACTION * max(self._n_live, 1))

    def compact(self) -> None:
        """Merge the delta into the base segment and drop the postings of dead rows.

        The base and the delta parts hold ascending, disjoint row-id ranges (rows are added in rid
        order), so the merged order (term, then row id) is each term's postings taken part by part:
        a counting sort by term, scattered slice by slice into the new arrays (about 8 bytes a
        posting plus one slice of temporaries, instead of int64 copies and a lexsort of everything)."""
        n_terms = len(self._vocab)
        merged = _scatter_by_term(self._slices, n_terms, self._live) if self._rid_ranges_ascend() else None
        if merged is None:  # not expected; the general merge is kept for safety
            base_terms = np.repeat(np.arange(self._base_offsets.shape[0] - 1, dtype=np.int64),
                                   np.diff(self._base_offsets))
            t, r, f = _merge_sorted([(base_terms, self._base_rids, self._base_tfs), *self._parts],
                                    keep=self._live)
            small = r.size == 0 or int(r.max()) < 2**31
            offsets = np.zeros(n_terms + 1, dtype=np.int64)
            np.cumsum(np.bincount(t, minlength=n_terms), out=offsets[1:])
            merged = offsets, r.astype(np.int32 if small else np.int64), f  # 4 bytes a posting
        self._base_offsets, self._base_rids, self._base_tfs = merged
        self._parts = []
        self._forget_joined()
        self._delta_postings = self._dead_since_base = 0
        self._base_watermark = self.watermark

    def _rid_ranges_ascend(self) -> bool:
        prev = -1
        for r in [self._base_rids, *(p[1] for p in self._parts)]:
            if r.size:
                if int(r.min()) <= prev:
                    return False
                prev = int(r.max())
        return True

    def _slices(self):
        """(term ids, row ids, frequencies) of the base then the delta parts, in order, in slices
        of at most ``_SLICE`` postings (the base's term ids derived per slice from its offsets)."""
        offsets, n = self._base_offsets, int(self._base_rids.shape[0])
        for a in range(0, n, _SLICE):
            b = min(a + _SLICE, n)
            terms = np.searchsorted(offsets, np.arange(a, b, dtype=np.int64), "right") - 1
            yield terms, self._base_rids[a:b], self._base_tfs[a:b]
        for t, r, f in self._parts:
            for a in range(0, int(t.shape[0]), _SLICE):
                yield t[a : a + _SLICE], r[a : a + _SLICE], f[a : a + _SLICE]

    def _postings(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        """The term's (row ids, frequencies) of the base then the delta parts, ascending row ids."""
        got = self._joined.get(tid)
        if got is not None:
            return got
        parts_r, parts_f = [], []
        if tid < self._base_offsets.shape[0] - 1:
            a, b = int(self._base_offsets[tid]), int(self._base_offsets[tid + 1])
            if b > a:
                parts_r.append(self._base_rids[a:b])
                parts_f.append(self._base_tfs[a:b])
        for t, r, f in self._parts:
            a, b = int(np.searchsorted(t, tid, "left")), int(np.searchsorted(t, tid, "right"))
            if b > a:
                parts_r.append(r[a:b])
                parts_f.append(f[a:b])
        if not parts_r:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if len(parts_r) == 1:
            return parts_r[0], parts_f[0]
        joined = np.concatenate(parts_r), np.concatenate(parts_f)
        size = int(joined[0].shape[0])
        if size <= JOINED_POSTINGS:  # a frequent term is joined once per change of the delta, not per query
            if self._joined_size + size > JOINED_POSTINGS:
                self._forget_joined()
            self._joined[tid] = joined
            self._joined_size += size
        return joined

    def _forget_joined(self) -> None:
        self._joined, self._joined_size = {}, 0

    def _term_stats(self, tid: int, rids: np.ndarray, tfs: np.ndarray) -> tuple[int, float, float]:
        """(live document frequency, idf, the largest BM25 contribution of the term to a live row) at
        this generation's statistics, cached until they change (``refresh``, ``load``)."""
        stats = self._df_cache.get(tid)
        if stats is None:
            live = self._live[rids]
            df = int(np.count_nonzero(live))
            idf = math.log(1.0 + (self._n_live - df + 0.5) / (df + 0.5))
            if df == rids.shape[0]:
                bound = float(self._bm25(idf, tfs, rids).max())
            else:
                bound = float(self._bm25(idf, tfs[live], rids[live]).max()) if df else 0.0
            stats = self._df_cache[tid] = (df, idf, bound)
        return stats

    def search(self, text: str, allowed: AllowedSet | None, n: int) -> list[tuple[int, float]]:
        """The top ``n`` (row id, BM25 score) among the live rows in ``allowed`` (None: all), best
        first; ties by row id.

        Dynamic MaxScore, exact: terms are scored rarest first over all their postings until the
        ``n``-th best partial score (theta, kept up term by term) beats the sum of the upper bounds
        of the remaining terms (each the term's largest contribution to a live row): no other row
        can then reach the top ``n``, so the remaining terms only add to those candidates, by
        binary search in the term's sorted postings or, when the candidates outnumber them, by a
        walk over the postings; candidates whose partial score plus the remaining bounds falls
        below theta are no longer scored. Every row's score is summed in the same term order on
        every path, so scores and ties are those of scoring every posting.
        Only terms in more than ``FREQUENT_DF`` of the rows may be looked up.
        """
        if n <= 0 or self._n_live == 0 or (allowed is not None and allowed.count == 0):
            return []
        info = []
        for tid in dict.fromkeys(self._vocab[t] for t in query_terms(text) if t in self._vocab):
            rids, tfs = self._postings(tid)
            if rids.size == 0:
                continue
            df, idf, bound = self._term_stats(tid, rids, tfs)
            if df:
                info.append((df, tid, idf, bound, rids, tfs))
        if not info:
            return []
        info.sort(key=lambda x: (x[0], x[1]))  # rarest first: one summation order for every path
        # rest[i]: the most terms i.. can add to a row, summed in scoring order (so a row matched only
        # by them scores at most rest[i] in floating point too: addition is monotone)
        rest = [0.0] * (len(info) + 1)
        for i in range(len(info)):
            s = 0.0
            for x in info[i:]:
                s += x[3]
            rest[i] = s
        lookable = FREQUENT_DF * self._n_live
        acc = self._acc
        parts: list[np.ndarray] = []  # the candidate rows, each once
        cand: np.ndarray | None = None  # set once the remaining terms are only looked up
        top: np.ndarray | None = None  # n rows with the best partial scores (kept once theta is wanted)
        scored = 0.0  # the most the terms scored so far can have given a row
        for i, (df, _tid, idf, bound, rids, tfs) in enumerate(info):
            if cand is None and i and df > lookable and scored > rest[i]:
                if top is None:  # the n best rows so far; from here on kept up term by term
                    every = _concat(parts)
                    top = every[np.argpartition(acc[every], every.size - n)[every.size - n:]] \
                        if every.size >= n else None
                if top is not None and (theta := acc[top].min()) * (1.0 - _SLACK) > rest[i]:
                    cand = _concat(parts)
                    self.lookup_queries += 1
            if cand is None:  # every live, allowed posting of this term
                if df == rids.shape[0] and allowed is None:
                    r, tf = rids, tfs  # no dead posting (df counts the live ones)
                else:
                    live = self._live[rids]
                    if allowed is not None:
                        live &= allowed.take(rids)
                    r, tf = rids[live], tfs[live]
                if r.size:
                    now = acc[r]
                    parts.append(r[now == 0.0])  # rows first matched now (contributions are > 0)
                    new = now + self._bm25(idf, tf, r)
                    acc[r] = new
                    if top is not None:
                        top = _best(acc, top, r, new, n)
                scored += bound
                continue
            # a row below ``least`` (> 0) cannot reach theta any more (``_SLACK`` covers rounding):
            # it is not scored further (its partial score stays below the n best) or dropped
            least = theta * (1.0 - _SLACK) - rest[i]
            if cand.size > df:  # cheaper to walk the term's postings for the candidates among them
                now = acc[rids]
                hit = now >= least  # candidates (live, allowed, not dropped) within reach; the rest are 0
                r = rids[hit]
                if r.size:
                    new = now[hit] + self._bm25(idf, tfs[hit], r)
                    acc[r] = new
                    top = _best(acc, top, r, new, n)
                    theta = acc[top].min()
                continue
            # drop the candidates out of reach, look the others up (binary search in the postings)
            low = acc[cand] < least
            if low.any():
                acc[cand[low]] = 0.0
                cand = cand[~low]
            pos = np.minimum(np.searchsorted(rids, cand), rids.shape[0] - 1)
            hit = rids[pos] == cand
            r = cand[hit]
            if r.size:
                acc[r] += self._bm25(idf, tfs[pos[hit]], r)
            top = cand[np.argpartition(acc[cand], cand.size - n)[cand.size - n:]]
            theta = acc[top].min()
        if cand is None:
            cand = _concat(parts)
        if cand.size == 0:
            return []
        scores = acc[cand]
        acc[cand] = 0.0
        if cand.size > n:
            # the n best (ties at the cut broken by row id, the order of a full sort)
            cut = np.partition(scores, cand.size - n)[cand.size - n]
            sel = scores >= cut
            cand, scores = cand[sel], scores[sel]
        order = np.lexsort((cand, -scores))[:n]
        return [(int(cand[i]), float(scores[i])) for i in order]

    def _bm25(self, idf: float, tfs: np.ndarray, rids: np.ndarray) -> np.ndarray:
        """One term's BM25 contributions for rows ``rids`` with frequencies ``tfs``."""
        avgdl = self._total_len / self._n_live if self._total_len > 0 else 1.0
        k1, b = self.k1, self.b
        norm = self._norm
        if norm is None:  # each row's length normalisation, once per generation (8 bytes a row)
            norm = self._norm = k1 * (1.0 - b + b * (self._doclen / avgdl))
        # idf (tf (k1 + 1)) / (tf + norm) in float64, in place (the same values); float32 frequencies
        # are widened inside the operations (exactly), without a float64 copy of them first
        out = np.multiply(tfs, k1 + 1.0, dtype=np.float64)
        out *= idf
        den = norm[rids]
        den += tfs
        out /= den
        return out

    # ---------------------------------------------------------------- persistence

    def _params(self) -> dict:
        return {"weights": list(self.weights), "k1": self.k1, "b": self.b}

    def save(self, path: Path) -> None:
        """Persist the index at its generation, atomically: the base segment to ``path`` when it was
        rebuilt, is due for compaction or has no file (compacting first), else only the delta since
        the base to ``<path>.delta`` (a 1% change writes about 1%)."""
        if self.generation is None:
            return
        try:
            if self.unsaved_build or self.needs_compaction() or self._base_id is None or not path.exists():
                self.compact()
                self._base_id = uuid.uuid4().hex
                terms_blob = "\n".join(sorted(self._vocab, key=self._vocab.__getitem__)).encode("utf-8")
                _write_file(path, {**self._header(), "base_id": self._base_id}, terms_blob, {
                    "offsets": self._base_offsets, "rids": self._base_rids, "tfs": self._base_tfs,
                    "doclen": self._doclen, "live": self._live,
                })
                _unlink(_delta_path(path))
            else:
                self._save_delta(path)
            self.saved_generation = self.generation
            self.unsaved_build = False
        except OSError as exc:  # derived data: an unsaved file only costs a rebuild later
            log.warning("could not save the keyword index %s: %s", path, exc)

    def _header(self) -> dict:
        return {**self._params(), "generation": self.generation, "watermark": self.watermark,
                "n_live": self._n_live, "total_len": self._total_len}

    def _save_delta(self, path: Path) -> None:
        names = sorted(self._vocab, key=self._vocab.__getitem__)
        t, rids, tfs = _merge_sorted(self._parts) if self._parts else (np.zeros(0, np.int64),) * 2 + (np.zeros(0, np.float32),)
        tids, counts = np.unique(t, return_counts=True)
        new = np.arange(self._base_watermark + 1, self.watermark + 1, dtype=np.int64)
        dead = np.flatnonzero(~self._live[: self._base_watermark + 1])
        blob = "\n".join(names[i] for i in tids.tolist()).encode("utf-8")
        _write_file(_delta_path(path), {**self._header(), "base_id": self._base_id,
                                        "delta_postings": self._delta_postings,
                                        "dead_since_base": self._dead_since_base},
                    blob, {"counts": counts, "rids": rids, "tfs": tfs, "dead": dead,
                           "new_doclen": self._doclen[new], "new_live": self._live[new]})

    def load(self, path: Path) -> bool:
        """Read ``path`` (its postings memory-mapped) and the delta beside it; False (and logged) when
        the base is missing, corrupt or built with other parameters, the index then left as it was (a
        new one stays empty). An unusable delta is ignored (the index then catches up from the base's
        generation)."""
        if not path.exists():
            log.info("no keyword index at %s; building it from SQLite", path)
            return False
        try:
            header, blob, loaded = _read_file(path)
            if {k: header.get(k) for k in self._params()} != self._params():
                log.info("keyword index %s has other BM25 parameters; rebuilding it", path)
                return False
            vocab_list = blob.split("\n") if blob else []
            if len(vocab_list) + 1 != loaded["offsets"].shape[0] \
                    or int(loaded["offsets"][-1]) != loaded["rids"].shape[0] \
                    or loaded["rids"].shape[0] != loaded["tfs"].shape[0] \
                    or loaded["live"].shape[0] != loaded["doclen"].shape[0]:
                raise ValueError("inconsistent arrays")
        except Exception as exc:  # any unreadable file is rebuilt: it is derived data
            log.warning("keyword index %s is unreadable (%s); rebuilding it from SQLite", path, exc)
            return False
        self._reset()
        self._vocab = {t: i for i, t in enumerate(vocab_list)}
        self._base_offsets, self._base_rids, self._base_tfs = loaded["offsets"], loaded["rids"], loaded["tfs"]
        # the masks change with every write: private copies; the postings stay mapped
        self._doclen = np.array(loaded["doclen"], dtype=np.float64)
        self._live = np.array(loaded["live"], dtype=bool)
        self._acc = np.zeros(self._live.shape[0], dtype=np.float64)
        self._n_live, self._total_len = int(header["n_live"]), float(header["total_len"])
        self.watermark = self._base_watermark = int(header["watermark"])
        self.generation = self.saved_generation = int(header["generation"])
        self._base_id = str(header["base_id"])
        self._load_delta(_delta_path(path))
        return True

    def _load_delta(self, path: Path) -> None:
        if not path.exists():
            return
        try:
            header, blob, d = _read_file(path)
            if header.get("base_id") != self._base_id or {k: header.get(k) for k in self._params()} != self._params():
                return  # a delta of another base (left by a crash between the two renames)
            names = blob.split("\n") if blob else []
            if len(names) != d["counts"].shape[0] or int(d["counts"].sum()) != d["rids"].shape[0]:
                raise ValueError("inconsistent arrays")
            watermark = int(header["watermark"])
            if d["new_doclen"].shape[0] != watermark - self._base_watermark:
                raise ValueError("inconsistent arrays")
        except Exception as exc:
            log.warning("keyword delta %s is unreadable (%s); catching up from the base instead", path, exc)
            return
        self._grow(watermark + 1)
        self._live[d["dead"]] = False
        self._doclen[d["dead"]] = 0.0
        new = slice(self._base_watermark + 1, watermark + 1)
        self._live[new] = d["new_live"]
        self._doclen[new] = d["new_doclen"]
        tids = np.empty(len(names), dtype=np.int64)
        for i, name in enumerate(names):
            tid = self._vocab.get(name)
            if tid is None:
                tid = self._vocab[name] = len(self._vocab)
            tids[i] = tid
        t = np.repeat(tids, np.asarray(d["counts"], dtype=np.int64))
        if t.size:  # the file's terms are in the order of its own vocabulary: re-sort by our ids
            self._parts = [_merge_sorted([(t, np.asarray(d["rids"], dtype=np.int64), np.asarray(d["tfs"]))])]
            self._forget_joined()
        self._delta_postings = int(header["delta_postings"])
        self._dead_since_base = int(header["dead_since_base"])
        self._n_live, self._total_len = int(header["n_live"]), float(header["total_len"])
        self.watermark = watermark
        self.generation = self.saved_generation = int(header["generation"])


def _best(acc: np.ndarray, top: np.ndarray, rows: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` best rows by ``acc`` once ``rows`` (sorted, distinct) were scored (their scores
    ``scores``), given ``top``, the ``n`` best before: every other row stayed below each of those."""
    rows = rows[scores >= acc[top].min()]  # below all of ``top``: not among the n best
    pos = np.minimum(np.searchsorted(rows, top), max(rows.shape[0] - 1, 0))
    pool = np.concatenate([top[rows[pos] != top], rows]) if rows.size else top
    return pool[np.argpartition(acc[pool], pool.size - n)[pool.size - n:]]


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.zeros(0, dtype=np.int64)


def _scatter_by_term(slices, n_terms: int, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets, row ids, frequencies) of the live postings of ``slices()``, grouped by term in
    slice order: two passes, a count by term then a scatter; ``slices`` yields each term's postings
    in ascending row-id order when taken in turn."""
    counts = np.zeros(n_terms, dtype=np.int64)
    top = -1
    for t, r, _ in slices():
        alive = keep[r]
        counts += np.bincount(t[alive], minlength=n_terms)
        if r.size:
            top = max(top, int(r.max()))
    offsets = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    total = int(offsets[-1])
    out_r = np.empty(total, dtype=np.int32 if top < 2**31 else np.int64)  # 4 bytes a posting
    out_f = np.empty(total, dtype=np.float32)
    fill = offsets[:-1].copy()
    for t, r, f in slices():
        alive = keep[r]
        t, r, f = t[alive], r[alive], f[alive]
        if not t.size:
            continue
        c = np.bincount(t, minlength=n_terms)
        first = np.cumsum(c) - c  # where each term starts within this slice (sorted by term)
        pos = fill[t] + (np.arange(t.shape[0], dtype=np.int64) - first[t])
        out_r[pos] = r
        out_f[pos] = f
        fill += c
    return offsets, out_r, out_f


def _merge_sorted(parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], *,
                  keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate (term ids, row ids, frequencies) parts into one sorted by term then row id,
    keeping only the rows where ``keep[rid]`` (when given)."""
    t = np.concatenate([np.asarray(p[0], dtype=np.int64) for p in parts])
    r = np.concatenate([np.asarray(p[1], dtype=np.int64) for p in parts])
    f = np.concatenate([np.asarray(p[2], dtype=np.float32) for p in parts])
    if keep is not None and r.size:
        alive = keep[r]
        t, r, f = t[alive], r[alive], f[alive]
    order = np.lexsort((r, t))
    return t[order], r[order], f[order]


def _delta_path(path: Path) -> Path:
    return path.with_name(path.name + ".delta")


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _write_file(path: Path, header: dict, blob: bytes, arrays: dict[str, np.ndarray]) -> None:
    """One file: magic, header length, JSON header (with each array's dtype and length), ``blob``,
    then the raw arrays, each 64-byte aligned; written atomically (indexers/atomic.py)."""
    header = {**header, "blob_bytes": len(blob),
              "arrays": {k: [str(v.dtype), int(v.shape[0])] for k, v in arrays.items()}}
    head = json.dumps(header).encode("utf-8")
    with AtomicFile(path) as fh:
        fh.write(_MAGIC + len(head).to_bytes(8, "little") + head)
        fh.write(blob)
        for v in arrays.values():
            fh.write(b"\0" * ((-fh.tell()) % 64))
            fh.write(np.ascontiguousarray(v).tobytes())


def _read_file(path: Path) -> tuple[dict, str, dict[str, np.ndarray]]:
    """The header, blob and arrays (memory-mapped) of a ``_write_file`` file; ValueError when damaged."""
    with open(path, "rb") as fh:
        if fh.read(len(_MAGIC)) != _MAGIC:
            raise ValueError("bad header")
        head_len = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(head_len).decode("utf-8"))
        raw = fh.read(int(header["blob_bytes"]))
        if len(raw) != int(header["blob_bytes"]):
            raise ValueError("truncated")
        blob = raw.decode("utf-8")
        offset = fh.tell()
    size = path.stat().st_size
    arrays: dict[str, np.ndarray] = {}
    for name, (dtype, count) in header["arrays"].items():
        offset += (-offset) % 64
        nbytes = np.dtype(dtype).itemsize * int(count)
        if offset + nbytes > size:
            raise ValueError("truncated")
        arrays[name] = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(int(count),)) if count \
            else np.zeros(0, dtype=dtype)
        offset += nbytes
    return header, blob, arrays
