"""Incremental ingestion from Blob Storage (Azurite): a full run, then 1% of the blobs changed and a re-run.

Uploads N text documents (SciFact abstracts from $ONDATA_SHARED_DATASETS/scifact/corpus.jsonl.gz,
default ../shared/datasets; synthetic text when absent) to a fresh Azurite container, ingests them
into a fresh local index with the local MiniLM embedder behind the embedding cache, changes 1% of
the blobs (one sentence appended), deletes none, and ingests again. Prints both wall times and the
embeddings computed by each run. Targets: the re-run embeds only the changed chunks and takes at
most 10% of the full run's time. The model is loaded before timing (both runs exclude it).

    .venv/bin/python bench/incremental.py [--docs 300] [--changed-pct 1] [--flow]

``--flow`` runs both ingestions through the Prefect flow (pipelines.flows.run_ingest_flow) under a
temporary Prefect server instead of the plain ``ingest()``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

for _k, _v in {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_k, _v)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import datasets_dir, scifact_documents  # noqa: E402  (_common puts the repository on the path)


def documents(n: int) -> list[tuple[str, str, str]]:
    """(blob name, title, text) for n documents."""
    docs, origin = scifact_documents(n)
    if origin != "scifact":
        print(f"note: {origin} documents (SciFact under {datasets_dir()} is absent or too small)")
    return [(f"{'synthetic' if i.startswith('synthetic') else 'scifact'}/{i}.txt", title, text) for i, title, text in docs]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--changed-pct", type=float, default=1.0)
    ap.add_argument("--flow", action="store_true", help="run through the Prefect flow instead of ingest()")
    args = ap.parse_args()
    if args.docs < 200:
        print("note: fewer than 200 documents makes the timing noisy")

    from indexers.embedders.cache import CachedEmbedder, EmbeddingCache
    from indexers.embedders.local import SentenceTransformerEmbedder
    from indexers.local_index import LocalIndex
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.sources.blob import BlobDocumentSource
    from tests.azurite import start, stop

    docs = documents(args.docs)
    with tempfile.TemporaryDirectory(prefix="ondata-bench-") as tmp:
        tmpdir = Path(tmp)
        az, proc = start(tmpdir / "azurite")
        harness = None
        try:
            container = az.service_client().create_container("bench")
            t0 = time.perf_counter()
            for name, title, text in docs:
                container.upload_blob(name, text.encode("utf-8"), metadata={"title": title.encode("ascii", "replace").decode()[:200]})
            print(f"uploaded {len(docs)} blobs to Azurite in {time.perf_counter() - t0:.1f} s")

            source = BlobDocumentSource(container="bench", connection_string=az.connection_string)
            embedder = CachedEmbedder(SentenceTransformerEmbedder(), EmbeddingCache(tmpdir / "cache.sqlite"))
            t0 = time.perf_counter()
            embedder.inner.embed_documents(["warm up"])  # load the model outside the timed runs
            print(f"model {embedder.model_id} loaded in {time.perf_counter() - t0:.1f} s (not timed below)")
            index = LocalIndex(tmpdir / "index", dimensions=embedder.dimensions, model_id=embedder.model_id)
            options = IngestOptions()

            if args.flow:
                from prefect.testing.utilities import prefect_test_harness

                from pipelines.flows import Components, run_ingest_flow

                harness = prefect_test_harness(server_startup_timeout=120)
                harness.__enter__()
                components = Components(source, index, embedder)

                def run() -> dict:
                    return run_ingest_flow(components, options=options, max_workers=2, artifact_key=None)
            else:
                def run() -> dict:
                    return ingest(source, index=index, embedder=embedder, options=options).to_dict()

            t0 = time.perf_counter()
            full = run()
            t_full = time.perf_counter() - t0

            rng = random.Random(42)
            n_change = max(1, round(len(docs) * args.changed_pct / 100))
            changed = rng.sample(docs, n_change)
            for name, title, text in changed:
                container.upload_blob(name, (text + "\n\nAddendum: this record was revised after review.").encode(),
                                      metadata={"title": title.encode("ascii", "replace").decode()[:200]},
                                      overwrite=True)
            t0 = time.perf_counter()
            again = run()
            t_again = time.perf_counter() - t0

            changed_chunks = sum(r["chunks"] for r in again["results"] if r["status"] in ("added", "updated"))
            print()
            print(f"{'run':<10}{'wall s':>9}{'docs added/updated':>20}{'chunks written':>16}{'embeddings computed':>21}")
            print(f"{'full':<10}{t_full:>9.2f}{full['counts']['added']:>20}{full['chunks_written']:>16}"
                  f"{full['embeddings_computed']:>21}")
            print(f"{'re-run':<10}{t_again:>9.2f}{again['counts']['updated']:>20}{again['chunks_written']:>16}"
                  f"{again['embeddings_computed']:>21}")
            ratio = t_again / t_full if t_full else float("inf")
            print()
            print(f"changed {n_change} of {len(docs)} blobs ({args.changed_pct:g}%); re-run unchanged: "
                  f"{again['counts']['unchanged']}, failed: {again['counts']['failed']}")
            print(f"re-run / full wall time: {ratio:.1%} (target <= 10%): {'OK' if ratio <= 0.10 else 'MISSED'}")
            only_changed = again["embeddings_computed"] <= changed_chunks and again["counts"]["updated"] == n_change
            print(f"re-run embedded {again['embeddings_computed']} texts for {changed_chunks} chunks of the changed "
                  f"blobs (target: only changed chunks): {'OK' if only_changed else 'MISSED'}")
            index.close()
        finally:
            if harness is not None:
                harness.__exit__(None, None, None)
            stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
