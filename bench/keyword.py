"""Keyword arm and allowed-set benchmark on a synthetic local index of N chunks.

    python bench/keyword.py --chunks 200000 [--dims 384] [--index-dir DIR] [--queries 200] [--json]

Builds (once, kept in ``--index-dir``) a synthetic corpus written straight through ``LocalIndex.upsert``
(not the ingest pipeline): chunks of ~120 words drawn from a Zipf(1.1) vocabulary of 50k words, 20%
public, the rest in one of 10 groups, ``filepath`` in one of 10 departments; random unit vectors.
Then prints p50/p95 search latency (index search only, top 10) for ``text`` with each keyword engine
(``bm25``: indexers/local_keyword.py, ``fts5``: SQLite FTS5), and ``vector``, ``hybrid``,
``hybrid_trimmed`` (groups ("g1", "g2"), public rows allowed) and ``hybrid_filter`` (trimmed and a
``filepath`` prefix filter) with the bm25 engine, each also with the arms one after the other
(``<mode>_sequential``, ``LocalIndex.parallel_arms = False``, interleaved query by query); the keyword index's cold build and load times;
the cost of a 1% change (re-upsert 1% of the chunks, then the next search catches up); peak RSS.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import peak_rss_mb  # noqa: F401  (puts the repo on sys.path)

from indexers.filters import prefix  # noqa: E402
from indexers.local_index import LocalIndex  # noqa: E402
from indexers.records import ALL_GROUPS, Chunk, SearchRequest  # noqa: E402

VOCAB = 50_000
WORDS_PER_CHUNK = 120
GROUPS = [f"g{i}" for i in range(10)]


def _vocab() -> list[str]:
    rng = np.random.default_rng(7)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    out, seen = [], set()
    while len(out) < VOCAB:
        w = "".join(rng.choice(letters, size=int(rng.integers(3, 10))))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def _zipf_ids(rng: np.random.Generator, size: int) -> np.ndarray:
    ranks = np.arange(1, VOCAB + 1, dtype=np.float64)
    p = ranks ** -1.1
    p /= p.sum()
    return rng.choice(VOCAB, size=size, p=p)


def _chunks(start: int, n: int, vocab: list[str], rng: np.random.Generator, tag: str = "") -> list[Chunk]:
    ids = _zipf_ids(rng, n * WORDS_PER_CHUNK).reshape(n, WORDS_PER_CHUNK)
    out = []
    for j in range(n):
        i = start + j
        text = " ".join(vocab[k] for k in ids[j])
        g = int(rng.integers(0, 10))
        groups = () if rng.random() < 0.2 else (GROUPS[g],)
        out.append(Chunk(id=f"doc{i // 10}#{i % 10}{tag}", source_id=f"doc{i // 10}", content=text, chunk_index=i % 10,
                         title=" ".join(vocab[k] for k in ids[j][:4]), filepath=f"dept{g}/doc{i // 10}.md",
                         groups=groups, source_chunks=10))
    return out


def _vectors(rng: np.random.Generator, n: int, dims: int) -> np.ndarray:
    v = rng.standard_normal((n, dims), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def build(index: LocalIndex, n: int, dims: int) -> float:
    vocab = _vocab()
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    batch = 5000
    for start in range(index.count(), n, batch):
        m = min(batch, n - start)
        index.upsert(_chunks(start, m, vocab, rng), vectors=_vectors(rng, m, dims))
        print(f"  {start + m} chunks written ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return time.perf_counter() - t0


def timed(index: LocalIndex, requests: list[SearchRequest]) -> dict:
    for r in requests[:5]:
        index.search(r)  # warm
    lat = []
    for r in requests:
        t0 = time.perf_counter()
        index.search(r)
        lat.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": round(statistics.median(lat), 2), "p95_ms": round(_pct(lat, 95), 2)}


def timed_arms(index: LocalIndex, requests: list[SearchRequest]) -> tuple[dict, dict]:
    """Hybrid latency with the arms concurrent (``parallel_arms``) and one after the other,
    interleaved query by query (the order alternating), so both see the same load."""
    lat: dict[bool, list[float]] = {True: [], False: []}
    for r in requests[:5]:
        index.search(r)  # warm
    for i, r in enumerate(requests):
        for flag in ((True, False) if i % 2 == 0 else (False, True)):
            index.parallel_arms = flag
            t0 = time.perf_counter()
            index.search(r)
            lat[flag].append((time.perf_counter() - t0) * 1000)
    index.parallel_arms = True
    return tuple({"p50_ms": round(statistics.median(v), 2), "p95_ms": round(_pct(v, 95), 2)}  # type: ignore[return-value]
                 for v in (lat[True], lat[False]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=200_000)
    ap.add_argument("--dims", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--index-dir", type=Path, default=None)
    ap.add_argument("--skip-fts5", action="store_true", help="do not time the FTS5 engine (slow at 1M)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    directory = args.index_dir or Path(tempfile.gettempdir()) / f"ondata-bench-keyword-{args.chunks}-{args.dims}"
    out: dict = {"chunks": args.chunks, "dims": args.dims, "writer": "LocalIndex.upsert (synthetic, not the pipeline)"}

    index = LocalIndex(directory, dimensions=args.dims, model_id="synthetic")
    index.ensure()
    if index.count() < args.chunks:
        out["write_s"] = round(build(index, args.chunks, args.dims), 1)
    index.keyword_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    index.flush()  # builds the keyword index from SQLite (and FAISS if stale), saves both
    out["flush_with_keyword_build_s"] = round(time.perf_counter() - t0, 1)
    index.close()

    index = LocalIndex(directory, dimensions=args.dims, model_id="synthetic")
    vocab = _vocab()
    rng = np.random.default_rng(99)
    qwords = _zipf_ids(rng, args.queries * 6).reshape(args.queries, 6)
    texts = [" ".join(vocab[k] for k in row) for row in qwords]
    qvecs = _vectors(rng, args.queries, args.dims)
    t0 = time.perf_counter()
    index.search(SearchRequest(text=texts[0], mode="text", groups=ALL_GROUPS))
    out["cold_first_text_query_s"] = round(time.perf_counter() - t0, 2)

    def reqs(mode: str, **kw) -> list[SearchRequest]:
        return [SearchRequest(text=t, vector=tuple(map(float, v)) if mode != "text" else None, mode=mode, top=10, **kw)
                for t, v in zip(texts, qvecs)]

    modes = {}
    index.keyword_engine = "bm25"
    modes["text"] = timed(index, reqs("text", groups=ALL_GROUPS))
    modes["vector"] = timed(index, reqs("vector", groups=ALL_GROUPS))
    for name, kw in (("hybrid", {"groups": ALL_GROUPS}), ("hybrid_trimmed", {"groups": ("g1", "g2")}),
                     ("hybrid_filter", {"groups": ("g1", "g2"), "filter": prefix("filepath", "dept1/")})):
        modes[name], modes[name + "_sequential"] = timed_arms(index, reqs("hybrid", **kw))
    if not args.skip_fts5:
        index.keyword_engine = "fts5"
        few = max(20, args.queries // 4)
        modes["text_fts5"] = timed(index, reqs("text", groups=ALL_GROUPS)[:few])
        modes["hybrid_trimmed_fts5"] = timed(index, reqs("hybrid", groups=("g1", "g2"))[:few])
        index.keyword_engine = "bm25"
    out["modes"] = modes

    # a 1% change: re-upsert 1% of the chunks (new row ids), then the next search catches up
    n1 = max(1, args.chunks // 100)
    crng = np.random.default_rng(5)
    changed = _chunks(0, n1, vocab, crng)
    t0 = time.perf_counter()
    index.upsert(changed, vectors=_vectors(crng, n1, args.dims))
    out["one_percent_upsert_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    index.search(SearchRequest(text=texts[1], mode="text", groups=("g1",)))
    out["one_percent_catch_up_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    index.flush()
    out["one_percent_flush_s"] = round(time.perf_counter() - t0, 2)
    out["keyword_full_builds_in_reader"] = index._keyword.full_builds if index._keyword else None
    out["keyword_lookup_queries"] = index._keyword.lookup_queries if index._keyword else None
    out["keyword_file_mb"] = round(index.keyword_path.stat().st_size / 1e6, 1) if index.keyword_path.exists() else None
    out["peak_rss_mb"] = round(peak_rss_mb(), 0)
    index.close()
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
