"""Readers racing a writer on one local index: does a public-only caller ever see a restricted chunk?

A writer process re-ingests a few documents over and over (through ``pipelines.ingest.write_documents``,
the path every ingest takes), flipping each one between a public version (no groups) and a restricted
version (groups ``("finance",)``, its text says ``secret``). Reader processes open the same index and
search it as public-only callers (``groups=()``), round-robin in the three modes (text, vector,
hybrid). A *leak* is a hit that carries groups or restricted text. Prints the searches and leaks per
mode and in total; exits 1 when anything leaked.

    .venv/bin/python bench/acl_race.py [--searches 21000] [--readers 3]

``tests/test_acl_race.py`` runs the same race with a few thousand searches.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = ("text", "vector", "hybrid")
DIMENSIONS = 64
QUERY = "shared harbour ledger words"
STABLE_PUBLIC, STABLE_RESTRICTED, FLIPPING, CHUNKS_PER_DOC = 12, 6, 3, 4


def _embedder():
    from indexers.embedders.hashing import HashingEmbedder

    return HashingEmbedder(dimensions=DIMENSIONS)


def _chunks(source_id: str, *, restricted: bool, version: int):
    from indexers.records import Chunk, chunk_id_for

    kind = "secret" if restricted else "open"
    out = []
    for i in range(CHUNKS_PER_DOC):
        text = f"{QUERY} {kind} {source_id} part {i} version {version}"
        out.append(Chunk(id=chunk_id_for(source_id, i, text), source_id=source_id, content=text, chunk_index=i,
                         groups=("finance",) if restricted else (), source_version=f"v{version}",
                         source_chunks=CHUNKS_PER_DOC))
    return out


def _open(directory: Path):
    from indexers.local_index import LocalIndex

    embedder = _embedder()
    return LocalIndex(directory, dimensions=embedder.dimensions, model_id=embedder.model_id), embedder


def setup(directory: Path) -> None:
    """The index: stable public and restricted documents, and the flipping ones (public at first)."""
    index, embedder = _open(directory)
    index.ensure()
    chunks = [c for d in range(STABLE_PUBLIC) for c in _chunks(f"public-{d}", restricted=False, version=0)]
    chunks += [c for d in range(STABLE_RESTRICTED) for c in _chunks(f"restricted-{d}", restricted=True, version=0)]
    chunks += [c for d in range(FLIPPING) for c in _chunks(f"flip-{d}", restricted=False, version=0)]
    index.upsert(chunks, vectors=embedder.embed_documents([c.content for c in chunks]))
    index.close()


def writer(directory: Path, stop: Path) -> int:
    """Re-ingest the flipping documents until ``stop`` exists; returns the number of documents written."""
    from pipelines.ingest import write_documents

    index, embedder = _open(directory)
    version, written = 0, 0
    while not stop.exists():
        version += 1
        # mostly the document written last (it holds the highest row ids), sometimes another
        doc = f"flip-{(version // 3) % FLIPPING}"
        chunks = _chunks(doc, restricted=version % 2 == 1, version=version)
        write_documents(chunks, index=index, vectors=embedder.embed_documents([c.content for c in chunks]),
                        replace_sources=[doc])
        written += 1
    index.close()
    return written


def reader(directory: Path, searches: int) -> dict[str, dict[str, int]]:
    """``searches`` public-only searches, round-robin over the modes; searches and leaks per mode."""
    from indexers.records import SearchRequest

    index, embedder = _open(directory)
    vector = tuple(float(x) for x in embedder.embed_query(QUERY))
    counts = {m: {"searches": 0, "leaks": 0} for m in MODES}
    for n in range(searches):
        mode = MODES[n % len(MODES)]
        request = SearchRequest(text=QUERY if mode != "vector" else None, vector=vector if mode != "text" else None,
                                mode=mode, top=10, groups=(), public_when_no_groups=True)
        hits = index.search(request)
        counts[mode]["searches"] += 1
        counts[mode]["leaks"] += sum(1 for h in hits if h.chunk.groups or "secret" in h.chunk.content)
    index.close()
    return counts


def race(directory: Path, *, searches: int, readers: int = 2) -> dict[str, dict[str, int]]:
    """Set up the index, run one writer and ``readers`` reader processes; searches and leaks per mode (+ total)."""
    setup(directory)
    stop = directory / "stop"
    me = [sys.executable, str(Path(__file__).resolve())]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    write = subprocess.Popen([*me, "--role", "writer", "--dir", str(directory)], stdout=subprocess.PIPE, text=True,
                             env=env)
    time.sleep(0.3)  # the writer is writing before the readers start
    per_reader = [searches // readers + (1 if i < searches % readers else 0) for i in range(readers)]
    reads = [subprocess.Popen([*me, "--role", "reader", "--dir", str(directory), "--searches", str(n)],
                              stdout=subprocess.PIPE, text=True, env=env) for n in per_reader]
    totals = {m: {"searches": 0, "leaks": 0} for m in MODES}
    try:
        for proc in reads:
            out, _ = proc.communicate(timeout=900)
            if proc.returncode != 0:
                raise RuntimeError(f"a reader failed with exit code {proc.returncode}")
            for mode, c in json.loads(out).items():
                for key in ("searches", "leaks"):
                    totals[mode][key] += c[key]
    finally:
        stop.touch()
        written, _ = write.communicate(timeout=120)
        for proc in reads:
            if proc.poll() is None:
                proc.kill()
    if write.returncode != 0:
        raise RuntimeError(f"the writer failed with exit code {write.returncode}")
    totals["total"] = {k: sum(totals[m][k] for m in MODES) for k in ("searches", "leaks")}
    totals["total"]["documents_written"] = int(written.strip() or 0)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--searches", type=int, default=21000, help="searches in total, over all readers")
    parser.add_argument("--readers", type=int, default=3, help="reader processes")
    parser.add_argument("--role", choices=("race", "writer", "reader"), default="race", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "writer":
        print(writer(args.dir, args.dir / "stop"))
        return
    if args.role == "reader":
        print(json.dumps(reader(args.dir, args.searches)))
        return
    with tempfile.TemporaryDirectory(prefix="acl-race-") as tmp:
        started = time.perf_counter()
        result = race(Path(tmp) / "index", searches=args.searches, readers=args.readers)
        seconds = time.perf_counter() - started
    for mode in (*MODES, "total"):
        print(f"{mode:7s} searches {result[mode]['searches']:6d}  leaks {result[mode]['leaks']}")
    print(f"writer: {result['total']['documents_written']} documents re-ingested in {seconds:.1f} s "
          f"({args.readers} readers)")
    sys.exit(1 if result["total"]["leaks"] else 0)


if __name__ == "__main__":
    main()
