"""Incremental sync from Blob Storage (real Azurite) into the local index with the plain ``ingest()``:
added / changed / deleted / unchanged, exact replacement of a changed blob's chunks, embeddings
computed only for new text, metadata -> title/groups, failures recorded per blob, and the
``ondata ingest az://... --dry-run`` command."""

from __future__ import annotations

import pytest

from indexers.embedders.cache import CachedEmbedder, EmbeddingCache
from indexers.embedders.hashing import HashingEmbedder
from indexers.local_index import LocalIndex
from indexers.records import SearchRequest
from indexers.retry import RetryPolicy
from pipelines.chunking import ChunkingConfig
from pipelines.ingest import IngestOptions, fingerprint_of, ingest
from pipelines.sources.blob import BlobDocumentSource
from tests.azurite import FaultyTransport

pytestmark = pytest.mark.azurite

OPTIONS = IngestOptions(chunking=ChunkingConfig(chunk_size=40, overlap=0), batch_chunks=8)
TOPICS = ["harbour", "orchard", "glacier", "library", "railway", "vineyard", "observatory", "bakery", "quarry", "lagoon"]


def doc_text(n: int, edition: int = 1) -> bytes:
    topic = TOPICS[n % len(TOPICS)]
    paras = [f"Report {n} on the {topic}, edition {edition}."]
    for p in range(3):
        paras.append(" ".join(
            f"Section {p} of report {n} notes that the {topic} measure {n * 7 + p * 3 + s + edition * 101} "
            f"was recorded on day {s + p} by team {topic[:3]}{s}." for s in range(4)))
    return "\n\n".join(paras).encode()


class Stack:
    def __init__(self, root, name="idx"):
        self.dir = root / name
        self.embedder = CachedEmbedder(HashingEmbedder(dimensions=64), EmbeddingCache(root / f"{name}-cache.sqlite"))
        self.index = LocalIndex(self.dir, dimensions=64, model_id=self.embedder.model_id)

    def run(self, source, **kw):
        return ingest(source, index=self.index, embedder=self.embedder, options=kw.pop("options", OPTIONS), **kw)

    def versions(self):
        return {r.source_id: (r.version, r.complete) for r in self.index.list_sources()}


@pytest.fixture
def src(azurite, blob_container):
    return BlobDocumentSource(container=blob_container.container_name, connection_string=azurite.connection_string,
                              prefix="kb/")


def upload(container, n, edition=1, **kw):
    container.upload_blob(f"kb/report-{n:02d}.txt", doc_text(n, edition), overwrite=True, **kw)


def test_incremental_sync_matches_the_container_exactly(tmp_path, blob_container, src, index_contents):
    for n in range(8):
        upload(blob_container, n)
    blob_container.upload_blob("elsewhere/ignored.txt", b"outside the prefix")
    stack = Stack(tmp_path)

    r1 = stack.run(src)
    assert r1.counts() == {"added": 8, "updated": 0, "deleted": 0, "unchanged": 0, "failed": 0, "skipped": 0}
    assert r1.embeddings_computed == r1.chunks_written > 8  # several chunks per blob
    listed = {i.id: fingerprint_of(OPTIONS, stack.embedder).stamp(i) for i in src.list_items()}
    assert stack.versions() == {k: (v, True) for k, v in listed.items()}
    old_chunks_of_2 = {k for k in index_contents(stack.dir) if k[0] == "kb/report-02.txt"}

    upload(blob_container, 2, edition=2)            # changed
    blob_container.delete_blob("kb/report-03.txt")  # deleted
    upload(blob_container, 8)                        # added
    upload(blob_container, 4)                        # re-uploaded, identical bytes: unchanged
    count_before = stack.index.count()

    plan = stack.run(src, options=IngestOptions(chunking=OPTIONS.chunking, dry_run=True))
    assert plan.counts() == {"added": 1, "updated": 1, "deleted": 1, "unchanged": 6, "failed": 0, "skipped": 0}
    assert {(r.source_id, r.status) for r in plan.results} == {
        ("kb/report-08.txt", "added"), ("kb/report-02.txt", "updated"), ("kb/report-03.txt", "deleted")}
    assert stack.index.count() == count_before and stack.embedder.stats.computed == r1.embeddings_computed

    r2 = stack.run(src)
    assert r2.counts() == {"added": 1, "updated": 1, "deleted": 1, "unchanged": 6, "failed": 0, "skipped": 0}
    # only the changed and the added blob were embedded, and all their text was new
    assert r2.embeddings_computed == r2.chunks_written == sum(r.chunks for r in r2.results if r.status != "deleted")
    listed = {i.id: fingerprint_of(OPTIONS, stack.embedder).stamp(i) for i in src.list_items()}
    assert stack.versions() == {k: (v, True) for k, v in listed.items()}

    contents = index_contents(stack.dir)
    new_chunks_of_2 = {k for k in contents if k[0] == "kb/report-02.txt"}
    assert new_chunks_of_2 and not (new_chunks_of_2 & old_chunks_of_2)
    assert all(n == 1 for n in contents.values())  # no duplicate chunk
    fresh = Stack(tmp_path, "fresh")
    fresh.run(src)
    assert contents == index_contents(fresh.dir)

    r3 = stack.run(src)
    assert r3.counts()["unchanged"] == 8 and r3.embeddings_computed == 0 and r3.chunks_written == 0


def test_blob_metadata_becomes_title_groups_and_url_of_the_chunks(tmp_path, blob_container, src):
    upload(blob_container, 1, metadata={"title": "Orchard report", "acl": "hr,leadership", "owner": "Ana"})
    upload(blob_container, 2)
    src.groups_metadata_key = "acl"
    stack = Stack(tmp_path)
    stack.run(src)
    vec = stack.embedder.embed_query("orchard")
    hits = stack.index.search(SearchRequest(text="orchard", vector=tuple(vec), groups=("hr",), top=3))
    chunk = hits[0].chunk
    assert (chunk.source_id, chunk.title, chunk.groups) == ("kb/report-01.txt", "Orchard report", ("hr", "leadership"))
    assert chunk.url.endswith(f"/{blob_container.container_name}/kb/report-01.txt")
    assert chunk.metadata.get("owner") == "Ana"
    outsider = stack.index.search(SearchRequest(text="orchard", vector=tuple(vec), groups=("sales",), top=20))
    assert "kb/report-01.txt" not in {h.chunk.source_id for h in outsider}


def test_bad_blobs_are_reported_and_the_rest_lands(tmp_path, azurite, blob_container, index_contents):
    for n in range(3):
        upload(blob_container, n)
    blob_container.upload_blob("kb/broken.pdf", b"%PDF-1.7\n this is not really a pdf")
    blob_container.upload_blob("kb/huge.txt", b"big " * 3000)
    transport = FaultyTransport(fail=100, match="report-01.txt", retry_after="1")  # still busy after the retries
    src = BlobDocumentSource(container=blob_container.container_name, connection_string=azurite.connection_string,
                             prefix="kb/", client_options={"transport": transport},
                             retry=RetryPolicy(attempts=2, backoff_seconds=0.01, max_retry_after_seconds=0.01))
    stack = Stack(tmp_path)

    report = stack.run(src, options=IngestOptions(chunking=OPTIONS.chunking, max_bytes=10_000))

    failed = {r.source_id: (r.error_type, r.error) for r in report.failed}
    assert set(failed) == {"kb/broken.pdf", "kb/huge.txt", "kb/report-01.txt"}
    assert failed["kb/broken.pdf"][0] == "CorruptDocumentError" and "broken.pdf" in failed["kb/broken.pdf"][1]
    assert failed["kb/huge.txt"][0] == "DocumentTooLargeError" and "huge.txt" in failed["kb/huge.txt"][1]
    assert failed["kb/report-01.txt"][0] == "TransientError" and "503" in failed["kb/report-01.txt"][1]
    assert report.added == 2 and not report.nothing_done
    assert {sid for sid, _ in index_contents(stack.dir)} == {"kb/report-00.txt", "kb/report-02.txt"}
    assert "## Failed (" in report.to_markdown() and "kb/broken.pdf" in report.to_markdown()
    assert sum(1 for _, u in transport.requests if "report-01.txt" in u) == 2  # the source's 2 attempts, no more

    transport.fail = 0  # the service recovered
    again = stack.run(src, options=IngestOptions(chunking=OPTIONS.chunking, max_bytes=10_000))
    assert [r.source_id for r in again.results if r.status == "added"] == ["kb/report-01.txt"]  # the transient one


def test_cli_dry_run_prints_the_plan_for_az_url(tmp_path, azurite, blob_container, monkeypatch):
    from typer.testing import CliRunner

    from ondata.cli import app

    upload(blob_container, 1)
    upload(blob_container, 2)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.chdir(tmp_path)
    args = ["ingest", f"az://{blob_container.container_name}/kb/", "--index", str(tmp_path / "idx"), "--embedder", "hashing"]
    runner = CliRunner()

    dry = runner.invoke(app, args + ["--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "2 documents listed: 2 new, 0 changed, 0 deleted, 0 unchanged" in dry.output
    assert "would be added: kb/report-01.txt" in dry.output and "would be added: kb/report-02.txt" in dry.output

    assert runner.invoke(app, args).exit_code == 0
    blob_container.delete_blob("kb/report-01.txt")
    upload(blob_container, 2, edition=3)
    dry = runner.invoke(app, args + ["--dry-run"])
    assert "1 documents listed: 0 new, 1 changed, 1 deleted, 0 unchanged" in dry.output
    assert "would be deleted: kb/report-01.txt" in dry.output and "would be updated: kb/report-02.txt" in dry.output
    assert "Eby8vdM02" not in dry.output


def test_blob_scope_is_account_container_prefix_and_two_prefixes_never_touch(tmp_path, azurite, blob_container):
    def source(prefix, **kw):
        return BlobDocumentSource(container=blob_container.container_name,
                                  connection_string=azurite.connection_string, prefix=prefix, **kw)

    for prefix in ("kb/", "hr/"):
        for n in range(3):
            blob_container.upload_blob(f"{prefix}report-{n:02d}.txt", doc_text(n), overwrite=True)
    kb, hr = source("kb/"), source("hr/")
    assert kb.scope == f"devstoreaccount1/{blob_container.container_name}/kb"
    assert {i.scope for i in kb.list_items()} == {kb.scope}
    assert source("kb/", scope="knowledge").scope == "knowledge"
    stack = Stack(tmp_path)
    stack.run(kb)
    stack.run(hr)
    blob_container.delete_blob("kb/report-01.txt")
    again = stack.run(kb)
    assert again.deleted == 1 and again.unchanged == 2
    assert sorted((r.scope.rsplit("/", 1)[-1], r.source_id) for r in stack.index.list_sources()) == [
        ("hr", "hr/report-00.txt"), ("hr", "hr/report-01.txt"), ("hr", "hr/report-02.txt"),
        ("kb", "kb/report-00.txt"), ("kb", "kb/report-02.txt")]
