"""A reader searching the local index in a loop while `ondata index rebuild` swaps in a new generation.

Ingests a folder (default ``data/samples/docs``) into a temporary index with the hashing embedder,
then runs the rebuild (new chunking settings) in this process while a reader thread searches the same
index (hybrid, every hit) in a loop, and prints one JSON object: the ingest and rebuild seconds, how
many searches ran during the rebuild, how many errored (must be 0), how many returned a result set
that was neither the whole old generation nor the whole new one (must be 0), the reader's search p50
and p95 before, during and after the rebuild, and the cost of the pointer check every operation makes.

    .venv/bin/python bench/rebuild.py [--docs data/samples/docs] [--chunk-size 256]

Print ``cat /proc/loadavg`` beside the numbers: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DIMENSIONS = 256
QUERY = "delivery price leave policy security"


def _ids(directory: Path) -> frozenset[str]:
    con = sqlite3.connect(f"file:{directory / 'index.sqlite'}?mode=ro", uri=True)
    try:
        return frozenset(r for (r,) in con.execute("SELECT id FROM chunks"))
    finally:
        con.close()


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", default=str(ROOT / "data" / "samples" / "docs"))
    parser.add_argument("--chunk-size", type=int, default=256)
    args = parser.parse_args()

    from rich.console import Console

    from indexers import local_generations as generations
    from indexers.embedders.hashing import HashingEmbedder
    from indexers.local_index import LocalIndex
    from indexers.records import ALL_GROUPS, SearchRequest
    from ondata.commands.ingest import ingest_with_progress
    from ondata.commands.rebuild import build_settings, rebuild_local
    from ondata.settings import Settings

    quiet = Console(file=open(os.devnull, "w"))
    with tempfile.TemporaryDirectory() as tmp:
        idx = Path(tmp) / "idx"
        settings = Settings(index_dir=idx, embedder="hashing", hashing_dimensions=DIMENSIONS)
        t0 = time.perf_counter()
        ingest_with_progress(settings, args.docs, quiet)
        ingest_s = time.perf_counter() - t0
        old = _ids(idx)
        reader = LocalIndex.open_existing(idx)
        vector = tuple(HashingEmbedder(dimensions=DIMENSIONS).embed_query(QUERY))
        request = SearchRequest(text=QUERY, vector=vector, mode="hybrid", top=10_000, groups=ALL_GROUPS)
        phase = {"name": "before"}
        timings: dict[str, list[float]] = {"before": [], "during": [], "after": []}
        seen: list[tuple[str, frozenset[str]]] = []
        errors: list[str] = []
        done = threading.Event()

        def loop() -> None:
            while not done.is_set():
                t = time.perf_counter()
                try:
                    hits = reader.search(request)
                except Exception as exc:  # noqa: BLE001 - counted and printed
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                timings[phase["name"]].append(time.perf_counter() - t)
                seen.append((phase["name"], frozenset(h.chunk.id for h in hits)))

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        time.sleep(1.0)
        phase["name"] = "during"
        t0 = time.perf_counter()
        result = rebuild_local(settings, build_settings(settings, None), quiet, chunk_size=args.chunk_size,
                               overlap=20, dry_run=False, drop_old=False, stop=None)
        rebuild_s = time.perf_counter() - t0
        phase["name"] = "after"
        time.sleep(1.0)
        done.set()
        thread.join(30)
        new = _ids(idx / result["live"])
        reader.close()
        partial = sum(1 for _, s in seen if s not in (old, new))
        t0 = time.perf_counter()
        for _ in range(10_000):
            generations.pointer_token(idx)
        pointer_us = (time.perf_counter() - t0) / 10_000 * 1e6
    print(json.dumps({
        "docs": args.docs, "ingest_s": round(ingest_s, 2), "rebuild_s": round(rebuild_s, 2),
        "old_chunks": len(old), "new_chunks": len(new),
        "searches": {k: len(v) for k, v in timings.items()}, "errors": len(errors), "partial_results": partial,
        "last_result_is_new_generation": bool(seen) and seen[-1][1] == new,
        "search_ms": {k: {"p50": _pct(v, 0.5), "p95": _pct(v, 0.95)} for k, v in timings.items()},
        "pointer_check_us": round(pointer_us, 2), "first_errors": errors[:3],
    }, indent=2))


if __name__ == "__main__":
    main()
