"""Local end-to-end ingestion: data/samples twice, changes, deletions, bad documents, the CLI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from indexers.embedders.cache import CachedEmbedder, EmbeddingCache
from indexers.embedders.hashing import HashingEmbedder
from indexers.local_index import LocalIndex
from indexers.records import SearchRequest
from pipelines.chunking import ChunkingConfig
from pipelines.ingest import IngestOptions, ingest
from pipelines.sources.local import LocalFolderSource

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples" / "docs"


@pytest.fixture
def docs(tmp_path):
    target = tmp_path / "docs"
    shutil.copytree(SAMPLES, target)
    return target


def _setup(tmp_path, name="idx"):
    embedder = CachedEmbedder(HashingEmbedder(dimensions=128), EmbeddingCache(tmp_path / f"{name}-cache.sqlite"))
    index = LocalIndex(tmp_path / name, dimensions=128, model_id=embedder.model_id)
    return embedder, index


def _contents(index: LocalIndex) -> dict[str, list[str]]:
    """source id -> chunk contents in chunk order, read back from the index."""
    import sqlite3

    con = sqlite3.connect(index.sqlite_path)
    rows = con.execute("SELECT source_id, chunk_index, content FROM chunks ORDER BY source_id, chunk_index").fetchall()
    con.close()
    out: dict[str, list[str]] = {}
    for sid, _, content in rows:
        out.setdefault(sid, []).append(content)
    return out


def test_samples_ingest_twice_second_run_does_nothing(docs, tmp_path):
    embedder, index = _setup(tmp_path)
    first = ingest(LocalFolderSource(docs), index=index, embedder=embedder)
    files = sorted(p.name for p in docs.iterdir() if not p.name.endswith(".meta.json"))
    assert first.counts() == {"added": len(files), "updated": 0, "deleted": 0, "unchanged": 0, "failed": 0, "skipped": 0}
    assert first.embeddings_computed == first.chunks_written == index.count() > len(files)
    assert first.pages_parsed >= 27  # the handbook alone has 27 pages
    assert {s.source_id for s in index.list_sources()} == set(files)
    assert all(s.complete for s in index.list_sources())

    second = ingest(LocalFolderSource(docs), index=index, embedder=embedder)
    assert second.counts()["unchanged"] == len(files)
    assert second.documents_parsed == 0 and second.embeddings_computed == 0 and second.chunks_written == 0


def test_change_delete_add_converge_to_the_folder(docs, tmp_path):
    embedder, index = _setup(tmp_path)
    ingest(LocalFolderSource(docs), index=index, embedder=embedder)
    before = _contents(index)

    (docs / "it_security_guidelines.md").write_text("# IT security\n\nPasswords must have 16 characters.\n")
    (docs / "incident_report_INC-2024-0712.txt").unlink()
    (docs / "new_note.txt").write_text("The Westgate depot opens on 3 March at 06:00.\n")
    report = ingest(LocalFolderSource(docs), index=index, embedder=embedder)
    assert report.counts() == {"added": 1, "updated": 1, "deleted": 1, "unchanged": len(before) - 2, "failed": 0, "skipped": 0}
    after = _contents(index)
    assert "incident_report_INC-2024-0712.txt" not in after
    (changed,) = after["it_security_guidelines.md"]
    assert "IT security" in changed and "Passwords must have 16 characters." in changed
    for sid, chunks in before.items():  # untouched documents keep exactly their chunks
        if sid not in ("it_security_guidelines.md", "incident_report_INC-2024-0712.txt"):
            assert after[sid] == chunks

    # the result equals a fresh ingestion of the same folder
    embedder2, fresh = _setup(tmp_path, "fresh")
    ingest(LocalFolderSource(docs), index=fresh, embedder=embedder2)
    assert _contents(fresh) == after
    hits = index.search(SearchRequest(text="Westgate depot opens", mode="text", top=1))
    assert hits and hits[0].chunk.source_id == "new_note.txt"


def test_bad_documents_are_reported_and_the_rest_lands(docs, tmp_path):
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 100)
    (docs / "empty.txt").write_bytes(b"")
    (docs / "tool.exe").write_bytes(b"MZ\x90\x00")
    embedder, index = _setup(tmp_path)
    report = ingest(LocalFolderSource(docs), index=index, embedder=embedder, options=IngestOptions(batch_chunks=8))
    failed = {r.source_id: r for r in report.failed}
    assert set(failed) == {"broken.pdf", "empty.txt"}
    assert failed["broken.pdf"].error_type == "CorruptDocumentError"
    assert failed["empty.txt"].error_type == "EmptyDocumentError"
    (skipped,) = report.skipped  # an unsupported type is listed as skipped, never read, not a failure
    assert (skipped.source_id, skipped.error_type) == ("tool.exe", "UnsupportedFormatError")
    assert report.counts()["skipped"] == 1 and report.counts()["failed"] == 2
    for r in (*failed.values(), skipped):
        assert r.source_id in r.error  # the message names the document
    assert report.added == len(list(SAMPLES.glob("*"))) - len(list(SAMPLES.glob("*.meta.json")))
    assert not report.nothing_done


def test_oversized_document_fails_before_download(docs, tmp_path):
    embedder, index = _setup(tmp_path)
    report = ingest(LocalFolderSource(docs), index=index, embedder=embedder, options=IngestOptions(max_bytes=20_000))
    big = {r.source_id for r in report.failed if r.error_type == "DocumentTooLargeError"}
    assert "employee_handbook.pdf" in big
    assert report.added >= 1  # small files still land


def test_chunks_carry_acl_groups_and_metadata(docs, tmp_path):
    embedder, index = _setup(tmp_path)
    ingest(LocalFolderSource(docs), index=index, embedder=embedder, options=IngestOptions(chunking=ChunkingConfig(chunk_size=256, overlap=20)))
    meta = json.loads((docs / "fy2025_budget_summary.pdf.meta.json").read_text())
    hits = index.search(SearchRequest(text="budget", mode="text", top=50, groups=("nobody",), public_when_no_groups=False))
    assert hits == []
    hits = index.search(SearchRequest(text="budget", mode="text", top=50, groups=tuple(meta["groups"][:1]),
                                      public_when_no_groups=False))
    assert hits and all(set(h.chunk.groups) & set(meta["groups"]) for h in hits)
    assert any(h.chunk.source_id == "fy2025_budget_summary.pdf" and h.chunk.page_start == 1 for h in hits)


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "ondata.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**__import__("os").environ, "COLUMNS": "200"})


def test_cli_ingest_summary_dry_run_and_exit_codes(docs, tmp_path):
    idx = tmp_path / "cli-idx"
    out = _cli("ingest", str(docs), "--index", str(idx), "--embedder", "hashing")
    assert out.returncode == 0, out.stderr
    assert "Ingestion summary" in out.stdout and "embeddings computed" in out.stdout
    assert re.search(r"documents parsed \(\d+ pages\)", out.stdout)  # the samples include PDFs
    (docs / "it_security_guidelines.md").write_text("# Changed\n\nNew rules apply.\n")
    dry = _cli("ingest", str(docs), "--index", str(idx), "--embedder", "hashing", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    data = json.loads(dry.stdout)
    assert data["counts"]["updated"] == 1 and data["chunks_written"] == 0
    stats = _cli("index", "stats", "--index", str(idx), "--json")
    assert json.loads(stats.stdout)["sources"] == data["listed"]

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.pdf").write_bytes(b"not a pdf")
    failed = _cli("ingest", str(bad), "--index", str(tmp_path / "bad-idx"), "--embedder", "hashing")
    assert failed.returncode == 1
    assert "x.pdf" in failed.stdout
    assert "pages)" not in failed.stdout  # nothing paged was parsed: no "(0 pages)"

    missing = _cli("ingest", str(tmp_path / "nope"), "--index", str(idx))
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("error:") and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_cli_include_exclude_and_links_skipped_with_a_warning(docs, tmp_path):
    (docs / "env.txt").symlink_to("/proc/self/environ")
    (docs / "notes.md").symlink_to(docs / "it_security_guidelines.md")
    idx = tmp_path / "glob-idx"
    out = _cli("ingest", str(docs), "--index", str(idx), "--embedder", "hashing", "--json", "--follow-symlinks",
               "--include", "*.md", "--include", "*.txt", "--exclude", "incident_*")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    added = {r["source_id"] for r in data["results"] if r["status"] == "added"}
    skipped = {r["source_id"]: r["error_type"] for r in data["results"] if r["status"] == "skipped"}
    assert "notes.md" in added  # a link that stays inside the folder, followed on request
    assert all(s.endswith((".md", ".txt")) and not s.startswith("incident_") for s in added)
    assert skipped == {"env.txt": "SymlinkError"} and data["counts"]["skipped"] == 1
    assert "outside the folder" in out.stderr  # the warning


def test_cli_says_each_failed_or_skipped_document_once(docs, tmp_path):
    (docs / "env.txt").symlink_to("/proc/self/environ")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    out = _cli("ingest", str(docs), "--index", str(tmp_path / "once-idx"), "--embedder", "hashing")
    assert out.returncode == 0, out.stderr
    said = out.stdout + out.stderr
    assert said.count("skipped env.txt") == 1 and said.count("failed broken.pdf") == 1  # in the summary only
    assert "EOF marker" not in said  # pypdf's own warning names no document: the summary line says it
    assert said.index("Ingestion summary") < said.index("failed broken.pdf")
    assert "ingesting (1 failed)" in out.stdout  # the progress line counts failures as they happen
    verbose = _cli("-v", "ingest", str(docs), "--index", str(tmp_path / "once-idx"), "--embedder", "hashing")
    assert (verbose.stdout + verbose.stderr).count("failed broken.pdf") == 2  # -v: the log line too


def test_dry_run_writes_nothing(docs, tmp_path):
    idx = tmp_path / "never"
    out = _cli("ingest", str(docs), "--index", str(idx), "--embedder", "hashing", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "would be added" in out.stdout
    assert not idx.exists()


@pytest.mark.parametrize("ahead", [0, 1, 3])
def test_prefetched_keeps_order_bounds_lookahead_and_delivers_errors(ahead):
    import threading

    from pipelines.ingest import prefetched
    from pipelines.records import SourceItem

    started: list[str] = []
    gate = threading.Lock()

    def prepare(item):
        with gate:
            started.append(item.id)
        if item.id == "bad":
            raise ValueError("broken")
        return item.id.upper()

    items = [SourceItem(id=i, version="1", name=i) for i in ("a", "bad", "c", "d", "e")]
    seen = []
    for n, (item, future) in enumerate(prefetched(items, prepare, ahead=ahead)):
        # never more than `ahead` items prepared beyond the one being consumed
        assert len(started) <= n + 1 + ahead
        try:
            seen.append((item.id, future.result()))
        except ValueError as exc:
            seen.append((item.id, str(exc)))
    assert seen == [("a", "A"), ("bad", "broken"), ("c", "C"), ("d", "D"), ("e", "E")]


@pytest.mark.parametrize("ahead", [0, 2])
def test_prefetched_keeps_no_document_it_handed_out(ahead):
    """Memory flat in corpus size: a prepared document is freed once the consumer lets go of it."""
    import gc
    import weakref

    from pipelines.ingest import prefetched
    from pipelines.records import SourceItem

    class Prepared:  # stands in for a parsed and chunked document
        pass

    handed: list[weakref.ref] = []
    items = [SourceItem(id=f"d{i}", version="1", name=f"d{i}") for i in range(20)]
    for n, (item, future) in enumerate(prefetched(items, lambda item: Prepared(), ahead=ahead)):
        handed.append(weakref.ref(future.result()))
        del future
        gc.collect()
        assert [i for i, r in enumerate(handed[:-1]) if r() is not None] == [], n  # those before this one


def test_cli_invalid_settings_are_one_line(docs, tmp_path):
    out = _cli("ingest", str(docs), "--index", str(tmp_path / "i"), "--chunk-size", "100", "--overlap", "80")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == ("error: invalid settings: chunk_overlap must be >= 0 and smaller than half of "
                                  "chunk_size (100), got 80")
    bad = _cli("ingest", str(docs), "--index", str(tmp_path / "i"), "--embedder", "foo")
    assert bad.returncode == 2 and bad.stderr.startswith("error: invalid settings: embedder:")
    assert not (tmp_path / "i").exists()
