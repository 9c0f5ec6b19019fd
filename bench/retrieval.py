"""Retrieval benchmark: SciFact (BEIR) nDCG@10 / R@100 and search latency per mode; contoso page recall@5;
and the strictness calibration on data/samples.

    python bench/retrieval.py           [--index-dir DIR]   (scifact, then contoso)
    python bench/retrieval.py scifact   [--index-dir DIR] [--limit-queries N] [--keyword-engine bm25|fts5]
    python bench/retrieval.py contoso   [--index-dir DIR]
    python bench/retrieval.py calibrate [--index-dir DIR]

SciFact: each abstract is one chunk (title in the title field, title + text embedded) in a LocalIndex
with the local all-MiniLM-L6-v2 embedder; the 300 test queries run in text, vector and hybrid mode;
nDCG@10 and R@100 by ``ir_measures``; latency is the index search only (query embeddings are computed
beforehand), at top=10. Contoso: the PDFs are ingested with the normal pipeline; a question counts the
fraction of its gold ``[File.pdf#page=N]`` citations found among the top 5 hits, exactly and within ±1
page. Indexes are kept in ``--index-dir`` (default: a folder under the system temp dir) and reused.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, datasets_dir, require  # noqa: F401  (puts the repo on sys.path)

from indexers.records import Chunk, SearchRequest, chunk_id_for  # noqa: E402

MODES = ("text", "vector", "hybrid")


def _embedder(cache_dir: Path):
    from ondata.settings import Settings
    from ondata.wiring import build_embedder

    return build_embedder(Settings(index_dir=cache_dir, embedder="local"))


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for h in header:
        t.add_column(h, justify="right" if h not in ("mode", "case") else "left")
    for r in rows:
        t.add_row(*r)
    Console().print(t)


# ---------------------------------------------------------------- SciFact


def scifact(index_dir: Path, *, limit_queries: int | None = None, rrf_k: int | None = None,
            weights: tuple[float, float, float] | None = None, qrels_name: str = "test.tsv",
            keyword_engine: str | None = None) -> dict:
    import ir_measures
    from ir_measures import R, nDCG

    from indexers.local_index import LocalIndex

    base = require(datasets_dir() / "scifact")
    index_dir.mkdir(parents=True, exist_ok=True)
    embedder = _embedder(index_dir)
    index = LocalIndex(index_dir / "scifact", dimensions=embedder.dimensions, model_id=embedder.model_id)
    index.ensure()
    if rrf_k is not None:
        index.rrf_k = rrf_k
    if weights is not None:
        index.bm25_weights = weights
    if keyword_engine is not None:
        index.keyword_engine = keyword_engine
    with gzip.open(base / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        docs = [json.loads(line) for line in fh]
    if index.count() != len(docs):
        t0 = time.perf_counter()
        for start in range(0, len(docs), 256):
            batch = docs[start:start + 256]
            chunks = [Chunk(id=chunk_id_for(d["_id"], 0, d["text"]), source_id=d["_id"], content=d["text"], chunk_index=0,
                            title=d.get("title", ""), source_chunks=1) for d in batch]
            vectors = embedder.embed_documents([f"{d.get('title', '')}\n{d['text']}" for d in batch])
            index.upsert(chunks, vectors=vectors)
        index.flush() if hasattr(index, "flush") else None
        print(f"indexed {len(docs)} abstracts in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    qrels_rows = (base / "qrels" / qrels_name).read_text(encoding="utf-8").splitlines()[1:]
    qrels = [ir_measures.Qrel(q, d, int(s)) for q, d, s in (r.split("\t") for r in qrels_rows if r.strip())]
    wanted = {q.query_id for q in qrels}
    queries = {}
    for line in (base / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["_id"] in wanted:
            queries[rec["_id"]] = rec["text"]
    qids = sorted(queries)[: limit_queries or None]
    vectors = {q: tuple(float(x) for x in embedder.embed_query(queries[q])) for q in qids}

    results = {}
    for mode in MODES:
        run = []
        for q in qids:
            hits = index.search(SearchRequest(text=queries[q], vector=vectors[q] if mode != "text" else None, mode=mode, top=100))
            run.extend(ir_measures.ScoredDoc(q, h.chunk.source_id, float(100 - i)) for i, h in enumerate(hits))
        agg = ir_measures.calc_aggregate([nDCG @ 10, R @ 100], [x for x in qrels if x.query_id in set(qids)], run)
        lat = []
        for q in qids:
            req = SearchRequest(text=queries[q], vector=vectors[q] if mode != "text" else None, mode=mode, top=10)
            t0 = time.perf_counter()
            index.search(req)
            lat.append((time.perf_counter() - t0) * 1000)
        results[mode] = {"ndcg@10": agg[nDCG @ 10], "r@100": agg[R @ 100], "p50_ms": statistics.median(lat), "p95_ms": _pct(lat, 95)}
    index.close()
    return {"queries": len(qids), "docs": len(docs), "modes": results}


# ---------------------------------------------------------------- contoso

_CIT = re.compile(r"\[([^\[\]]+?\.pdf)#page=(\d+)\]")


PAGE_BOUNDED = False  # --page-bounded: chunks never cross a page (ChunkingConfig.page_bounded)


def _ingest(docs: Path, index_dir: Path):
    from ondata.settings import Settings
    from ondata.wiring import build_embedder, build_index, build_source
    from pipelines.chunking import ChunkingConfig
    from pipelines.ingest import IngestOptions, ingest

    settings = Settings(index_dir=index_dir, embedder="local")
    embedder = build_embedder(settings)
    index = build_index(settings, embedder)
    options = IngestOptions(chunking=ChunkingConfig(page_bounded=PAGE_BOUNDED))
    report = ingest(build_source(settings, docs), index=index, embedder=embedder, options=options)
    if report.failed:
        print(f"warning: {len(report.failed)} documents failed to ingest", file=sys.stderr)
    return index, embedder


def contoso(index_dir: Path) -> dict:
    from retrieval.retriever import Retriever

    base = require(datasets_dir() / "contoso")
    index, embedder = _ingest(base / "docs", index_dir / "contoso")
    retriever = Retriever(index, embedder)
    items = [json.loads(l) for l in (base / "ground_truth.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]
    out = {}
    for mode in MODES:
        exact, near, n = 0.0, 0.0, 0
        for it in items:
            gold = {(f, int(p)) for f, p in _CIT.findall(it["truth"])}
            if not gold:
                continue
            hits = retriever.search(it["question"], top=5, mode=mode)
            pages = [(Path(h.chunk.source_id).name, h.chunk.page_start or 0, h.chunk.page_end or h.chunk.page_start or 0) for h in hits]
            e = sum(any(f == hf and lo <= p <= hi for hf, lo, hi in pages) for f, p in gold) / len(gold)
            m = sum(any(f == hf and lo - 1 <= p <= hi + 1 for hf, lo, hi in pages) for f, p in gold) / len(gold)
            exact, near, n = exact + e, near + m, n + 1
        out[mode] = {"recall@5": exact / n, "recall@5±1": near / n, "questions": n}
    return out


# ---------------------------------------------------------------- strictness calibration


def calibrate(index_dir: Path) -> list[list[str]]:
    from retrieval.retriever import Retriever
    from retrieval.strictness import apply_strictness

    index, embedder = _ingest(ROOT / "data" / "samples" / "docs", index_dir / "samples")
    retriever = Retriever(index, embedder)
    items = [json.loads(l) for l in (ROOT / "data" / "samples" / "qa.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]

    def is_gold(chunk, golds):
        for g in golds:
            name, _, page = g.partition("#page=")
            if chunk.source_id == name and (not page or (chunk.page_start or 0) <= int(page) <= (chunk.page_end or chunk.page_start or 0)):
                return True
        return False

    per_query = [(q, retriever.search(q["question"], top=10, mode="hybrid")) for q in items if q["answerable"]]
    rows = []
    for s in range(1, 6):
        g_kept = g_all = o_kept = o_all = 0
        for q, hits in per_query:
            kept, _ = apply_strictness(hits, strictness=s)
            ids = {h.chunk.id for h in kept}
            for h in hits:
                if is_gold(h.chunk, q["citations"]):
                    g_all += 1
                    g_kept += h.chunk.id in ids
                else:
                    o_all += 1
                    o_kept += h.chunk.id in ids
        rows.append([str(s), f"{g_kept}/{g_all} = {g_kept / g_all:.1%}", f"{o_kept}/{o_all} = {o_kept / o_all:.1%}"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="all", choices=["all", "scifact", "contoso", "calibrate"],
                    help="which benchmark (default: all = scifact, then contoso)")
    ap.add_argument("--index-dir", type=Path, default=Path(tempfile.gettempdir()) / "ondata-bench-retrieval")
    ap.add_argument("--limit-queries", type=int, default=None)
    ap.add_argument("--rrf-k", type=int, default=None)
    ap.add_argument("--bm25-weights", type=str, default=None, help="title,section,content (default 2,1,1)")
    ap.add_argument("--keyword-engine", choices=["bm25", "fts5"], default=None,
                    help="keyword arm: bm25 (derived in-memory index, default) or fts5 (SQLite FTS5)")
    ap.add_argument("--qrels", default="test.tsv", help="qrels file (tune on train.tsv, report on test.tsv)")
    ap.add_argument("--page-bounded", action="store_true", help="contoso/calibrate: chunks never cross a page")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    global PAGE_BOUNDED
    PAGE_BOUNDED = args.page_bounded
    for what in (("scifact", "contoso") if args.what == "all" else (args.what,)):
        run(what, args)


def run(what: str, args: argparse.Namespace) -> None:
    if what == "scifact":
        w = tuple(float(x) for x in args.bm25_weights.split(",")) if args.bm25_weights else None
        res = scifact(args.index_dir, limit_queries=args.limit_queries, rrf_k=args.rrf_k, weights=w, qrels_name=args.qrels,
                      keyword_engine=args.keyword_engine)
        if args.json:
            print(json.dumps(res, indent=2))
        _table(f"SciFact ({res['queries']} queries from {args.qrels}, {res['docs']} abstracts, all-MiniLM-L6-v2)",
               ["mode", "nDCG@10", "R@100", "p50 ms", "p95 ms"],
               [[m, f"{v['ndcg@10']:.4f}", f"{v['r@100']:.4f}", f"{v['p50_ms']:.2f}", f"{v['p95_ms']:.2f}"] for m, v in res["modes"].items()])
    elif what == "contoso":
        res = contoso(args.index_dir)
        if args.json:
            print(json.dumps(res, indent=2))
        _table("contoso page-level recall@5", ["mode", "recall@5 exact", "recall@5 ±1 page", "questions"],
               [[m, f"{v['recall@5']:.3f}", f"{v['recall@5±1']:.3f}", str(v["questions"])] for m, v in res.items()])
    else:
        _table("strictness calibration on data/samples (hybrid, top 10)", ["strictness", "gold hits kept", "other hits kept"],
               calibrate(args.index_dir))


if __name__ == "__main__":
    main()
