"""Answer-quality loop for the extractive answerer: cached grounded requests, re-answered in seconds.

    python bench/answers.py                      [--index-dir DIR] [--refresh] [--page-bounded]
    python bench/answers.py --set samples --param min_support=0.35 --param follow_ratio=0.7
    python bench/answers.py --sweep "min_support=0.3;0.35;0.4" --set samples --set unanswerable:tune
    python bench/answers.py --bm25-weights 1,1,1   # the search with other BM25 column weights

The question sets (``--set``, repeatable; default all):

- ``contoso``: the Contoso public 50 (``../shared/datasets/contoso/ground_truth.jsonl``);
- ``unanswerable[:tune|:heldout]``: ``data/eval/contoso_unanswerable.jsonl`` (35 questions about the
  Contoso documents that they do not answer), or one of its two splits;
- ``samples``: ``data/samples/qa.jsonl`` (46 answerable, 7 unanswerable).

The documents are ingested once with the normal pipeline (local profile, all-MiniLM-L6-v2) into
``--index-dir``; every question's grounded request (``retrieval.answer.prepare_grounded_request``:
hybrid search, the re-ranking of ``retrieval.rerank`` (``--rerank N`` candidates, 0: off), strictness 3,
top 5 — what ``ondata eval run`` does) is cached there, so re-running
with other answerer parameters only re-answers. ``--refresh`` rebuilds the index and the cache
(needed after a change to ingestion or search). Printed per set: page recall@5 (exact / ±1), and
from the answers ``citations_matched`` (exact / ±1 page, the reference app's definition, via
``eval.metrics.citations``), false abstention, abstention on unanswerable questions, and the p95 of
retrieval + answer latency (search and re-ranking from the cache's timings; the answer timed here).
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, datasets_dir  # noqa: F401  (puts the repo on sys.path)

SETS = ("contoso", "unanswerable", "samples")


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _corpus(name: str) -> tuple[Path, list[Any]]:
    """(documents folder, QA items) of a question set."""
    from eval.datasets import load_qa

    if name == "samples":
        return ROOT / "data" / "samples" / "docs", load_qa(ROOT / "data" / "samples" / "qa.jsonl")
    base = datasets_dir() / "contoso"
    if not base.exists():
        print(f"SKIP: {base} is absent (set ONDATA_SHARED_DATASETS to the shared datasets folder)")
        sys.exit(0)
    if name == "contoso":
        return base / "docs", load_qa(base / "ground_truth.jsonl")
    return base / "docs", load_qa(ROOT / "data" / "eval" / "contoso_unanswerable.jsonl")


def _settings(index_dir: Path):
    from ondata.settings import Settings

    return Settings(index_dir=index_dir, embedder="local")


def build_cache(name: str, index_dir: Path, *, refresh: bool, page_bounded: bool,
                rerank: int | None = None,
                bm25_weights: tuple[float, float, float] | None = None) -> tuple[list[tuple[Any, Any, dict]], Any]:
    """[(item, grounded request, timings)] of a set, and the embedder; ingests and searches when not cached.

    ``bm25_weights`` (title, section, content) overrides ``LocalIndex.bm25_weights`` for the search
    only (the keyword index is derived, so the ingested documents are reused); its requests are
    cached apart."""
    from ondata.wiring import build_embedder, build_index, build_source
    from pipelines.chunking import ChunkingConfig
    from pipelines.ingest import IngestOptions, ingest
    from retrieval.answer import prepare_grounded_request
    from retrieval.rerank import RERANK_CANDIDATES
    from retrieval.retriever import Retriever

    docs, items = _corpus(name)
    corpus = "samples" if name == "samples" else "contoso"
    folder = index_dir / (corpus + ("-paged" if page_bounded else ""))
    rerank = RERANK_CANDIDATES if rerank is None else rerank
    tag = "" if bm25_weights is None else "-bm25_" + "_".join(f"{w:g}" for w in bm25_weights)
    cache = folder / f"requests-{name}-rerank{rerank}{tag}.pkl"
    settings = _settings(folder)
    embedder = build_embedder(settings)
    if cache.exists() and not refresh:
        with cache.open("rb") as fh:
            return pickle.load(fh), embedder
    marker = folder / ".ingested"
    if refresh and not getattr(build_cache, "_refreshed", set()).__contains__(folder):
        shutil.rmtree(folder, ignore_errors=True)
        build_cache._refreshed = getattr(build_cache, "_refreshed", set()) | {folder}  # type: ignore[attr-defined]
    folder.mkdir(parents=True, exist_ok=True)
    index = build_index(settings, embedder)
    if bm25_weights is not None:
        index.bm25_weights = bm25_weights
    if not marker.exists():
        t0 = time.perf_counter()
        options = IngestOptions(chunking=ChunkingConfig(page_bounded=page_bounded))
        report = ingest(build_source(settings, docs), index=index, embedder=embedder, options=options)
        if report.failed:
            print(f"warning: {len(report.failed)} documents failed to ingest", file=sys.stderr)
        marker.write_text("ok")
        print(f"ingested {docs} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    retriever = Retriever(index, embedder)
    rows = []
    for item in items:
        timings: dict[str, float] = {}
        req = prepare_grounded_request(item.question, retriever=retriever, top=5, top_n_documents=5, strictness=3,
                                       groups=() if item.groups is None else item.groups, timings=timings,
                                       rerank_candidates=rerank)
        rows.append((item, req, timings))
    close = getattr(index, "close", None)
    if callable(close):
        close()
    with cache.open("wb") as fh:
        pickle.dump(rows, fh)
    return rows, embedder


def evaluate(rows, answerer, *, split: str | None = None) -> dict[str, Any]:
    """The answer metrics of ``answerer`` over cached rows (no groundedness scoring)."""
    from dataclasses import replace

    from eval.metrics import citations as C
    from eval.metrics.retrieval import retrieval_scores
    from eval.scoring import answer_record

    cm, cm1, fa, ab, rec, rec1, lat, own = [], [], [], [], [], [], [], []
    per = []
    for item, req, timings in rows:
        if split and item.extra.get("split") != split:
            continue
        t0 = time.perf_counter()
        answer = answerer.answer(req)
        ms = (time.perf_counter() - t0) * 1000
        own.append(ms)
        lat.append(ms + timings.get("rewrite", 0) + timings.get("search", 0) + timings.get("rerank", 0)
                   + timings.get("prompt", 0))
        answer = replace(answer, retrieved=tuple(req.retrieved()))
        r = answer_record(item, answer, k=5)
        if item.answerable:
            fa.append(float(answer.abstained))
            response = "" if answer.abstained else C.render_claims(r["claims"], r["citations"])
            m = C.citations_matched(item.truth, response)
            if m is not None:
                cm.append(m)
                cm1.append(C.citations_matched_near(item.truth, response, tolerance=1))
            s = retrieval_scores(r["gold"], r["hits"], k=5)
            if s:
                rec.append(s["page_recall@5"])
                rec1.append(s["page1_recall@5"])
            per.append({"q": item.question, "abstained": answer.abstained, "cm": m, "answer": answer.content[:300],
                        "truth": item.truth[-120:], "rec1": s["page1_recall@5"] if s else None})
        else:
            ab.append(float(answer.abstained))
            per.append({"q": item.question, "abstained": answer.abstained, "answer": answer.content[:300]})

    def mean(xs):
        return sum(xs) / len(xs) if xs else None

    return {"questions": len(lat), "page_recall@5": mean(rec), "page1_recall@5": mean(rec1),
            "citations_matched": mean(cm), "citations_matched_pm1": mean(cm1),
            "false_abstention": mean(fa), "answerable": len(fa), "abstention_unanswerable": mean(ab),
            "unanswerable": len(ab), "latency_p95_ms": _pct(lat, 95), "answer_p95_ms": _pct(own, 95), "per_question": per}


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index-dir", type=Path, default=Path(tempfile.gettempdir()) / "ondata-bench-answers")
    ap.add_argument("--set", action="append", dest="sets", help="contoso | unanswerable[:tune|:heldout] | samples")
    ap.add_argument("--refresh", action="store_true", help="re-ingest and re-search (after an ingestion/search change)")
    ap.add_argument("--page-bounded", action="store_true", help="chunks never cross a page (ChunkingConfig.page_bounded)")
    ap.add_argument("--rerank", type=int, default=None,
                    help="candidates re-ranked before the top 5 (default retrieval.rerank.RERANK_CANDIDATES; 0: off)")
    ap.add_argument("--bm25-weights", type=str, default=None,
                    help="title,section,content BM25 column weights for the search (default LocalIndex.bm25_weights)")
    ap.add_argument("--no-embedder", action="store_true", help="the answerer without the embedding model")
    ap.add_argument("--param", action="append", default=[], help="NAME=VALUE (JSON) for ExtractiveAnswerer")
    ap.add_argument("--sweep", action="append", default=[], help="NAME=V1;V2;... (JSON values): every combination")
    ap.add_argument("--show", type=int, default=0, help="print this many failing questions per set")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from indexers.text import named_entities, verb_stems
    from retrieval.extractive import ExtractiveAnswerer

    verb_stems("Is the tagger loaded?")  # model load is not answer latency (the spaCy tagger loads on first use)
    named_entities("Is the recogniser loaded?")  # nor the entity recogniser's
    sets = args.sets or ["contoso", "unanswerable:tune", "unanswerable:heldout", "samples"]
    params = dict(p.split("=", 1) for p in args.param)
    params = {k: _value(v) for k, v in params.items()}
    grid = [(k, [_value(x) for x in v.split(";")]) for k, v in (s.split("=", 1) for s in args.sweep)]
    weights = tuple(float(x) for x in args.bm25_weights.split(",")) if args.bm25_weights else None
    loaded: dict[str, Any] = {}
    embedder = None
    for s in sets:
        name = s.split(":")[0]
        if name not in loaded:
            loaded[name], embedder = build_cache(name, args.index_dir, refresh=args.refresh,
                                                   page_bounded=args.page_bounded, rerank=args.rerank,
                                                   bm25_weights=weights)
    combos = [dict(zip([k for k, _ in grid], vals)) for vals in itertools.product(*[v for _, v in grid])] or [{}]
    for combo in combos:
        kw = {**params, **combo}
        for key in ("weights", "support_weights"):
            if isinstance(kw.get(key), list):
                kw[key] = tuple(kw[key])
        answerer = ExtractiveAnswerer(embedder=None if args.no_embedder else embedder, **kw)
        print(f"== {json.dumps(kw) if kw else 'defaults'}")
        for s in sets:
            name, _, split = s.partition(":")
            res = evaluate(loaded[name], answerer, split=split or None)
            per = res.pop("per_question")
            if args.json:
                print(json.dumps({"set": s, **res}))
                continue
            fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
            line = f"  {s:22s} n={res['questions']:3d}"
            if res["answerable"]:
                line += (f"  recall@5 {fmt(res['page_recall@5'])}/{fmt(res['page1_recall@5'])}"
                         f"  cm {fmt(res['citations_matched'])}/{fmt(res['citations_matched_pm1'])}"
                         f"  FA {fmt(res['false_abstention'])} ({round(res['false_abstention'] * res['answerable'])}/{res['answerable']})")
            if res["unanswerable"]:
                line += (f"  abstained {fmt(res['abstention_unanswerable'])}"
                         f" ({round(res['abstention_unanswerable'] * res['unanswerable'])}/{res['unanswerable']})")
            line += f"  p95 {res['latency_p95_ms']:.0f} ms (answer {res['answer_p95_ms']:.0f})"
            print(line)
            shown = 0
            for p in per:
                bad = p.get("cm") is not None and p["cm"] < 1 if "cm" in p else not p["abstained"]
                if bad and shown < args.show:
                    shown += 1
                    print(f"    - {p['q']}\n      A: {p['answer']}\n      T: {p.get('truth', '')}  rec±1={p.get('rec1')}")


if __name__ == "__main__":
    main()
