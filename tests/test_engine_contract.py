"""The run engine's contract, through both stage runners (pipelines/engine.py).

Every test runs once with the ``LocalRunner`` (``pipelines.ingest.ingest``) and once with the
``PrefectRunner`` (``pipelines.flows.run_ingest_flow`` under the session's Prefect test server):
the counts, the dry run, a bad document failing alone, empty documents, the stale chunks of a
document whose new version fails, and a stopped run that keeps what it wrote and converges.
The crash and SIGKILL tests through both runners are in tests/test_crash_recovery.py, the real
signal tests in tests/test_interrupts.py.
"""

from __future__ import annotations

import threading
from contextlib import closing
from pathlib import Path

import pytest

from indexers.embedders.hashing import HashingEmbedder
from indexers.local_index import LocalIndex
from pipelines.chunking import ChunkingConfig
from pipelines.engine import IngestOptions
from pipelines.sources.local import LocalFolderSource
from tests.test_sync_blob import doc_text
from picky_index import PickyIndex

DIMS = 32
OPTIONS = IngestOptions(chunking=ChunkingConfig(chunk_size=40, overlap=0), batch_chunks=12)
RUNNERS = ["local", "prefect"]


def run_with(runner: str, source, index, *, options=OPTIONS, embedder=None, stop=None, on_result=None) -> dict:
    """One ingestion through the named runner; the report as the dict both return."""
    embedder = embedder or HashingEmbedder(dimensions=DIMS)
    if runner == "local":
        from pipelines.ingest import ingest

        return ingest(source, index=index, embedder=embedder, options=options, stop=stop,
                      on_result=on_result).to_dict()
    from prefect import flow

    from pipelines.flows import Components

    @flow(name="contract")
    def contract_flow() -> dict:  # the body, so that the test can hand it a stop event and a callback
        from pipelines.engine import run_ingest
        from pipelines.flows import PrefectRunner

        r = PrefectRunner(Components(source, index, embedder), window=4)
        return run_ingest(r, options=options, stop=stop, on_result=on_result).to_dict()

    if stop is None and on_result is None:
        from pipelines.flows import run_ingest_flow

        return run_ingest_flow(Components(source, index, embedder), options=options, max_workers=2)
    return contract_flow()


@pytest.fixture(params=RUNNERS)
def runner(request):
    if request.param == "prefect":
        request.getfixturevalue("prefect_harness")
    return request.param


def new_index(directory: Path) -> LocalIndex:
    """A local index, not yet created (``closing(...)``: entering a LocalIndex would create it)."""
    return LocalIndex(directory, dimensions=DIMS, model_id=HashingEmbedder(dimensions=DIMS).model_id)


def write_docs(folder: Path, numbers, edition: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (folder / f"doc-{n:02d}.txt").write_bytes(doc_text(n, edition))


def by_status(report: dict) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in report["results"]:
        out.setdefault(r["status"], set()).add(r["source_id"])
    return out


def test_counts_over_two_runs_and_the_result_equals_a_fresh_run(runner, tmp_path, index_contents):
    docs = tmp_path / "docs"
    write_docs(docs, range(6))
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 50)
    (docs / "tool.exe").write_bytes(b"MZ\x90\x00")
    with closing(new_index(tmp_path / "idx")) as index:
        first = run_with(runner, LocalFolderSource(docs), index)
        assert first["counts"] == {"added": 6, "updated": 0, "deleted": 0, "unchanged": 0, "failed": 1, "skipped": 1}
        assert first["planned"] == 7 and not first["interrupted"]
        assert first["embeddings_computed"] == first["chunks_written"] == index.count()
        assert {"list", "fetch_parse", "chunk", "embed", "index"} <= set(first["stage_seconds"])

        write_docs(docs, [1], edition=2)
        (docs / "doc-02.txt").unlink()
        write_docs(docs, [9])
        second = run_with(runner, LocalFolderSource(docs), index)
    assert second["counts"] == {"added": 1, "updated": 1, "deleted": 1, "unchanged": 4, "failed": 1, "skipped": 1}
    assert by_status(second)["updated"] == {"doc-01.txt"} and by_status(second)["deleted"] == {"doc-02.txt"}
    assert second["documents_parsed"] == 2  # unchanged documents are not even read

    with closing(new_index(tmp_path / "fresh")) as fresh:
        run_with("local", LocalFolderSource(docs), fresh)
    assert index_contents(tmp_path / "idx") == index_contents(tmp_path / "fresh")


def test_dry_run_reports_the_plan_and_writes_nothing(runner, tmp_path):
    docs = tmp_path / "docs"
    write_docs(docs, range(3))
    with closing(new_index(tmp_path / "idx")) as index:
        plan = run_with(runner, LocalFolderSource(docs), index, options=IngestOptions(dry_run=True))
    assert plan["dry_run"] and plan["counts"]["added"] == 3 and plan["chunks_written"] == 0
    assert not (tmp_path / "idx").exists()  # not even an empty index


def test_a_bad_document_fails_alone_in_its_batch(runner, tmp_path, index_contents):
    docs = tmp_path / "docs"
    write_docs(docs, range(5))
    one_batch = IngestOptions(chunking=OPTIONS.chunking, batch_chunks=10_000)
    with closing(new_index(tmp_path / "idx")) as index:
        report = run_with(runner, LocalFolderSource(docs), PickyIndex(index, refuse="doc-03.txt"), options=one_batch)
    assert report["counts"]["added"] == 4 and report["counts"]["failed"] == 1
    (failed,) = [r for r in report["results"] if r["status"] == "failed"]
    assert (failed["source_id"], failed["error_type"]) == ("doc-03.txt", "IndexError_")
    assert {sid for sid, _ in index_contents(tmp_path / "idx")} == {f"doc-{n:02d}.txt" for n in (0, 1, 2, 4)}


def test_empty_documents_fail_with_one_error_type(runner, tmp_path):
    docs = tmp_path / "docs"
    write_docs(docs, [0])
    (docs / "empty.txt").write_bytes(b"")
    (docs / "blank.md").write_text("   \n\n\t\n")
    with closing(new_index(tmp_path / "idx")) as index:
        report = run_with(runner, LocalFolderSource(docs), index)
    failed = {r["source_id"]: r for r in report["results"] if r["status"] == "failed"}
    assert set(failed) == {"empty.txt", "blank.md"}
    assert {r["error_type"] for r in failed.values()} == {"EmptyDocumentError"}
    assert all(sid in r["error"] for sid, r in failed.items())  # the message names the document


@pytest.mark.parametrize("keep", [False, True])
def test_a_failed_new_version_removes_the_old_chunks_unless_kept(runner, keep, tmp_path, index_contents):
    docs = tmp_path / "docs"
    write_docs(docs, range(3))
    with closing(new_index(tmp_path / "idx")) as index:
        run_with(runner, LocalFolderSource(docs), index)
        (docs / "doc-01.txt").write_bytes(b"")  # the new version has no text
        options = IngestOptions(chunking=OPTIONS.chunking, batch_chunks=12, keep_stale_on_error=keep)
        report = run_with(runner, LocalFolderSource(docs), index, options=options)
        (failed,) = [r for r in report["results"] if r["status"] == "failed"]
        assert (failed["source_id"], failed["stale"]) == ("doc-01.txt", "kept" if keep else "removed")
        stored = {sid for sid, _ in index_contents(tmp_path / "idx")}
        assert ("doc-01.txt" in stored) is keep
        assert {"doc-00.txt", "doc-02.txt"} <= stored
        if not keep:  # the next run tries it again as a new document
            (docs / "doc-01.txt").write_bytes(doc_text(1, edition=3))
            assert run_with(runner, LocalFolderSource(docs), index)["counts"]["added"] == 1


def test_a_stopped_run_keeps_what_it_wrote_and_the_next_run_continues(runner, tmp_path, index_contents):
    docs = tmp_path / "docs"
    write_docs(docs, range(12))
    stop = threading.Event()
    written: list[str] = []

    def on_result(r):
        if r.status == "added":
            written.append(r.source_id)
            if len(written) >= 3:
                stop.set()

    small = IngestOptions(chunking=OPTIONS.chunking, batch_chunks=4)
    with closing(new_index(tmp_path / "idx")) as index:
        report = run_with(runner, LocalFolderSource(docs), index, options=small, stop=stop, on_result=on_result)
        assert report["interrupted"] and report["planned"] == 12
        assert 3 <= report["counts"]["added"] < 12
        stored = {sid for sid, _ in index_contents(tmp_path / "idx")}
        assert stored == set(written)  # every document reported written is in the index, nothing else
        assert all(s.complete for s in index.list_sources())
        rest = run_with(runner, LocalFolderSource(docs), index, options=small)
    assert rest["counts"]["added"] == 12 - len(written) and rest["counts"]["unchanged"] == len(written)
    with closing(new_index(tmp_path / "fresh")) as fresh:
        run_with("local", LocalFolderSource(docs), fresh, options=small)
    assert index_contents(tmp_path / "idx") == index_contents(tmp_path / "fresh")


# ---------------------------------------------------------------- the report and run names (no run)


def test_markdown_summary_lists_documents_per_status_truncated_past_the_limit():
    from pipelines.engine import DocumentResult, IngestReport

    report = IngestReport(source="/data/docs", index="local /idx", started_at="2026-01-01T00:00:00+00:00",
                          stage_seconds={"embed": 1.5, "index": 0.25})
    report.results += [DocumentResult(f"a{n:03d}.txt", "added", chunks=2, pages=1) for n in range(60)]
    report.results += [DocumentResult("old.txt", "deleted"),
                       DocumentResult("x.pdf", "failed", error="x.pdf is damaged", error_type="CorruptDocumentError",
                                      stale="removed")]
    md = report.to_markdown()
    assert "## Added (60)" in md and "`a049.txt`" in md and "`a050.txt`" not in md
    assert "... and 10 more added" in md
    assert "## Deleted (1)" in md and "`old.txt`" in md
    assert "| `x.pdf` | x.pdf is damaged (CorruptDocumentError; old version removed) |" in md
    assert "| embed | 1.50 |" in md and "## Updated" not in md


def test_the_report_keeps_failures_and_counts_past_its_limit_of_written_documents():
    from pipelines.engine import DocumentResult, IngestReport

    report = IngestReport(source="/data/docs", index="local /idx", started_at="2026-01-01T00:00:00+00:00")
    for n in range(30):
        report.add(DocumentResult(f"a{n:03d}.txt", "added", chunks=1), keep=10)
        report.add(DocumentResult(f"x{n:03d}.pdf", "failed", error="damaged", error_type="CorruptDocumentError"),
                   keep=10)
    assert report.added == 30 and len(report.failed) == 30  # every failure kept, the written ones counted
    assert [r.source_id for r in report.results if r.status == "added"] == [f"a{n:03d}.txt" for n in range(10)]
    assert report.results_dropped == {"added": 20} and report.counts()["added"] == 30
    md = report.to_markdown()
    assert "## Added (30)" in md and "... and 20 more added" in md and "## Failed (30)" in md
    assert "_kept" not in report.to_dict() and report.to_dict()["counts"]["added"] == 30


def test_run_names_name_the_scope_and_the_minute():
    from datetime import datetime, timezone

    from pipelines.flows import run_name, scope_of

    when = datetime(2026, 3, 4, 5, 6, tzinfo=timezone.utc)
    assert run_name("/srv/data/hr-docs/", now=when) == "ingest-hr-docs-20260304-0506"
    assert scope_of("az://documents/policies/") == "documents-policies"
    assert scope_of("az://documents") == "documents"
