"""Ingestion benchmark: throughput, the share of wall time in the embedding model, peak RSS.

Runs each case in a fresh subprocess (so peak RSS is per case) with the real local embedder
(all-MiniLM-L6-v2) and a fresh index:
  - contoso: the six PDFs of ../shared/datasets/contoso/docs (263 pages)
  - scifact-1000 and scifact-all: SciFact abstracts, each one document (peak RSS must not grow
    with corpus size beyond the index itself: compare the two)
Prints one table. Usage: python bench/ingest.py [--cases contoso,scifact-1000,scifact-all]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, SeekableBeirCorpusSource, datasets_dir, peak_rss_mb, require  # noqa: E402


def run_case(name: str, index_dir: str, embedder_kind: str = "local") -> dict:
    from indexers.embedders.cache import CachedEmbedder, EmbeddingCache
    from indexers.embedders.local import SentenceTransformerEmbedder
    from indexers.local_index import LocalIndex
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.sources.local import LocalFolderSource

    ds = datasets_dir()
    if name == "contoso":
        source = LocalFolderSource(require(ds / "contoso" / "docs"))
    elif name.startswith("scifact"):
        limit = None if name == "scifact-all" else int(name.split("-")[1])
        source = SeekableBeirCorpusSource(require(ds / "scifact" / "corpus.jsonl.gz"), limit=limit)
    else:
        raise SystemExit(f"unknown case {name}")
    if embedder_kind == "hashing":  # isolates the pipeline's own memory and time from the model's
        from indexers.embedders.hashing import HashingEmbedder

        inner = HashingEmbedder(dimensions=384)
    else:
        inner = SentenceTransformerEmbedder()
    inner.embed_documents(["warm-up"])  # model load is a one-time cost, reported separately
    rss_model = peak_rss_mb()
    embedder = CachedEmbedder(inner, EmbeddingCache(Path(index_dir) / "embeddings.sqlite"))
    index = LocalIndex(index_dir, dimensions=embedder.dimensions, model_id=embedder.model_id)
    t0 = time.perf_counter()
    report = ingest(source, index=index, embedder=embedder, options=IngestOptions())
    wall = time.perf_counter() - t0
    index.close()
    model_s = report.stage_seconds.get("embed_model", 0.0)
    return {
        "case": name,
        "docs": report.documents_parsed,
        "pages": report.pages_parsed,
        "chunks": report.chunks_written,
        "failed": len(report.failed),
        "wall_s": wall,
        "model_s": model_s,
        "stages": report.stage_seconds,
        "rss_after_model_mb": rss_model,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="contoso,scifact-1000,scifact-all")
    ap.add_argument("--embedder", default="local", choices=("local", "hashing"),
                    help="local = all-MiniLM-L6-v2 (default); hashing = no model, to measure the pipeline alone")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--index", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.index, args.embedder)))
        return
    rows = []
    for case in args.cases.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run(
                [sys.executable, __file__, "--case", case, "--index", tmp, "--embedder", args.embedder],
                capture_output=True, text=True, cwd=ROOT,
            )
        if out.returncode != 0 or not out.stdout.strip():
            print(f"{case}: failed\n{out.stderr[-2000:]}")
            continue
        last = out.stdout.strip().splitlines()[-1]
        if last.startswith("SKIP"):
            print(last)
            continue
        rows.append(json.loads(last))
    print()
    print(f"{'case':<14}{'docs':>7}{'pages':>7}{'chunks':>8}{'wall s':>9}{'docs/s':>8}{'pages/s':>9}"
          f"{'chunks/s':>9}{'model %':>9}{'other %':>9}{'RSS MB':>8}")
    for r in rows:
        other = r["wall_s"] - r["model_s"]
        print(f"{r['case']:<14}{r['docs']:>7}{r['pages']:>7}{r['chunks']:>8}{r['wall_s']:>9.1f}"
              f"{r['docs'] / r['wall_s']:>8.1f}{r['pages'] / r['wall_s']:>9.1f}{r['chunks'] / r['wall_s']:>9.1f}"
              f"{100 * r['model_s'] / r['wall_s']:>8.1f}%{100 * other / r['wall_s']:>8.1f}%{r['peak_rss_mb']:>8.0f}")
    print()
    for r in rows:
        st = ", ".join(f"{k} {v:.1f}s" for k, v in r["stages"].items())
        print(f"{r['case']}: stages: {st}; RSS after model load {r['rss_after_model_mb']:.0f} MB, "
              f"failed {r['failed']}")
    print(f"\nembedder: {args.embedder}. 'model %' = time inside the embedding model; 'other %' = everything else "
          "(listing, parsing, chunking, SQLite/FAISS writes). Target: other <= 10%.")


if __name__ == "__main__":
    main()
