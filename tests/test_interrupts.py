"""Real SIGINT/SIGTERM against a subprocess: ``ondata ingest`` and the Prefect flow ``ingest_from_settings``.

The first signal stops taking new documents, drops the batch in flight, keeps every document
already written and (CLI) prints one line and exits 130; a second signal exits at once. Either
way the index opens afterwards and the next run converges to a fresh ingestion. The subprocess
slows the hashing embedder down (a sleep per call) so that the signal lands mid-run; how fast the
real thing stops on the sample corpus is measured by bench/interrupt.py, not here.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.test_sync_blob import doc_text

REPO = Path(__file__).resolve().parents[1]
DOCS = 24
LINE = re.compile(r"^interrupted: (\d+) of (\d+) documents written; run again to continue$")

PRELUDE = textwrap.dedent("""
    import os, sys, time
    from indexers.embedders import hashing

    _embed = hashing.HashingEmbedder.embed_documents

    def slow(self, texts):  # stands for a real model: a signal lands while it runs
        mark = os.environ.get("EMBED_MARK")
        if mark:  # when this call began (wall clock), for a test that must signal inside one
            with open(mark, "w") as fh:
                fh.write(repr(time.time()))
        time.sleep(DELAY)
        return _embed(self, texts)

    hashing.HashingEmbedder.embed_documents = slow
""")

CLI = PRELUDE + textwrap.dedent("""
    from ondata.cli import main
    sys.argv = ["ondata", *sys.argv[1:]]
    main()
""")

FLOW = PRELUDE + textwrap.dedent("""
    import json
    from ondata.flows import ingest_from_settings
    state = ingest_from_settings(source=sys.argv[1], index_dir=sys.argv[2], embedder="hashing", max_workers=2,
                                 return_state=True)
    from pipelines.flows import state_result
    report = state_result(state, raise_on_failure=False)
    print(json.dumps({"interrupted": report["interrupted"], "added": report["counts"]["added"],
                      "planned": report["planned"], "state": state.type.value, "message": state.message,
                      "flow_run_id": str(state.state_details.flow_run_id)}), flush=True)
""")


def make_docs(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for n in range(DOCS):
        (folder / f"d{n:02d}.txt").write_bytes(doc_text(n))
    return folder


def stored_sources(index_dir: Path) -> dict[str, int]:
    path = index_dir / "index.sqlite"
    if not path.exists():
        return {}
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return dict(con.execute("SELECT source_id, count(*) FROM chunks GROUP BY source_id").fetchall())
    except sqlite3.OperationalError:  # the schema is not created yet
        return {}
    finally:
        con.close()


def start(script: str, delay: float, *args: str, env: dict | None = None) -> subprocess.Popen:
    full = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200", ONDATA_CHUNK_SIZE="40", ONDATA_CHUNK_OVERLAP="0",
                **(env or {}))
    return subprocess.Popen([sys.executable, "-c", script.replace("DELAY", repr(delay)), *args], cwd=REPO, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(proc: subprocess.Popen, ready, *, late: str, timeout: float, every: float = 0.05) -> None:
    """Poll ``ready()`` while the run goes on; fail if the run ends first or ``timeout`` passes (``late``)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it was interrupted: {proc.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(late)
        time.sleep(every)


def wait_for_written(proc: subprocess.Popen, index_dir: Path, *, at_least: int = 1, timeout: float = 120) -> None:
    wait_until(proc, lambda: len(stored_sources(index_dir)) >= at_least, late="nothing was written in time",
               timeout=timeout)


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", ONDATA_CHUNK_SIZE="40", ONDATA_CHUNK_OVERLAP="0")
    return subprocess.run([sys.executable, "-m", "ondata.cli", *args], capture_output=True, text=True, cwd=REPO, env=env)


def assert_converges(docs: Path, idx: Path, tmp_path: Path, index_contents, written: int) -> None:
    again = cli("ingest", str(docs), "--index", str(idx), "--embedder", "hashing", "--json")
    assert again.returncode == 0, again.stderr
    import json

    counts = json.loads(again.stdout)["counts"]
    assert counts["added"] + counts["updated"] == DOCS - written and counts["failed"] == 0
    fresh = tmp_path / "fresh"
    assert cli("ingest", str(docs), "--index", str(fresh), "--embedder", "hashing").returncode == 0
    assert index_contents(idx) == index_contents(fresh)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_first_signal_keeps_what_was_written_prints_one_line_and_exits_130(sig, tmp_path, index_contents):
    docs, idx = make_docs(tmp_path / "docs"), tmp_path / "idx"
    proc = start(CLI, 0.15, "ingest", str(docs), "--index", str(idx), "--embedder", "hashing")
    wait_for_written(proc, idx)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("interrupted")]
    assert len(lines) == 1 and LINE.match(lines[0]), err
    assert err.count("documents written; run again") == 1, err  # once on the terminal: no log line repeating it
    written, planned = map(int, LINE.match(lines[0]).groups())
    assert planned == DOCS and 1 <= written < DOCS
    stored = stored_sources(idx)
    assert len(stored) == written  # every document reported written is there, nothing half-written
    assert_converges(docs, idx, tmp_path, index_contents, written)


def wait_inside_embedding(proc: subprocess.Popen, mark: Path, *, since: float, timeout: float = 60) -> None:
    """Until an embedding call (1 s) began less than 0.3 s ago, after ``since``: a signal sent now lands
    inside it. (Right after a write the engine prepares the next documents first: a first signal there
    stops the run before a second one arrives.)"""
    def inside() -> bool:
        try:
            began = float(mark.read_text())
        except (FileNotFoundError, ValueError):  # not yet, or caught mid-write
            return False
        return began > since and time.time() - began < 0.3

    wait_until(proc, inside, late="no embedding call began in time", timeout=timeout, every=0.02)


def test_cli_second_sigint_exits_at_once_and_the_next_run_converges(tmp_path, index_contents):
    docs, idx, mark = make_docs(tmp_path / "docs"), tmp_path / "idx", tmp_path / "embedding-began"
    proc = start(CLI, 1.0, "ingest", str(docs), "--index", str(idx), "--embedder", "hashing",
                 env={"EMBED_MARK": str(mark)})
    wait_for_written(proc, idx)
    wait_inside_embedding(proc, mark, since=time.time())
    proc.send_signal(signal.SIGINT)
    time.sleep(0.1)  # the engine is still inside that (slow) embedding call
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted again" in err and "Traceback" not in err
    written = len(stored_sources(idx))
    assert_converges(docs, idx, tmp_path, index_contents, written)


def test_prefect_flow_stops_on_sigint_keeps_what_was_written_and_converges(prefect_harness, tmp_path, index_contents):
    import json

    from prefect.settings import PREFECT_API_URL

    docs, idx = make_docs(tmp_path / "docs"), tmp_path / "idx"
    proc = start(FLOW, 0.15, str(docs), str(idx), env={"PREFECT_API_URL": PREFECT_API_URL.value()})
    wait_for_written(proc, idx)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["interrupted"] and report["planned"] == DOCS and 1 <= report["added"] < DOCS
    assert report["state"] == "CANCELLED" and LINE.match(report["message"]), report  # not "Completed"
    from prefect import get_client

    with get_client(sync_client=True) as client:  # what the server recorded for the flow run
        assert client.read_flow_run(report["flow_run_id"]).state.type.value == "CANCELLED"
    assert len(stored_sources(idx)) == report["added"]
    assert_converges(docs, idx, tmp_path, index_contents, report["added"])
