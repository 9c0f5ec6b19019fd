"""A run killed mid-way, followed by a normal run, leaves the index holding exactly the source's
content: no duplicate chunk, nothing missing, every source complete at its listed version.

(a) an injected crash after N upserts (the (N+1)th writes half its chunks, then the process "dies"
    with a BaseException no handler catches), Blob source on Azurite;
(b) a real SIGKILL of a subprocess running the engine over a local folder while it is writing.

Both run through each stage runner of the engine: ``local`` (``ingest``) and ``prefect`` (the
``PrefectRunner`` inside a flow, against the session's Prefect test server).
"Exactly" is checked against a fresh ingestion of the same source into a second index.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from indexers.embedders.hashing import HashingEmbedder
from indexers.local_index import LocalIndex
from pipelines.chunking import ChunkingConfig
from pipelines.ingest import IngestOptions, fingerprint_of, ingest, list_and_plan
from pipelines.sources.local import LocalFolderSource
from tests.test_sync_blob import doc_text

REPO = Path(__file__).resolve().parents[1]
OPTIONS = IngestOptions(chunking=ChunkingConfig(chunk_size=40, overlap=0), batch_chunks=6)
DIMS = 32


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so no per-document handler records it."""


class CrashingIndex:
    """Wraps an index: upserts 1..N go through; upsert N+1 writes half its chunks, then crashes."""

    def __init__(self, inner, *, after: int):
        self.inner, self.after, self.upserts = inner, after, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def upsert(self, chunks, *, vectors, **kw):
        self.upserts += 1
        if self.upserts > self.after:
            half = max(1, len(chunks) // 2)
            self.inner.upsert(list(chunks)[:half], vectors=vectors[:half], **kw)
            raise Crash(f"killed during upsert {self.upserts}")
        return self.inner.upsert(chunks, vectors=vectors, **kw)


def new_index(directory: Path) -> LocalIndex:
    return LocalIndex(directory, dimensions=DIMS, model_id=HashingEmbedder(dimensions=DIMS).model_id)


RUNNERS = ["local", "prefect"]


@pytest.fixture(params=RUNNERS)
def runner(request):
    if request.param == "prefect":
        request.getfixturevalue("prefect_harness")
    return request.param


def run(source, directory: Path, *, wrap=None, options=OPTIONS, runner: str = "local"):
    """One ingestion; returns an object with the report's ``added``/``updated``/``failed``."""
    index = new_index(directory)
    target = wrap(index) if wrap else index
    try:
        if runner == "local":
            return ingest(source, index=target, embedder=HashingEmbedder(dimensions=DIMS), options=options)
        summary = in_own_thread(_flow_run, source, target, options)
        c = summary["counts"]
        return SimpleNamespace(added=c["added"], updated=c["updated"],
                               failed=[r for r in summary["results"] if r["status"] == "failed"])
    finally:
        index.close()


def _flow_run(source, index, options) -> dict:
    from pipelines.flows import Components, run_ingest_flow

    return run_ingest_flow(Components(source, index, HashingEmbedder(dimensions=DIMS)), options=options,
                           max_workers=2, artifact_key=None)


def in_own_thread(fn, *args):
    """``fn(*args)`` in a fresh thread (fresh context variables), re-raising whatever it raised there.

    A ``Crash`` escaping a flow stands for a dead process, but this process goes on: Prefect's run
    context of the crashed flow must not leak into the next flow run of the test (it would become
    its parent, and the test server rejects the unknown parent)."""
    out: dict = {}

    def target() -> None:
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            out["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def assert_exactly_the_source(source, directory: Path, tmp: Path, index_contents) -> None:
    fresh = tmp / f"fresh-{directory.name}"
    report = run(source, fresh)
    assert not report.failed
    got, want = index_contents(directory), index_contents(fresh)
    assert all(n == 1 for n in got.values()), "a chunk is duplicated"
    assert got == want
    index = new_index(directory)
    try:
        records = {r.source_id: (r.version, r.complete) for r in index.list_sources()}
    finally:
        index.close()
    fingerprint = fingerprint_of(OPTIONS, HashingEmbedder(dimensions=DIMS))
    assert records == {i.id: (fingerprint.stamp(i), True) for i in source.list_items()}


@pytest.mark.azurite
@pytest.mark.parametrize("after", [0, 1, 3])
def test_injected_crash_after_n_upserts_then_rerun_converges(runner, after, tmp_path, azurite, blob_container,
                                                             index_contents):
    from pipelines.sources.blob import BlobDocumentSource

    for n in range(10):
        blob_container.upload_blob(f"kb/r{n:02d}.txt", doc_text(n))
    source = BlobDocumentSource(container=blob_container.container_name, connection_string=azurite.connection_string)
    idx = tmp_path / "idx"
    assert run(source, idx).added == 10

    for n in (1, 4, 6, 8):
        blob_container.upload_blob(f"kb/r{n:02d}.txt", doc_text(n, edition=2), overwrite=True)
    blob_container.delete_blob("kb/r03.txt")
    for n in (10, 11):
        blob_container.upload_blob(f"kb/r{n:02d}.txt", doc_text(n))

    crashing = None

    def wrap(index):
        nonlocal crashing
        crashing = CrashingIndex(index, after=after)
        return crashing

    with pytest.raises(Crash):
        run(source, idx, wrap=wrap, runner=runner)
    assert crashing.upserts == after + 1
    index = new_index(idx)
    try:
        records = index.list_sources()
        plan = list_and_plan(source, index, fingerprint=fingerprint_of(OPTIONS, HashingEmbedder(dimensions=DIMS)))
    finally:
        index.close()
    assert plan.to_process  # the crash left work undone
    if after == 0:  # the first upsert wrote half its chunks: a source is seen as incomplete
        assert any(not r.complete for r in records)

    report = run(source, idx, runner=runner)
    assert not report.failed
    assert_exactly_the_source(source, idx, tmp_path, index_contents)


WORKER = textwrap.dedent("""
    import sys, time
    from indexers.embedders.hashing import HashingEmbedder
    from indexers.local_index import LocalIndex
    from pipelines.chunking import ChunkingConfig
    from pipelines.ingest import IngestOptions, ingest
    from pipelines.sources.local import LocalFolderSource

    class Slow(HashingEmbedder):
        def embed_documents(self, texts):
            time.sleep(0.05)
            return super().embed_documents(texts)

    folder, index_dir, dims, runner = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    emb = Slow(dimensions=dims)
    index = LocalIndex(index_dir, dimensions=dims, model_id=HashingEmbedder(dimensions=dims).model_id)
    options = IngestOptions(chunking=ChunkingConfig(chunk_size=40, overlap=0), batch_chunks=3)
    report = lambda r: print(r.status, r.source_id, flush=True)
    if runner == "local":
        ingest(LocalFolderSource(folder), index=index, embedder=emb, options=options, on_result=report)
    else:
        from prefect import flow
        from pipelines.engine import run_ingest
        from pipelines.flows import Components, PrefectRunner

        @flow(name="sigkill-worker")
        def worker():
            run_ingest(PrefectRunner(Components(LocalFolderSource(folder), index, emb), window=4), options=options,
                       on_result=report)

        worker()
    print("finished", flush=True)
""")


def test_sigkill_mid_run_then_rerun_converges(runner, tmp_path, index_contents):
    docs, idx = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    for n in range(30):
        (docs / f"d{n:02d}.txt").write_bytes(doc_text(n))
    source = LocalFolderSource(docs)
    assert run(source, idx, runner=runner).added == 30

    for n in range(0, 30, 3):
        (docs / f"d{n:02d}.txt").write_bytes(doc_text(n, edition=2))
    for n in (1, 2):
        (docs / f"d{n:02d}.txt").unlink()
    for n in range(30, 45):
        (docs / f"d{n:02d}.txt").write_bytes(doc_text(n))

    env = dict(os.environ, PYTHONPATH=str(REPO))
    if runner == "prefect":
        from prefect.settings import PREFECT_API_URL

        env["PREFECT_API_URL"] = PREFECT_API_URL.value()  # the session's test server
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(docs), str(idx), str(DIMS), runner],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    written = 0
    try:
        for line in proc.stdout:
            if line.startswith(("added", "updated")):
                written += 1
            if written == 6 or line.startswith("finished"):
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert written == 6, f"the worker did not get far enough: {proc.stderr.read()[-2000:]}"
    index = new_index(idx)  # the index opens after the kill, and knows what is left to do
    try:
        fingerprint = fingerprint_of(OPTIONS, HashingEmbedder(dimensions=DIMS))
        assert list_and_plan(source, index, fingerprint=fingerprint).to_process
    finally:
        index.close()

    report = run(source, idx, runner=runner)
    assert not report.failed
    assert report.added + report.updated > 0  # the kill left work undone, the re-run did it
    assert_exactly_the_source(source, idx, tmp_path, index_contents)
