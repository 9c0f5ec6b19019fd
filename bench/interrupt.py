"""How fast `ondata ingest` stops on Ctrl-C: the sample corpus, the real local embedder, a real SIGINT.

Starts `python -m ondata.cli ingest data/samples/docs` into a fresh index, waits until the first
document is in the index (or ``--after`` seconds), sends SIGINT and times the exit. Then re-runs
to show the next run continues (documents kept, the rest added). Prints one line per trial and the
median. Target: exit 130 within 3 s, one `interrupted: ...` line, every written document kept.

    .venv/bin/python bench/interrupt.py [--trials 3] [--embedder local] [--second]

``--second`` sends a second SIGINT 0.2 s after the first (exit at once).
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples" / "docs"


def stored(index_dir: Path) -> int:
    path = index_dir / "index.sqlite"
    if not path.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            return int(con.execute("SELECT count(DISTINCT source_id) FROM chunks").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def trial(embedder: str, second: bool, after: float | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        idx = Path(tmp) / "idx"
        env = dict(os.environ, COLUMNS="200")
        cmd = [sys.executable, "-m", "ondata.cli", "ingest", str(SAMPLES), "--index", str(idx), "--embedder", embedder]
        t0 = time.perf_counter()
        # as from a terminal: a shell starts background jobs with SIGINT ignored, which the child would inherit
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        while (stored(idx) < 1 if after is None else time.perf_counter() - t0 < after) and proc.poll() is None:
            time.sleep(0.02)
        if proc.poll() is not None:
            return {"note": "finished before the signal", "run_s": time.perf_counter() - t0}
        t_sig = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        if second:
            time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
        stop_s = time.perf_counter() - t_sig
        lines = [ln for ln in err.splitlines() if ln.startswith("interrupted")]
        kept = stored(idx)
        again = subprocess.run(cmd + ["--json"], cwd=ROOT, env=env, capture_output=True, text=True)
        return {"exit": proc.returncode, "stop_s": stop_s, "kept": kept, "line": lines[-1] if lines else "",
                "traceback": "Traceback" in err, "rerun_exit": again.returncode}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--embedder", default="local", choices=("local", "hashing"))
    ap.add_argument("--second", action="store_true", help="send a second SIGINT 0.2 s after the first")
    ap.add_argument("--after", type=float, default=None,
                    help="send the signal after this many seconds instead of after the first written document")
    args = ap.parse_args()
    times = []
    for n in range(args.trials):
        r = trial(args.embedder, args.second, args.after)
        print(f"trial {n + 1}: {r}", flush=True)
        if "stop_s" in r:
            times.append(r["stop_s"])
    if times:
        print(f"SIGINT -> exit: median {statistics.median(times):.2f} s, max {max(times):.2f} s over {len(times)} "
              f"trials ({args.embedder} embedder, {SAMPLES.relative_to(ROOT)}); target <= 3 s")


if __name__ == "__main__":
    main()
