"""Distributed ingestion: the Prefect flow on a Dask cluster of N worker processes, into Azure AI Search.

Every part runs as its own process on this machine, as it would on its own machine:

- the service doubles (``tests/servers``): Azure AI Search, and Azure OpenAI embeddings with a
  latency per request drawn from ``--latency LOW,HIGH`` seconds and a tokens-per-minute quota
  (``--tpm``) answering 429 with ``Retry-After`` / ``retry-after-ms`` (the embedder's one retry
  policy, ``indexers.retry``, waits it out);
- a Prefect server (``prefect_test_harness``: a temporary server subprocess);
- ``dask scheduler`` and N ``dask worker --nthreads 1`` processes (``tests/dask_cluster.py``), each
  worker building its own source, embedder (own embedding cache file, so every run embeds
  everything) and index client from its environment (``ondata.flows.SettingsComponents``);
- this process: the flow (``pipelines.flows.run_ingest_flow`` with ``DaskTaskRunner(address=...)``),
  which plans on a worker, then submits the prepare / embed / write tasks.

The source is a folder of N SciFact abstracts (``$ONDATA_SHARED_DATASETS/scifact``, default
../shared/datasets; synthetic text when absent) that every worker reads by its absolute path (a
shared volume on real machines; Blob Storage needs no change: the source is rebuilt per worker).
Each N gets fresh doubles (an empty TPM window) and a fresh index. Prints one JSON object, then a
table: wall time, docs/s, chunks/s, embedding requests, 429s, and CPU seconds per process group,
with the bounds implied by the TPM quota and by the latency of serial embedding requests.

    nice -n 10 .venv/bin/python bench/distributed.py [--workers 1,2,4] [--docs 400] [--chunk-size 256]
        [--latency 0.15,0.4] [--tpm 150000] [--batch-chunks 256] [--dimensions 256]

What transfers to real machines: the shape of the bounds (TPM quota, serial round trips, the flow
process's per-task overhead). What does not: absolute CPU figures, because all processes share this
machine's cores, and the doubles answer in microseconds apart from the injected latency.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# this file is named like the ``distributed`` package: keep its own folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
QUIET_ENV = {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "HF_HUB_OFFLINE": "1",
             "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}
for _k, _v in QUIET_ENV.items():
    os.environ.setdefault(_k, _v)

SEARCH_KEY, AOAI_KEY, DEPLOYMENT = "bench-search-key", "bench-aoai-key", "emb"


def _bench_common():
    """``bench/_common.py`` by its path (this folder is kept off the import path, see above)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_common", Path(__file__).resolve().parent / "_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def write_documents(folder: Path, n: int) -> str:
    """n text files in ``folder``; returns where their text came from."""
    folder.mkdir(parents=True, exist_ok=True)
    docs, origin = _bench_common().scifact_documents(n)
    for doc_id, _title, text in docs:
        (folder / f"{doc_id}.txt").write_text(text, encoding="utf-8")
    return origin


# ---------------------------------------------------------------- the doubles, in their own process


def serve_doubles(latency: tuple[float, float], tpm: int | None, dimensions: int) -> int:
    """Run both doubles; print their URLs as one JSON line; answer ``stats`` lines on stdin until EOF."""
    from tests.servers.azure_openai import FakeAzureOpenAI
    from tests.servers.azure_search import FakeAzureSearch

    with FakeAzureSearch(api_key=SEARCH_KEY) as search, FakeAzureOpenAI(
            api_key=AOAI_KEY, embedding_deployments={DEPLOYMENT: dimensions}, latency=latency,
            tokens_per_minute=tpm) as aoai:
        print(json.dumps({"search": search.url, "openai": aoai.url}), flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                with aoai.lock:
                    calls = list(aoai.embedding_calls)
                    sent = sum(1 for r in aoai.requests if r.path.endswith("/embeddings"))
                with search.lock:
                    batches = list(search.index_batches)
                tokens = 0
                from indexers.tokens import count_tokens
                for body in calls:
                    tokens += sum(count_tokens(t) for t in body["input"])
                print(json.dumps({
                    "embedding_requests": sent, "embedding_requests_ok": len(calls),
                    "embedding_inputs": sum(len(b["input"]) for b in calls), "embedding_tokens": tokens,
                    "throttled_429": aoai.throttled, "max_in_flight": aoai.max_in_flight,
                    "index_requests": len(batches),
                }), flush=True)
    return 0


class Doubles:
    def __init__(self, args: argparse.Namespace) -> None:
        import subprocess

        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-doubles", "--latency", args.latency, "--tpm", str(args.tpm),
             "--dimensions", str(args.dimensions)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
        self.urls = json.loads(self.proc.stdout.readline())

    def stats(self) -> dict:
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


# ---------------------------------------------------------------- CPU accounting


def prefect_server_pid() -> int | None:
    """The temporary Prefect server: the child of this process that is not a Dask or doubles process."""
    import psutil

    for child in psutil.Process().children():
        try:
            if "uvicorn" in child.cmdline():
                return child.pid
        except psutil.Error:
            pass
    return None


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User+system CPU seconds of each process."""
    import psutil

    out: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            t = psutil.Process(pid).cpu_times()
            out[name] = t.user + t.system
        except psutil.Error:
            out[name] = float("nan")
    return out


def grouped(cpu: dict[str, float]) -> dict[str, float]:
    groups = {"flow": 0.0, "prefect_server": 0.0, "scheduler": 0.0, "workers": 0.0, "doubles": 0.0}
    for name, secs in cpu.items():
        groups["workers" if name.startswith("worker-") else name] += secs
    return {k: round(v, 1) for k, v in groups.items()}


# ---------------------------------------------------------------- one run at N workers


def run_once(n: int, args: argparse.Namespace, docs: Path, tmp: Path) -> dict:
    from prefect.settings import PREFECT_API_URL
    from prefect_dask import DaskTaskRunner

    from ondata.flows import SettingsComponents
    from ondata.settings import Settings
    from ondata.wiring import ingest_options, task_retry_policy
    from pipelines.flows import run_ingest_flow
    from tests.dask_cluster import DaskProcesses

    doubles = Doubles(args)
    env = {"ONDATA_PROFILE": "azure", "AZURE_SEARCH_ENDPOINT": doubles.urls["search"], "AZURE_SEARCH_KEY": SEARCH_KEY,
           "AZURE_SEARCH_INDEX": f"bench-n{n}", "AZURE_OPENAI_ENDPOINT": doubles.urls["openai"],
           "AZURE_OPENAI_API_KEY": AOAI_KEY, "AZURE_OPENAI_EMBEDDING_DEPLOYMENT": DEPLOYMENT,
           "AZURE_OPENAI_EMBEDDING_DIMENSIONS": str(args.dimensions), "ONDATA_INDEX_DIR": str(tmp / f"ix-{n}"),
           "ONDATA_CHUNK_SIZE": str(args.chunk_size), "ONDATA_CHUNK_OVERLAP": "0", **QUIET_ENV}
    os.environ.update(env)
    cluster = DaskProcesses.start(tmp / f"dask-{n}", workers=n, worker_env=lambda i: {
        **env, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "ONDATA_EMBEDDING_CACHE": str(tmp / f"cache-n{n}-w{i}.sqlite")})
    pids = {"flow": os.getpid(), "doubles": doubles.proc.pid, **cluster.pids}
    server = prefect_server_pid()
    if server is not None:
        pids["prefect_server"] = server
    try:
        settings = Settings()
        before = cpu_seconds(pids)
        t0 = time.perf_counter()
        report = run_ingest_flow(
            SettingsComponents(str(docs)), options=ingest_options(settings, batch_chunks=args.batch_chunks),
            task_runner=DaskTaskRunner(address=cluster.address), retry=task_retry_policy(settings),
            window=max(8, 2 * n), source_label=str(docs), index_label=f"Azure AI Search bench-n{n}", artifact_key=None)
        wall = time.perf_counter() - t0
        after = cpu_seconds(pids)
        stats = doubles.stats()
    finally:
        cluster.stop()
        doubles.stop()
    cpu = grouped({k: after[k] - before[k] for k in pids})
    docs_n, chunks = report["counts"]["added"], report["chunks_written"]
    lat_lo, lat_hi = (float(x) for x in args.latency.split(","))
    return {
        "workers": n, "wall_s": round(wall, 2), "docs": docs_n, "chunks": chunks,
        "failed": report["counts"]["failed"],
        "docs_per_s": round(docs_n / wall, 1), "chunks_per_s": round(chunks / wall, 1),
        "stage_seconds": {k: round(v, 2) for k, v in report.get("stage_seconds", {}).items()},
        **stats,
        "cpu_s": cpu, "cpu_s_total": round(sum(cpu.values()), 1),
        "cpu_utilisation_of_2_cores": round(sum(cpu.values()) / wall / 2, 2),
        # the floors: the TPM quota (tokens over the quota, minus the first window's free minute),
        # and serial embedding round trips at the mean injected latency
        "tpm_floor_s": round(max(0.0, stats["embedding_tokens"] / args.tpm - 1.0) * 60, 1) if args.tpm else 0.0,
        "serial_latency_floor_s": round(stats["embedding_requests_ok"] * (lat_lo + lat_hi) / 2, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", default="1,2,4", help="comma-separated worker counts (default 1,2,4)")
    ap.add_argument("--docs", type=int, default=400)
    ap.add_argument("--chunk-size", type=int, default=256)
    ap.add_argument("--batch-chunks", type=int, default=256, help="chunks per write batch (engine)")
    ap.add_argument("--latency", default="0.15,0.4", help="LOW,HIGH seconds per embeddings request")
    ap.add_argument("--tpm", type=int, default=150_000, help="tokens-per-minute quota of the embedding double (0: none)")
    ap.add_argument("--dimensions", type=int, default=256)
    ap.add_argument("--serve-doubles", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    lo, hi = (float(x) for x in args.latency.split(","))
    if args.serve_doubles:
        return serve_doubles((lo, hi), args.tpm or None, args.dimensions)
    counts = [int(x) for x in args.workers.split(",")]

    from prefect.testing.utilities import prefect_test_harness

    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ondata-dist-") as tmp_name, \
            prefect_test_harness(server_startup_timeout=180):
        tmp = Path(tmp_name)
        origin = write_documents(tmp / "docs", args.docs)
        runs = []
        for n in counts:
            runs.append(run_once(n, args, tmp / "docs", tmp))
            print(f"# N={n}: {runs[-1]['wall_s']} s", file=sys.stderr, flush=True)
    out = {"docs": args.docs, "corpus": origin, "chunk_size": args.chunk_size, "batch_chunks": args.batch_chunks,
           "latency_s": [lo, hi], "tpm": args.tpm, "dimensions": args.dimensions,
           "load_before": [round(x, 2) for x in load], "load_after": [round(x, 2) for x in os.getloadavg()],
           "cores": os.cpu_count(), "runs": runs}
    print(json.dumps(out))
    print()
    print(f"{'N':>3}{'wall s':>8}{'docs/s':>8}{'chunks/s':>9}{'emb req':>8}{'429s':>6}{'tokens':>8}"
          f"{'TPM floor s':>12}{'lat floor s':>12}{'CPU s flow/server/sched/workers/doubles':>41}{'util':>6}")
    for r in runs:
        c = r["cpu_s"]
        cpu = f"{c['flow']}/{c['prefect_server']}/{c['scheduler']}/{c['workers']}/{c['doubles']}"
        print(f"{r['workers']:>3}{r['wall_s']:>8}{r['docs_per_s']:>8}{r['chunks_per_s']:>9}{r['embedding_requests']:>8}"
              f"{r['throttled_429']:>6}{r['embedding_tokens']:>8}{r['tpm_floor_s']:>12}{r['serial_latency_floor_s']:>12}"
              f"{cpu:>41}{r['cpu_utilisation_of_2_cores']:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
