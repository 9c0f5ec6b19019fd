"""Start-up time of a cold `ondata ask` on the sample corpus, with a breakdown.

    python bench/startup.py [--runs 3] [--index-dir DIR] [--question TEXT]

Builds (once, kept in --index-dir) a local index of data/samples/docs with the default
all-MiniLM-L6-v2 embedder, then, for each run, in fresh processes:

- the wall time of ``python -m ondata.cli ask --index DIR "QUESTION (run N)"`` (what a user waits;
  the run number makes the question new, so its embedding is not in the cache);
- the same steps timed inside one process: interpreter start, importing the CLI, opening the index
  (settings, wiring, SQLite + FAISS), importing the embedding backend, loading the model (tokenizer
  and weights), answering (query embedding, hybrid search, extractive answer) — plus how many
  modules the process imported, which does not depend on how busy the machine is.

Medians over the runs are printed, wall and CPU time, with the machine's load average: on a shared
machine wall seconds are noisy, CPU seconds less so (on an idle machine the steps are mostly
single-threaded, so wall is close to CPU), module counts not at all. Target: <= 5 s wall on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repo's packages before bench/ (bench/retrieval.py is not the retrieval package)
QUESTION = "Which depot holds the parts that ship on the next working day?"
PHASES = (("python", "interpreter start"), ("cli", "import the CLI"), ("index", "open the index"),
          ("backend", "import the embedding backend"), ("model", "load the model (tokenizer, weights)"),
          ("answer", "answer (embed, search, extract)"))


def child(index_dir: str, question: str, spawned: float) -> None:
    """One cold `ondata ask`, step by step, timed; prints JSON."""
    t = {"start": time.time()}
    c = {"start": time.process_time()}

    def mark(name: str) -> None:
        t[name], c[name] = time.time(), time.process_time()

    import ondata.cli  # noqa: F401  (what the console script imports: every command module)

    mark("cli")
    from ondata.commands.retrieval import build_retriever
    from ondata.settings import Settings
    from ondata.wiring import build_answerer

    settings = Settings(index_dir=index_dir)
    retriever = build_retriever(settings)
    answerer = build_answerer(settings, embedder=retriever.embedder)
    mark("index")
    inner = getattr(retriever.embedder, "inner", retriever.embedder)
    if hasattr(inner, "import_backend"):
        inner.import_backend()
    mark("backend")
    if hasattr(inner, "_load"):
        inner._load()
    mark("model")
    from retrieval.answer import answer_question

    answer = answer_question(question, retriever=retriever, answerer=answerer)
    mark("answer")
    marks = ["start", "cli", "index", "backend", "model", "answer"]
    out = {"python": t["start"] - spawned, "cpu_python": c["start"]}
    out.update({b: t[b] - t[a] for a, b in zip(marks, marks[1:])})
    out.update({f"cpu_{b}": c[b] - c[a] for a, b in zip(marks, marks[1:])})
    out["modules"] = len(sys.modules)
    out["heavy"] = sorted(m for m in ("torch", "transformers", "sentence_transformers", "sklearn", "scipy", "prefect",
                                      "unstructured", "pandas", "matplotlib", "openai", "azure.core") if m in sys.modules)
    out["citations"] = len(answer.citations)
    print(json.dumps(out))


def ensure_index(index_dir: Path) -> None:
    if (index_dir / "index.sqlite").is_file():
        return
    print(f"building the sample index in {index_dir} (local MiniLM embedder)...", flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ondata.cli", "ingest", str(ROOT / "data" / "samples" / "docs"), "--index",
                    str(index_dir), "--embedder", "local"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    print(f"  built in {time.perf_counter() - t0:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--index-dir", type=Path, default=Path(tempfile.gettempdir()) / "ondata-bench-startup")
    ap.add_argument("--question", default=QUESTION)
    ap.add_argument("--child", nargs=2, metavar=("QUESTION", "SPAWNED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(str(args.index_dir), args.child[0], float(args.child[1]))
        return
    ensure_index(args.index_dir)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    walls, cpus, phases = [], [], []
    for n in range(args.runs):
        question = f"{args.question} (startup run {n} {time.time():.0f})"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ondata.cli", "ask", "--index", str(args.index_dir), question],
                       check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        spawned = time.time()
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--index-dir", str(args.index_dir), "--child",
                              question + " again", str(spawned)], check=True, cwd=ROOT, env=env, capture_output=True,
                             text=True)
        phases.append(json.loads(out.stdout.strip().splitlines()[-1]))
    load = os.getloadavg()
    print(f"cold `ondata ask` on the samples, {args.runs} runs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"  the command: wall median {statistics.median(walls):.2f} s (min {min(walls):.2f} s), "
          f"CPU median {statistics.median(cpus):.2f} s")
    print(f"  {'step':<38} {'wall s':>7} {'CPU s':>7}")
    total = cpu_total = 0.0
    for key, label in PHASES:
        value = statistics.median(p[key] for p in phases)
        cpu = statistics.median(p[f"cpu_{key}"] for p in phases)
        total, cpu_total = total + value, cpu_total + cpu
        print(f"  {label:<38} {value:7.2f} {cpu:7.2f}")
    print(f"  {'sum of the steps':<38} {total:7.2f} {cpu_total:7.2f}")
    print(f"  modules imported: {phases[-1]['modules']}; heavy packages loaded: {', '.join(phases[-1]['heavy']) or 'none'}")


if __name__ == "__main__":
    main()
