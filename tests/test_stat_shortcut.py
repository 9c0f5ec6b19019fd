"""O(changed) re-runs of a folder: files whose change token (size, mtime, ctime, inode) is unchanged since
it was stored are not hashed again; a touched file is not re-embedded; racy files are always hashed."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from indexers.embedders.cache import CachedEmbedder, EmbeddingCache
from indexers.embedders.hashing import HashingEmbedder
from indexers.local_index import LocalIndex
from indexers.records import SourceRecord
from pipelines.ingest import IngestOptions, ingest
from pipelines.sources import local
from pipelines.sources.local import LocalFolderSource, stat_token, stored_content_version

DIMS = 32


class HashCounter:
    """Stands in for ``hashlib`` in pipelines.sources.local and counts the documents hashed (not sidecars)."""

    def __init__(self) -> None:
        self.files = 0

    def sha256(self, data: bytes = b""):
        if not data:  # documents are hashed block by block from an empty hasher; sidecars in one call
            self.files += 1
        return hashlib.sha256(data)


@pytest.fixture
def hashed(monkeypatch) -> HashCounter:
    counter = HashCounter()
    monkeypatch.setattr(local, "hashlib", counter)
    return counter


def _old(path: Path, seconds_ago: float = 3600) -> None:
    t = time.time_ns() - int(seconds_ago * 1e9)
    os.utime(path, ns=(t, t))


def _corpus(root: Path, n: int = 6) -> list[Path]:
    root.mkdir()
    files = []
    for i in range(n):
        p = root / f"doc{i}.txt"
        p.write_text(f"Document {i} is about topic {i}. It has a second sentence about apples {i}.\n")
        files.append(p)
    (root / "doc0.txt.meta.json").write_text('{"groups": ["hr"]}')
    return files


def _run(root: Path, tmp: Path):
    embedder = CachedEmbedder(HashingEmbedder(dimensions=DIMS), EmbeddingCache(tmp / "cache.sqlite"))
    with LocalIndex(tmp / "idx", dimensions=DIMS, model_id=embedder.model_id) as index:
        report = ingest(LocalFolderSource(root), index=index, embedder=embedder, options=IngestOptions(prefetch=0))
        records = {r.source_id: r for r in index.list_sources()}
    return report, records


def test_unchanged_files_are_not_hashed_again_and_changed_ones_are(tmp_path, hashed, monkeypatch):
    monkeypatch.setattr(local, "RACY_NS", 50_000_000)  # 50 ms instead of 1 s keeps the test short
    files = _corpus(tmp_path / "docs")
    time.sleep(0.1)
    report, records = _run(tmp_path / "docs", tmp_path)
    assert hashed.files == 6 and report.chunks_written == 6
    assert records["doc1.txt"].stat.startswith(stat_token(os.stat(files[1])) + "@")

    hashed.files = 0
    report, again = _run(tmp_path / "docs", tmp_path)
    assert hashed.files == 0  # nothing changed: no document read
    assert report.unchanged == 6 and report.chunks_written == 0
    assert {k: (r.version, r.stat) for k, r in again.items()} == {k: (r.version, r.stat) for k, r in records.items()}

    files[2].write_text("Document 2 now says something else entirely, about pears.\n")
    (tmp_path / "docs" / "doc0.txt.meta.json").write_text('{"groups": ["eng"]}')  # sidecar: always read
    time.sleep(0.1)
    hashed.files = 0
    report, after = _run(tmp_path / "docs", tmp_path)
    assert hashed.files == 1  # only the changed file
    assert sorted(r.source_id for r in report.results if r.status == "updated") == ["doc0.txt", "doc2.txt"]
    assert after["doc0.txt"].groups == ("eng",) and after["doc2.txt"].version != records["doc2.txt"].version


def test_a_touched_file_with_the_same_content_is_not_re_embedded_and_its_new_token_is_kept(tmp_path, hashed, monkeypatch):
    monkeypatch.setattr(local, "RACY_NS", 50_000_000)
    files = _corpus(tmp_path / "docs")
    time.sleep(0.1)
    _, records = _run(tmp_path / "docs", tmp_path)
    _old(files[1])  # touched: new mtime (and ctime), same bytes
    time.sleep(0.1)
    hashed.files = 0
    report, after = _run(tmp_path / "docs", tmp_path)
    assert hashed.files == 1  # its token changed: hashed, found unchanged
    assert report.unchanged == 6 and report.chunks_written == 0 and report.embeddings_computed == 0
    assert after["doc1.txt"].version == records["doc1.txt"].version
    assert after["doc1.txt"].stat != records["doc1.txt"].stat  # the new token was stored ...
    hashed.files = 0
    _run(tmp_path / "docs", tmp_path)
    assert hashed.files == 0  # ... so the next run skips it


def test_a_same_size_same_mtime_edit_within_the_racy_window_is_detected(tmp_path, hashed, monkeypatch):
    # A filesystem whose timestamps do not move within its granularity: size and times stay the same
    # across the edit. Simulated by a token without ctime (utime cannot set ctime back).
    monkeypatch.setattr(local, "stat_token", lambda st: f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_dev}")
    monkeypatch.setattr(local, "RACY_NS", 10**12)  # ~17 min: every write in this test is within the window
    files = _corpus(tmp_path / "docs")
    _run(tmp_path / "docs", tmp_path)
    before = os.stat(files[3])
    files[3].write_text(files[3].read_text().replace("apples", "plumss"))  # same size
    os.utime(files[3], ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(files[3]).st_size == before.st_size and os.stat(files[3]).st_mtime_ns == before.st_mtime_ns
    hashed.files = 0
    report, _ = _run(tmp_path / "docs", tmp_path)
    assert hashed.files == 6  # every token is racy: every file hashed
    assert [r.source_id for r in report.results if r.status == "updated"] == ["doc3.txt"]


def test_the_racy_rule_trusts_a_token_only_when_taken_a_second_after_the_last_change(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("hello")
    _old(p, 10)
    st = os.stat(p)
    changed = max(st.st_mtime_ns, st.st_ctime_ns)
    rec = lambda taken: SourceRecord("f.txt", "sha256:ab+meta:cd|p=x", 1, stat=f"{stat_token(st)}@{taken}")  # noqa: E731
    assert stored_content_version(stat_token(st), st, rec(changed + 1_000_000_000)) == "sha256:ab"
    assert stored_content_version(stat_token(st), st, rec(changed + 999_999_999)) is None  # same second: racy
    assert stored_content_version(stat_token(st), st, rec(changed - 5)) is None
    assert stored_content_version("0:0:0:0:0", st, rec(changed + 5_000_000_000)) is None  # another file state
    assert stored_content_version(stat_token(st), st, None) is None
    assert stored_content_version(stat_token(st), st, SourceRecord("f.txt", "md5:ab", 1,
                                                                   stat=f"{stat_token(st)}@{changed + 10**10}")) is None


def test_unchanged_files_and_sidecars_are_not_opened_and_a_pipeline_change_reads_them_again(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "RACY_NS", 50_000_000)
    _corpus(tmp_path / "docs")
    (tmp_path / "docs" / "doc1.txt.meta.json").write_text('{"title": "Apples one", "url": "https://x/1", "team": "a"}')
    time.sleep(0.1)
    _run(tmp_path / "docs", tmp_path)
    opened: list[str] = []
    real_open = local._open_file
    monkeypatch.setattr(local, "_open_file", lambda fd, parts, rel: (opened.append(rel), real_open(fd, parts, rel))[1])
    _, first = _run(tmp_path / "docs", tmp_path)  # tokens of the first run, now trusted
    opened.clear()
    report, again = _run(tmp_path / "docs", tmp_path)
    assert opened == []  # neither a document nor a sidecar was opened
    assert report.unchanged == 6 and again == first

    # a stored record that a new pipeline would stamp differently is never reused unread: the re-processed
    # document keeps its sidecar's title, url, metadata and groups
    embedder = CachedEmbedder(HashingEmbedder(dimensions=DIMS), EmbeddingCache(tmp_path / "cache.sqlite"))
    with LocalIndex(tmp_path / "idx", dimensions=DIMS, model_id=embedder.model_id) as index:
        from pipelines.chunking import ChunkingConfig

        options = IngestOptions(prefetch=0, chunking=ChunkingConfig(chunk_size=200, overlap=10))
        report = ingest(LocalFolderSource(tmp_path / "docs"), index=index, embedder=embedder, options=options)
        assert report.updated == 6
        assert {"doc0.txt.meta.json", "doc1.txt.meta.json"} <= {r.rsplit("/", 1)[-1] for r in opened}
        (chunk,) = [c for c in index.get_chunks(_chunk_ids(index, "doc1.txt"), groups=("hr",))]
        assert (chunk.title, chunk.url, chunk.metadata) == ("Apples one", "https://x/1", {"team": "a"})
        assert [r.groups for r in index.list_sources() if r.source_id == "doc0.txt"] == [("hr",)]


def _chunk_ids(index: LocalIndex, source_id: str) -> list[str]:
    return [row[0] for row in index._con().execute("SELECT id FROM chunks WHERE source_id = ?", (source_id,))]


def test_a_followed_link_and_files_in_subfolders_are_reused_unopened(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "RACY_NS", 50_000_000)
    files = _corpus(tmp_path / "docs")
    (tmp_path / "docs" / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "docs" / "sub" / "deeper" / "n.txt").write_text("A nested file about oranges.\n")
    (tmp_path / "docs" / "sub" / "deeper" / "n.txt.meta.json").write_text('{"groups": ["ops"]}')
    (tmp_path / "docs" / "link.txt").symlink_to(files[4])
    time.sleep(0.1)

    def run():
        embedder = CachedEmbedder(HashingEmbedder(dimensions=DIMS), EmbeddingCache(tmp_path / "cache.sqlite"))
        with LocalIndex(tmp_path / "idx", dimensions=DIMS, model_id=embedder.model_id) as index:
            source = LocalFolderSource(tmp_path / "docs", follow_symlinks=True)
            report = ingest(source, index=index, embedder=embedder, options=IngestOptions(prefetch=0))
            return report, {r.source_id: r for r in index.list_sources()}

    run()
    _, first = run()  # tokens now trusted
    opened: list[str] = []
    real_open = local._open_file
    monkeypatch.setattr(local, "_open_file", lambda fd, parts, rel: (opened.append(rel), real_open(fd, parts, rel))[1])
    report, again = run()
    assert opened == [] and report.unchanged == 8 and again == first
    assert again["sub/deeper/n.txt"].groups == ("ops",) and "link.txt" in again

    (tmp_path / "docs" / "sub" / "deeper" / "n.txt").write_text("Now about lemons, and longer than before.\n")
    time.sleep(0.1)
    opened.clear()
    report, after = run()
    n = "sub/deeper/n.txt"  # only the changed file: hashed with its sidecar when listed, then read to parse
    assert opened == [n, n + ".meta.json", n]
    assert [r.source_id for r in report.results if r.status == "updated"] == ["sub/deeper/n.txt"]
    assert after["sub/deeper/n.txt"].groups == ("ops",)


def test_a_no_change_run_builds_no_record_and_no_item_per_unchanged_file(tmp_path, monkeypatch):
    """O(changed) in objects: the unchanged files are compared as (id, token) pairs read from the manifest;
    a record is read, and an item built, only for the file whose token changed."""
    from indexers import local_manifest
    from pipelines.records import SourceItem

    monkeypatch.setattr(local, "RACY_NS", 50_000_000)
    files = _corpus(tmp_path / "docs")
    time.sleep(0.1)
    _run(tmp_path / "docs", tmp_path)
    _run(tmp_path / "docs", tmp_path)  # tokens now trusted
    built = {"records": 0, "items": 0}
    real_record, real_unchecked, real_init = local_manifest.record, SourceItem.unchecked, SourceItem.__init__

    def record(row):
        built["records"] += 1
        return real_record(row)

    def unchecked(**values):
        built["items"] += 1
        return real_unchecked(**values)

    def init(self, *args, **kwargs):
        built["items"] += 1
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(local_manifest, "record", record)
    monkeypatch.setattr(SourceItem, "unchecked", staticmethod(unchecked))
    monkeypatch.setattr(SourceItem, "__init__", init)
    embedder = CachedEmbedder(HashingEmbedder(dimensions=DIMS), EmbeddingCache(tmp_path / "cache.sqlite"))
    with LocalIndex(tmp_path / "idx", dimensions=DIMS, model_id=embedder.model_id) as index:
        report = ingest(LocalFolderSource(tmp_path / "docs"), index=index, embedder=embedder,
                        options=IngestOptions(prefetch=0))
        assert report.unchanged == 6 and report.listed == 6 and report.chunks_written == 0
        assert built == {"records": 0, "items": 0}

        files[3].write_text("Document 3 now says something else, about plums.\n")
        time.sleep(0.1)
        report = ingest(LocalFolderSource(tmp_path / "docs"), index=index, embedder=embedder,
                        options=IngestOptions(prefetch=0))
    assert report.unchanged == 5 and [r.source_id for r in report.results if r.status == "updated"] == ["doc3.txt"]
    assert built["records"] == 1 and built["items"] == 1  # the changed file's, once each


def test_a_file_gone_is_deleted_and_a_failed_folder_keeps_its_documents_on_the_no_change_path(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "RACY_NS", 50_000_000)
    files = _corpus(tmp_path / "docs")
    (tmp_path / "docs" / "sub").mkdir()
    (tmp_path / "docs" / "sub" / "kept.txt").write_text("A file in a folder that becomes unreadable.\n")
    time.sleep(0.1)
    _run(tmp_path / "docs", tmp_path)
    files[5].unlink()
    real_open_under = local._open_under

    def refuse_sub(base_fd, parts, *, directory):
        if directory and parts[-1] == "sub":
            raise PermissionError(13, "Permission denied")
        return real_open_under(base_fd, parts, directory=directory)

    monkeypatch.setattr(local, "_open_under", refuse_sub)
    report, after = _run(tmp_path / "docs", tmp_path)
    assert [r.source_id for r in report.results if r.status == "deleted"] == ["doc5.txt"]
    assert "sub/kept.txt" in after and report.unchanged == 5


def test_a_source_that_lists_every_item_gets_the_records_read_at_once_not_one_query_per_item(tmp_path, monkeypatch):
    """Blob lists every item (no ``UnchangedIds``): its plan must not read a record per listed item."""
    from pipelines.records import SourceItem

    class Listed:
        scope = "kb"

        def __init__(self, root: Path) -> None:
            self.inner = LocalFolderSource(root, scope="kb")

        def list_items(self, known=None):
            return (i for i in self.inner.list_items() if isinstance(i, SourceItem))

        def open(self, item):
            return self.inner.open(item)

    _corpus(tmp_path / "docs")
    embedder = CachedEmbedder(HashingEmbedder(dimensions=DIMS), EmbeddingCache(tmp_path / "cache.sqlite"))
    with LocalIndex(tmp_path / "idx", dimensions=DIMS, model_id=embedder.model_id) as index:
        ingest(Listed(tmp_path / "docs"), index=index, embedder=embedder, options=IngestOptions(prefetch=0))
        asked: list[str] = []
        monkeypatch.setattr(index, "get_source", lambda source_id, *, scope: asked.append(source_id))
        report = ingest(Listed(tmp_path / "docs"), index=index, embedder=embedder, options=IngestOptions(prefetch=0))
    assert report.unchanged == 6 and asked == []


def test_the_cyclic_gc_is_paused_while_a_folder_is_listed_and_planned_and_restored_after(tmp_path, monkeypatch):
    import gc

    from pipelines.engine import fingerprint_of, list_and_plan

    _corpus(tmp_path / "docs")
    _run(tmp_path / "docs", tmp_path)
    seen: list[bool] = []

    class Failing(LocalFolderSource):
        def list_items(self, known=None):
            seen.append(gc.isenabled())
            yield from super().list_items(known=known)
            raise RuntimeError("the listing broke")

    embedder = HashingEmbedder(dimensions=DIMS)
    with LocalIndex(tmp_path / "idx", dimensions=DIMS, model_id=embedder.model_id) as index:
        fingerprint = fingerprint_of(IngestOptions(), embedder)
        assert gc.isenabled()
        plan = list_and_plan(LocalFolderSource(tmp_path / "docs"), index, fingerprint=fingerprint)
        assert plan.listed == 6 and gc.isenabled()
        with pytest.raises(RuntimeError, match="the listing broke"):
            list_and_plan(Failing(tmp_path / "docs"), index, fingerprint=fingerprint)
        assert seen == [False] and gc.isenabled()  # paused inside, restored after an error too
        gc.disable()
        try:  # a caller that paused it itself keeps it paused
            list_and_plan(LocalFolderSource(tmp_path / "docs"), index, fingerprint=fingerprint)
            assert not gc.isenabled()
        finally:
            gc.enable()
