"""Scale benchmark: a synthetic corpus of N chunks through the real pipeline, re-runs, search latency, recall, memory.

    .venv/bin/python bench/scale.py --chunks 10000 [--dims 384] [--json] [--modes text,vector,hybrid,...]
                                    [--queries 200] [--keep DIR | --reuse DIR] [--path auto|pipeline|fast]

What it does (every phase in a fresh subprocess, so each peak RSS is that phase's own):

1. corpus: N text files of one chunk each under ``DIR/corpus`` (1,000 per folder). Text is SciFact
   sentences recombined (5-8 per file) when ``$ONDATA_SHARED_DATASETS/scifact`` (default
   ../shared/datasets) is there, else Zipf-distributed words over a 30k-word vocabulary. 80% of the
   files have a sidecar (``<file>.meta.json``) with 1-2 of 20 ACL groups (Zipf) and a ``dept``
   (one of 10); the other 20% are public. Seeded: the same N gives the same corpus.
2. full ingest: ``pipelines.ingest.ingest`` (folder source -> engine -> hashing embedder behind the
   embedding cache -> local index), exactly what ``ondata ingest DIR/corpus --embedder hashing`` runs.
   ``--path fast`` (the default ``auto`` picks it for N >= 200k) builds the same index without the
   per-document engine: the same folder source lists the files, ``pipelines.engine.prepare_document``
   parses and chunks them, the hashing embedder embeds, and ``LocalIndex.upsert`` writes the chunk
   records in large batches (the embedding cache is filled the same way); the result says which path
   ran. Re-runs always go through the real pipeline.
3. no-op re-run (nothing changed), then a 1% re-run (1% of the files get one sentence appended).
4. search: a fixed seeded set of queries (SciFact's claims, else sampled words), embedded before
   timing; per mode ``p50_ms``/``p95_ms`` over the queries (top 10, after 5 warm-up queries):
   ``text``, ``vector``, ``hybrid``, ``hybrid_trimmed`` (a caller with 2 of the 20 groups: it sees
   the public 20% plus its groups' share) and ``hybrid_filtered`` (the OData filter
   ``metadata/dept eq 'd3'`` with trimming off). ``vector_recall_at_10``: the index's vector arm
   against exact inner-product search (FAISS ``IndexFlatIP``) over the same stored vectors
   (``vector_recall_at_10()`` takes any search function, for approximate indexes to hook in).
   The index is opened with the vector settings of the environment (``ONDATA_VECTOR_INDEX``,
   ``ONDATA_IVF_*``, ``ONDATA_HNSW_*``, ``ONDATA_VECTOR_EXACT_BELOW``); ``vector_index`` says which
   kind was searched, with its parameters.
5. cold first query: a fresh process opens the index and runs one hybrid query (imports excluded,
   reported apart as ``cold_import_s``).

Prints one JSON object (``--json``: only that) with the figures, ``disk_mb`` (index folder) and
``cache_mb`` (embedding cache), the machine load (``os.getloadavg``) before each phase, the git head
and the ingest path used. ``--keep DIR`` keeps the corpus and index in DIR; ``--reuse DIR`` measures
an index kept earlier (no ingest unless ``--reruns`` is given; the re-runs change that corpus).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, datasets_dir, peak_rss_mb  # noqa: E402

MODES = ("text", "vector", "hybrid", "hybrid_trimmed", "hybrid_filtered")
N_GROUPS = 20
N_DEPTS = 10
GROUPED_SHARE = 0.8
CALLER_GROUPS = ("g01", "g07")
FILTER = "metadata/dept eq 'd3'"
FAST_PATH_FROM = 200_000
PER_FOLDER = 1000
TOP = 10
WARMUP = 5


# --------------------------------------------------------------------------- corpus

def _sentences() -> list[str] | None:
    path = datasets_dir() / "scifact" / "corpus.jsonl.gz"
    if not path.exists():
        return None
    out: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            text = json.loads(line).get("text", "")
            for s in text.replace("\n", " ").split(". "):
                s = s.strip()
                if 40 <= len(s) <= 300:
                    out.append(s.rstrip(".") + ".")
    return out


class _Zipf:
    """Sentences of Zipf-distributed pseudo-words (when SciFact is absent)."""

    def __init__(self, rng: random.Random, vocab: int = 30_000) -> None:
        letters = "etaoinshrdlucmfwypvbgkjqxz"
        self.words = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(vocab)]
        weights = [1.0 / (r + 1) ** 1.07 for r in range(vocab)]
        self.cum = list(__import__("itertools").accumulate(weights))
        self.rng = rng

    def sentence(self) -> str:
        ws = self.rng.choices(self.words, cum_weights=self.cum, k=self.rng.randint(10, 28))
        return " ".join(ws).capitalize() + "."


def _file_path(root: Path, i: int) -> Path:
    return root / f"f{i // PER_FOLDER:04d}" / f"doc{i:07d}.txt"


def build_corpus(root: Path, n: int, *, seed: int = 16) -> dict:
    """Write the N files (and sidecars) under root; returns what was used."""
    rng = random.Random(seed)
    sents = _sentences()
    zipf = None if sents else _Zipf(rng)
    group_w = [1.0 / (g + 1) for g in range(N_GROUPS)]
    for i in range(n):
        p = _file_path(root, i)
        if i % PER_FOLDER == 0:
            p.parent.mkdir(parents=True, exist_ok=True)
        k = rng.randint(5, 8)
        body = [rng.choice(sents) for _ in range(k)] if sents else [zipf.sentence() for _ in range(k)]  # type: ignore[union-attr]
        title = " ".join(body[0].split()[:6]).rstrip(".,;:")
        p.write_text(f"{title}\n\n" + " ".join(body) + "\n", encoding="utf-8")
        if rng.random() < GROUPED_SHARE:
            groups = sorted({f"g{g:02d}" for g in rng.choices(range(N_GROUPS), weights=group_w, k=rng.randint(1, 2))})
            side = {"title": title, "groups": groups, "dept": f"d{rng.randrange(N_DEPTS)}"}
            p.with_name(p.name + ".meta.json").write_text(json.dumps(side), encoding="utf-8")
    return {"text": "scifact-sentences" if sents else "zipf-words", "files": n}


def change_one_percent(root: Path, n: int, *, seed: int) -> int:
    rng = random.Random(seed)
    picked = rng.sample(range(n), max(1, n // 100))
    for i in picked:
        with open(_file_path(root, i), "a", encoding="utf-8") as fh:
            fh.write(f"Revision {seed}: this record was revised after review.\n")
    return len(picked)


def queries(n: int, *, seed: int = 3) -> list[str]:
    path = datasets_dir() / "scifact" / "queries.jsonl"
    rng = random.Random(seed)
    if path.exists():
        with open(path, encoding="utf-8") as fh:
            qs = [json.loads(line)["text"] for line in fh]
        rng.shuffle(qs)
        return qs[:n]
    z = _Zipf(random.Random(16))  # same vocabulary as the corpus
    return [" ".join(z.sentence().split()[:rng.randint(3, 8)]) for _ in range(n)]


# --------------------------------------------------------------------------- phases (subprocesses)

def _components(dirpath: Path, dims: int):
    from indexers.embedders.cache import CachedEmbedder, EmbeddingCache
    from indexers.embedders.hashing import HashingEmbedder
    from indexers.local_index import LocalIndex

    embedder = CachedEmbedder(HashingEmbedder(dimensions=dims), EmbeddingCache(dirpath / "embeddings.sqlite"))
    index = LocalIndex(dirpath / "index", dimensions=embedder.dimensions, model_id=embedder.model_id,
                       vectors=_vector_config())
    return embedder, index


def _vector_config():
    """The vector arm settings from the environment (``ONDATA_VECTOR_INDEX``, ``ONDATA_HNSW_*``, ...)."""
    from ondata.settings import Settings
    from ondata.wiring import vector_config

    return vector_config(Settings())


def phase_ingest(dirpath: Path, dims: int, path: str) -> dict:
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.sources.local import LocalFolderSource

    embedder, index = _components(dirpath, dims)
    source = LocalFolderSource(dirpath / "corpus")
    t0 = time.perf_counter()
    if path == "fast":
        out = _fast_ingest(source, index, embedder, IngestOptions())
    else:
        report = ingest(source, index=index, embedder=embedder, options=IngestOptions())
        out = {"chunks_written": report.chunks_written, "documents": report.documents_parsed,
               "unchanged": report.unchanged, "embeddings_computed": report.embeddings_computed,
               "failed": sum(1 for r in report.results if r.status == "failed"),
               "stages": {k: round(v, 2) for k, v in report.stage_seconds.items()}}
    index.close()
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def _fast_ingest(source, index, embedder, options) -> dict:
    """The index the pipeline builds, written in large batches: the same listing and plan (stamped versions),
    the same parse and chunking (``prepare_document``), the same embedding text and vectors, ``LocalIndex.upsert``."""
    from pipelines.engine import embed_chunks, fingerprint_of, list_and_plan, prepare_document

    index.ensure()
    plan = list_and_plan(source, index, cleanup=options.cleanup, fingerprint=fingerprint_of(options, embedder))
    batch: list = []
    docs = chunks = 0

    def write() -> None:
        nonlocal chunks
        index.upsert(batch, vectors=embed_chunks(batch, embedder=embedder).vectors)
        chunks += len(batch)
        batch.clear()

    for item in plan.to_process:
        batch.extend(prepare_document(source, item, chunking=options.chunking, max_bytes=options.max_bytes).chunks)
        docs += 1
        if len(batch) >= 5000:
            write()
    if batch:
        write()
    index.flush()
    return {"chunks_written": chunks, "documents": docs, "problems": len(plan.problems)}


def phase_search(dirpath: Path, dims: int, modes: Sequence[str], n_queries: int) -> dict:
    import numpy as np

    from indexers.embedders.hashing import HashingEmbedder
    from indexers.local_index import LocalIndex
    from indexers.records import ALL_GROUPS, SearchRequest
    from retrieval.odata import parse_odata

    emb = HashingEmbedder(dimensions=dims)
    qs = queries(n_queries)
    qv = np.asarray([emb.embed_query(q) for q in qs], dtype=np.float32)
    index = LocalIndex.open_existing(dirpath / "index", vectors=_vector_config())
    flt = parse_odata(FILTER)
    rss_open = peak_rss_mb()

    def request(mode: str, i: int) -> SearchRequest:
        vec = tuple(float(x) for x in qv[i])
        if mode == "text":
            return SearchRequest(text=qs[i], mode="text", top=TOP, groups=ALL_GROUPS)
        if mode == "vector":
            return SearchRequest(vector=vec, mode="vector", top=TOP, groups=ALL_GROUPS)
        if mode == "hybrid":
            return SearchRequest(text=qs[i], vector=vec, mode="hybrid", top=TOP, groups=ALL_GROUPS)
        if mode == "hybrid_trimmed":
            return SearchRequest(text=qs[i], vector=vec, mode="hybrid", top=TOP, groups=CALLER_GROUPS)
        if mode == "hybrid_filtered":
            return SearchRequest(text=qs[i], vector=vec, mode="hybrid", top=TOP, groups=ALL_GROUPS, filter=flt)
        raise SystemExit(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")

    out: dict = {"queries": len(qs)}
    vector_hits: list[list[int]] = []
    for mode in modes:
        reqs = [request(mode, i) for i in range(len(qs))]
        for r in reqs[:WARMUP]:
            index.search(r)
        times = []
        for r in reqs:
            t0 = time.perf_counter()
            hits = index.search(r)
            times.append((time.perf_counter() - t0) * 1000)
            if mode == "vector":
                vector_hits.append([h.chunk.id for h in hits])
        times.sort()
        out[mode] = {"p50_ms": round(times[len(times) // 2], 2),
                     "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 2),
                     "mean_ms": round(sum(times) / len(times), 2)}
    out["peak_rss_mb"] = peak_rss_mb()
    out["rss_after_open_mb"] = rss_open
    config = _vector_config()
    n_vec = index.count()
    nlist = config.nlist_for(n_vec)
    out["vector_index"] = {"kind": config.kind_for(n_vec), "setting": config.kind, "exact_below": config.exact_below,
                           "ivf_nlist": nlist, "ivf_nprobe": config.nprobe_for(nlist), "ivf_rerank": config.ivf_rerank,
                           "hnsw_m": config.hnsw_m, "ef_construction": config.ef_construction,
                           "ef_search": config.ef_search}
    index.close()
    if "vector" in modes:
        out["vector_recall_at_10"] = vector_recall_at_10(dirpath / "index", qv, vector_hits)
    return out


def exact_top_ids(index_dir: Path, qv, k: int = TOP) -> list[list[str]]:
    """Exact inner-product top-k chunk ids over every stored vector (FAISS IndexFlatIP), streamed from SQLite."""
    import sqlite3

    import faiss
    import numpy as np

    con = sqlite3.connect(f"file:{index_dir / 'index.sqlite'}?mode=ro", uri=True)
    dims = qv.shape[1]
    best_s = np.full((len(qv), k), -np.inf, dtype=np.float32)
    best_r = np.full((len(qv), k), -1, dtype=np.int64)
    cur = con.execute("SELECT rid, vector FROM chunk_vectors ORDER BY rid")
    while rows := cur.fetchmany(50_000):
        rids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dims)
        flat = faiss.IndexFlatIP(dims)
        flat.add(vecs)
        s, pos = flat.search(qv, min(k, len(rows)))
        s_all = np.concatenate([best_s, s], axis=1)
        r_all = np.concatenate([best_r, np.where(pos >= 0, rids[np.clip(pos, 0, None)], -1)], axis=1)
        order = np.argsort(-s_all, axis=1, kind="stable")[:, :k]
        best_s = np.take_along_axis(s_all, order, axis=1)
        best_r = np.take_along_axis(r_all, order, axis=1)
    ids = {}
    wanted = sorted({int(r) for r in best_r.ravel() if r >= 0})
    for i in range(0, len(wanted), 500):
        part = wanted[i:i + 500]
        for rid, cid in con.execute(f"SELECT rid, id FROM chunks WHERE rid IN ({','.join('?' * len(part))})", part):
            ids[rid] = cid
    con.close()
    return [[ids[int(r)] for r in row if r >= 0] for row in best_r]


def vector_recall_at_10(index_dir: Path, qv, found: Sequence[Sequence[str]] | Callable[[object], Sequence[str]]) -> float:
    """Mean |found ∩ exact| / |exact| at 10 over the queries; ``found`` is the ids per query or a function of a query vector."""
    exact = exact_top_ids(index_dir, qv)
    got = [found(q) for q in qv] if callable(found) else found
    total = sum(len(set(g[:TOP]) & set(e)) / max(1, len(e)) for g, e in zip(got, exact))
    return round(total / max(1, len(exact)), 4)


def phase_cold(dirpath: Path, dims: int) -> dict:
    t_start = time.perf_counter()
    from indexers.embedders.hashing import HashingEmbedder
    from indexers.local_index import LocalIndex
    from indexers.records import ALL_GROUPS, SearchRequest

    t_imp = time.perf_counter()
    q = queries(1)[0]
    vec = tuple(float(x) for x in HashingEmbedder(dimensions=dims).embed_query(q))
    t0 = time.perf_counter()
    index = LocalIndex.open_existing(dirpath / "index", vectors=_vector_config())
    hits = index.search(SearchRequest(text=q, vector=vec, mode="hybrid", top=TOP, groups=ALL_GROUPS))
    t1 = time.perf_counter()
    index.close()
    return {"cold_first_query_s": round(t1 - t0, 3), "cold_import_s": round(t_imp - t_start, 3), "hits": len(hits),
            "peak_rss_mb": peak_rss_mb()}


# --------------------------------------------------------------------------- driver

def _run_phase(args: list[str], *, nice: bool = False) -> dict:
    cmd = [sys.executable, __file__, *args]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0 or not out.stdout.strip():
        raise SystemExit(f"phase {args[1]} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["load_1m_before"] = round(load, 2)
    res["wall_s"] = round(time.perf_counter() - t0, 2)
    return res


def _du_mb(path: Path) -> float:
    if path.is_file():
        return round(path.stat().st_size / 2**20, 1)
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def _git_head() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--dims", type=int, default=384)
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--path", choices=("auto", "pipeline", "fast"), default="auto",
                    help=f"full-ingest path (auto: fast from {FAST_PATH_FROM:,} chunks)")
    ap.add_argument("--keep", type=Path, help="build in DIR and keep it")
    ap.add_argument("--reuse", type=Path, help="measure the index kept in DIR (no ingest)")
    ap.add_argument("--reruns", action="store_true", help="with --reuse: also time the no-op and 1%% re-runs")
    ap.add_argument("--no-reruns", action="store_true", help="skip the re-runs")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or args.chunks < 100 or args.dims < 8 or (args.keep and args.reuse):
        print(f"error: bad arguments ({'unknown modes ' + ','.join(bad) if bad else '--chunks >= 100, --dims >= 8, not --keep with --reuse'})",
              file=sys.stderr)
        return 2

    if args.phase:
        if args.phase in ("ingest", "ingest-fast"):
            res = phase_ingest(args.dir, args.dims, "fast" if args.phase == "ingest-fast" else "pipeline")
        elif args.phase == "change":
            res = {"changed": change_one_percent(args.dir / "corpus", args.chunks, seed=args.seed)}
        elif args.phase == "search":
            res = phase_search(args.dir, args.dims, modes, args.queries)
        elif args.phase == "cold":
            res = phase_cold(args.dir, args.dims)
        else:
            raise SystemExit(f"unknown phase {args.phase}")
        print(json.dumps(res))
        return 0

    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    tmp = None
    if args.reuse:
        work = args.reuse
        if not (work / "index").is_dir() or not (work / "corpus").is_dir():
            print(f"error: {work} holds no kept scale run (corpus/ and index/)", file=sys.stderr)
            return 2
        meta = json.loads((work / "scale.json").read_text()) if (work / "scale.json").exists() else {}
        n, dims = meta.get("chunks", args.chunks), meta.get("dims", args.dims)
    else:
        work = args.keep or Path(tmp := tempfile.mkdtemp(prefix="ondata-scale-"))
        if args.keep and (work / "index").exists():
            print(f"error: {work} already holds an index; use --reuse {work}", file=sys.stderr)
            return 2
        n, dims = args.chunks, args.dims
    result: dict = {"chunks_requested": n, "dims": dims, "git_head": _git_head(), "cpus": os.cpu_count(),
                    "load_1m_start": round(os.getloadavg()[0], 2)}
    common = ["--dir", str(work), "--dims", str(dims), "--chunks", str(n)]
    try:
        if not args.reuse:
            say(f"corpus: {n:,} files under {work / 'corpus'} ...")
            t0 = time.perf_counter()
            result["corpus"] = build_corpus(work / "corpus", n)
            result["corpus"]["seconds"] = round(time.perf_counter() - t0, 1)
            path = args.path if args.path != "auto" else ("fast" if n >= FAST_PATH_FROM else "pipeline")
            say(f"full ingest ({path} path) ...")
            ing = _run_phase(["--phase", "ingest-fast" if path == "fast" else "ingest", *common])
            result["ingest_path"] = path
            result["full_ingest_s"] = round(ing["seconds"], 2)
            result["ingest_peak_rss_mb"] = round(ing["peak_rss_mb"], 1)
            result["chunks"] = ing["chunks_written"]
            result["full_ingest"] = ing
            (work / "scale.json").write_text(json.dumps({"chunks": n, "dims": dims, "ingest_path": path}))
        if not args.no_reruns and (not args.reuse or args.reruns):
            say("no-op re-run ...")
            noop = _run_phase(["--phase", "ingest", *common])
            result["no_op_rerun_s"] = round(noop["seconds"], 2)
            result["no_op_rerun"] = noop
            seed = int(time.time()) if args.reuse else 1
            _run_phase(["--phase", "change", "--seed", str(seed), *common])
            say("1% re-run ...")
            one = _run_phase(["--phase", "ingest", *common])
            result["one_percent_rerun_s"] = round(one["seconds"], 2)
            result["one_percent_rerun"] = one
            if "full_ingest_s" in result:
                result["one_percent_over_full"] = round(one["seconds"] / result["full_ingest_s"], 4)
        say("search ...")
        srch = _run_phase(["--phase", "search", "--modes", ",".join(modes), "--queries", str(args.queries), *common])
        for m in modes:
            result[m] = srch.pop(m)
        result["vector_recall_at_10"] = srch.pop("vector_recall_at_10", None)
        result["vector_index"] = srch.pop("vector_index", None)
        result["search_peak_rss_mb"] = round(srch["peak_rss_mb"], 1)
        result["peak_rss_mb"] = result["search_peak_rss_mb"]
        result["search"] = srch
        say("cold first query ...")
        cold = _run_phase(["--phase", "cold", *common])
        result["cold_first_query_s"] = cold["cold_first_query_s"]
        result["cold"] = cold
        result["disk_mb"] = _du_mb(work / "index")
        result["cache_mb"] = _du_mb(work / "embeddings.sqlite") if (work / "embeddings.sqlite").exists() else 0.0
        result["load_1m_end"] = round(os.getloadavg()[0], 2)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=None if args.json else 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
