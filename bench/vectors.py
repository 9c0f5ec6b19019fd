"""Vector-arm micro-bench: recall@10 against exact search and per-query latency of FAISS structures.

    .venv/bin/python bench/vectors.py --n 50000 [--dims 384] [--queries 200] [--cache DIR]
                                      [--spec "IVF1024,Flat" --nprobe 16,32,64] [--spec flat] [--json]

The vectors are the hashing embedder's (``indexers.embedders.hashing``) of texts built like
``bench/scale.py``'s corpus (5-8 SciFact sentences recombined, else Zipf words); the queries are
SciFact claims (else sampled words), embedded the same way. These vectors are close to random (a
query's 10th neighbour scores about 0.31): the worst case for any approximate index. Real
embeddings cluster and give higher recall at the same parameters.

Each ``--spec`` is a FAISS ``index_factory`` string (inner product), ``flat`` or ``ondata`` (the
structure ``indexers.local_vectors`` builds for ``--kind``). IVF specs are searched at every
``--nprobe``, refined ones (``...,RFlat``) at every ``--k-factor``. Queries run one at a time on
``--threads`` FAISS threads (default 1, as the local index); for each setting it prints recall@10,
p50/p95 ms, and the same for a 10% allowed set (an ``IDSelectorBitmap``, as a filter would give).
``--cache DIR`` keeps the vectors (``vectors-N-D.npy``) between runs. ``--mix-from N0`` (for 1M, whose
real embedding costs ~16 CPU minutes): N0 real vectors, the rest normalised sums of two of them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb  # noqa: E402

TOP = 10
CANDIDATES = 50  # what the local index asks its vector arm for (SearchRequest.candidates)


def _scale():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_scale", Path(__file__).resolve().parent / "scale.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def hashing_vectors(n: int, dims: int, cache: Path | None, *, seed: int = 16) -> np.ndarray:
    """N hashing-embedder vectors of bench/scale.py-like texts (cached as .npy under ``cache``)."""
    from indexers.embedders.hashing import HashingEmbedder

    path = cache / f"vectors-{n}-{dims}.npy" if cache else None
    if path is not None and path.exists():
        return np.load(path, mmap_mode="r")
    scale = _scale()
    rng = random.Random(seed)
    sents = scale._sentences()
    zipf = None if sents else scale._Zipf(rng)
    emb = HashingEmbedder(dimensions=dims)
    out = np.empty((n, dims), dtype=np.float32)
    batch: list[str] = []
    done = 0
    for i in range(n):
        k = rng.randint(5, 8)
        body = [rng.choice(sents) for _ in range(k)] if sents else [zipf.sentence() for _ in range(k)]
        title = " ".join(body[0].split()[:6]).rstrip(".,;:")
        batch.append(f"{title}\n\n" + " ".join(body))
        if len(batch) == 2000 or i == n - 1:
            out[done : done + len(batch)] = np.asarray(emb.embed_documents(batch), dtype=np.float32)
            done += len(batch)
            batch.clear()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, out)
    return out


def mixed_vectors(n: int, dims: int, cache: Path | None, base: int) -> np.ndarray:
    """``base`` hashing vectors (``hashing_vectors``) and ``n - base`` more, each the normalised sum of
    two of them: the hashing embedder is linear in its features, so that is about the vector of the
    two texts joined (a longer document). For sizes whose real embedding costs too much CPU (1M)."""
    real = np.asarray(hashing_vectors(base, dims, cache))
    if n <= base:
        return real[:n]
    rng = np.random.default_rng(16)
    out = np.empty((n, dims), dtype=np.float32)
    out[:base] = real
    for start in range(base, n, 100_000):
        m = min(100_000, n - start)
        v = real[rng.integers(0, base, m)] + real[rng.integers(0, base, m)]
        out[start : start + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def query_vectors(n: int, dims: int) -> np.ndarray:
    from indexers.embedders.hashing import HashingEmbedder

    emb = HashingEmbedder(dimensions=dims)
    return np.asarray([emb.embed_query(q) for q in _scale().queries(n)], dtype=np.float32)


def exact(xb: np.ndarray, xq: np.ndarray, sel_mask: np.ndarray | None = None) -> np.ndarray:
    """Exact top-10 positions (brute force in slices, numpy)."""
    best_s = np.full((len(xq), TOP), -np.inf, dtype=np.float32)
    best_i = np.full((len(xq), TOP), -1, dtype=np.int64)
    for start in range(0, len(xb), 100_000):
        part = np.asarray(xb[start : start + 100_000])
        s = xq @ part.T
        if sel_mask is not None:
            s[:, ~sel_mask[start : start + len(part)]] = -np.inf
        k = min(TOP, s.shape[1])
        idx = np.argpartition(-s, k - 1, axis=1)[:, :k]
        s_all = np.concatenate([best_s, np.take_along_axis(s, idx, axis=1)], axis=1)
        i_all = np.concatenate([best_i, idx + start], axis=1)
        order = np.argsort(-s_all, axis=1, kind="stable")[:, :TOP]
        best_s, best_i = np.take_along_axis(s_all, order, axis=1), np.take_along_axis(i_all, order, axis=1)
    return best_i


def _params(index, nprobe: int | None, k_factor: float | None, sel):
    import faiss

    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexRefine):
        base = faiss.downcast_index(inner.base_index)
        bp = faiss.SearchParametersIVF(nprobe=nprobe or 1) if isinstance(base, faiss.IndexIVF) else faiss.SearchParameters()
        if sel is not None:
            bp.sel = sel
        p = faiss.IndexRefineSearchParameters(k_factor=float(k_factor or 1), base_index_params=bp)
        return p, bp
    if isinstance(inner, faiss.IndexIVF):
        p = faiss.SearchParametersIVF(nprobe=nprobe or 1)
    elif isinstance(inner, faiss.IndexHNSW):
        p = faiss.SearchParametersHNSW(efSearch=nprobe or 64)
    else:
        p = faiss.SearchParameters()
    if sel is not None:
        p.sel = sel
    return p, None


def measure(index, xq: np.ndarray, truth: np.ndarray, *, nprobe=None, k_factor=None, bitmap=None) -> dict:
    import faiss

    sel = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap)) if bitmap is not None else None
    params, _keep = _params(index, nprobe, k_factor, sel)
    times, hits = [], 0
    for i in range(len(xq)):
        t0 = time.perf_counter()
        _, ids = index.search(xq[i : i + 1], TOP, params=params)
        times.append((time.perf_counter() - t0) * 1000)
        hits += len(set(ids[0].tolist()) & set(truth[i].tolist()))
    times.sort()
    return {"recall_at_10": round(hits / (TOP * len(xq)), 4), "p50_ms": round(times[len(times) // 2], 2),
            "p95_ms": round(times[int(len(times) * 0.95)], 2)}


def _phase(directory: Path, phase: str, config, dims: int, q: np.ndarray) -> dict:
    """Run ``phase`` (cold open + first query, or a rebuild from SQLite) in a fresh process."""
    import dataclasses
    import subprocess

    np.save(directory / "q.npy", q)
    cmd = [sys.executable, __file__, "--phase", phase, "--dir", str(directory), "--dims", str(dims),
           "--config", json.dumps(dataclasses.asdict(config))]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _hwm_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited across exec from the parent)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return peak_rss_mb()


def run_phase(directory: Path, phase: str, config_json: str, dims: int) -> dict:
    import sqlite3

    from indexers.local_vectors import VectorConfig, VectorIndex

    t0 = time.perf_counter()
    con = sqlite3.connect(directory / "vectors.sqlite", isolation_level=None)

    def generation(c):
        return int(c.execute("SELECT value FROM index_meta WHERE key = 'generation'").fetchone()[0])

    index = VectorIndex(directory, dimensions=dims, generation=generation, config=VectorConfig(**json.loads(config_json)))
    rss0 = _hwm_mb()
    if phase == "cold":
        hits = index.search(con, np.load(directory / "q.npy"), None, CANDIDATES)
        return {"cold_first_query_s": round(time.perf_counter() - t0, 3), "hits": len(hits),
                "peak_rss_mb": round(_hwm_mb(), 1), "rss_before_mb": round(rss0, 1),
                "builds": index.full_builds}
    index.rebuild(con)
    return {"rebuild_s": round(time.perf_counter() - t0, 1), "peak_rss_mb": round(_hwm_mb(), 1),
            "rss_before_mb": round(rss0, 1)}


def measure_ondata(xb, xq, truth, truth_f, mask, *, kind: str, settings: list[tuple[int, int]], nlist: int,
                   phases: bool = True) -> list[dict]:
    """The local index's own vector structure (``indexers.local_vectors``) over the same vectors, built
    once and searched through ``VectorIndex.search`` (row id = position + 1) at each (nprobe, rerank)
    of ``settings`` (0: the default); ``phases``: also a cold open + first query and a rebuild, each
    in a fresh process (their own peak RSS)."""
    import dataclasses
    import tempfile

    from indexers.local_allowed import AllowedSet
    from indexers.local_vectors import VectorConfig, bench_index

    config = VectorConfig(kind=kind, ivf_nlist=nlist, exact_allowed_max=0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ondata-vbench-") as tmp:
        t0 = time.perf_counter()
        index, con = bench_index(Path(tmp), config, np.asarray(xb))
        build_s = round(time.perf_counter() - t0, 1)
        extra: dict = {}
        if phases:
            for phase in ("cold", "rebuild"):
                extra[phase] = _phase(Path(tmp), phase, config, xb.shape[1], xq[:1])
        allowed = AllowedSet(np.concatenate([[False], mask]))
        st = index.fresh(con)
        for nprobe, rerank in settings:
            index.config = dataclasses.replace(config, ivf_nprobe=nprobe, ivf_rerank=rerank or config.ivf_rerank)
            if st.kind == "ivf":
                import faiss

                st.nprobe = index.config.nprobe_for(faiss.extract_index_ivf(st.index).nlist)
            row: dict = {"spec": f"ondata:{kind}", "nlist": config.nlist_for(len(xb)), "nprobe": st.nprobe,
                         "rerank": index.config.ivf_rerank, "build_s": build_s,
                         "file_mb": round((Path(tmp) / "vectors.faiss").stat().st_size / 2**20, 1), **extra}
            for name, sel, want in (("all", None, truth), ("filtered_10pct", allowed, truth_f)):
                times, hits = [], 0
                for i in range(len(xq)):
                    t1 = time.perf_counter()
                    got = index.search(con, xq[i : i + 1], sel, CANDIDATES)[:TOP]  # as LocalIndex asks: k = 50
                    times.append((time.perf_counter() - t1) * 1000)
                    hits += len({r - 1 for r, _ in got} & set(want[i].tolist()))
                times.sort()
                row[name] = {"recall_at_10": round(hits / (TOP * len(xq)), 4),
                             "p50_ms": round(times[len(times) // 2], 2), "p95_ms": round(times[int(len(times) * 0.95)], 2)}
            rows.append(row)
        con.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dims", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--cache", type=Path)
    ap.add_argument("--spec", action="append", help="FAISS index_factory string, 'flat' or 'ondata'")
    ap.add_argument("--kind", default="ivf", help="with --spec ondata: VectorConfig kind")
    ap.add_argument("--nprobe", default="", help="comma-separated nprobe (IVF) or efSearch (HNSW) values")
    ap.add_argument("--k-factor", default="", help="comma-separated refine factors (RFlat specs)")
    ap.add_argument("--nlist", type=int, default=0, help="with --spec ondata: ivf_nlist (0: auto)")
    ap.add_argument("--train", type=int, default=0, help="training sample size (default: 64 per list)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mix-from", type=int, default=0,
                    help="real hashing vectors for the first N, normalised sums of two of them beyond (1M)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-phases", action="store_true", help="with --spec ondata: skip the cold-open and rebuild phases")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(run_phase(args.dir, args.phase, args.config, args.dims)))
        return 0

    import faiss

    faiss.omp_set_num_threads(args.threads)
    load = os.getloadavg()
    t0 = time.perf_counter()
    xb = mixed_vectors(args.n, args.dims, args.cache, args.mix_from) if args.mix_from else \
        hashing_vectors(args.n, args.dims, args.cache)
    xq = query_vectors(args.queries, args.dims)
    prep_s = time.perf_counter() - t0
    rng = np.random.default_rng(7)
    mask = rng.random(args.n) < 0.10
    truth = exact(xb, xq)
    truth_f = exact(xb, xq, mask)
    bitmap = np.packbits(mask, bitorder="little")
    out: dict = {"n": args.n, "dims": args.dims, "mix_from": args.mix_from, "queries": len(xq), "threads": args.threads,
                 "loadavg_before": [round(x, 2) for x in load], "prep_s": round(prep_s, 1), "runs": []}
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, flush=True))
    say(f"n={args.n} dims={args.dims} queries={len(xq)} loadavg={load}")
    nprobes = [int(x) for x in args.nprobe.split(",") if x] or [None]
    kfs = [float(x) for x in args.k_factor.split(",") if x] or [None]
    for spec in args.spec or ["flat"]:
        t0 = time.perf_counter()
        if spec == "ondata":
            build_s = None
            settings = [(npb or 0, int(kf) if kf else 0) for npb in nprobes for kf in kfs]
            for row in measure_ondata(xb, xq, truth, truth_f, mask, kind=args.kind, settings=settings,
                                      nlist=args.nlist, phases=not args.no_phases):
                row["loadavg"] = round(os.getloadavg()[0], 2)
                out["runs"].append(row)
                say(json.dumps(row))
            continue
        else:
            index = faiss.index_factory(args.dims, "Flat" if spec == "flat" else spec, faiss.METRIC_INNER_PRODUCT)
            if not index.is_trained:
                ivf = faiss.try_extract_index_ivf(index)
                ntrain = args.train or min(args.n, 64 * (ivf.nlist if ivf is not None else 1024))
                sample = np.asarray(xb[np.sort(rng.choice(args.n, size=ntrain, replace=False))])
                index.train(sample)
            for start in range(0, args.n, 65536):
                index.add(np.asarray(xb[start : start + 65536]))
        build_s = time.perf_counter() - t0
        for npb in nprobes:
            for kf in kfs:
                row = {"spec": spec, "nprobe": npb, "k_factor": kf, "build_s": round(build_s, 1)}
                row["all"] = measure(index, xq, truth, nprobe=npb, k_factor=kf)
                row["filtered_10pct"] = measure(index, xq, truth_f, nprobe=npb, k_factor=kf, bitmap=bitmap)
                row["loadavg"] = round(os.getloadavg()[0], 2)
                out["runs"].append(row)
                say(json.dumps(row))
        del index
    out["peak_rss_mb"] = peak_rss_mb()
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
