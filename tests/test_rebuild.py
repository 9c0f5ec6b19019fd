"""`ondata index rebuild`: a new index built from the recorded scopes beside the live one, swapped in atomically.

Local: generations behind the ``CURRENT`` pointer (``indexers.local_generations``), a reader searching
in a loop during a rebuild, ``ondata serve`` switching without a restart, ``--drop-old``, ``--dry-run``,
the lock, the errors, the migration of a schema 3 index. Azure: the alias path against the test double.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from indexers import local_generations as generations
from indexers.embedders.hashing import HashingEmbedder
from indexers.errors import ConfigError, IndexError_
from indexers.local_index import LocalIndex
from indexers.records import ALL_GROUPS, SearchRequest
from ondata.commands.rebuild import (NothingToRebuild, alias_azure, build_settings, drop_local, rebuild_azure,
                                     rebuild_local)
from ondata.settings import Settings
from pipelines.chunking import ChunkingConfig
from pipelines.ingest import IngestOptions, ingest
from pipelines.sources.local import LocalFolderSource

try:
    from tests.serve_process import ServeProcess, oyd_body, CHAT
    from tests.servers.azure_search import FakeAzureSearch
except ImportError:  # pragma: no cover - run from tests/
    from serve_process import ServeProcess, oyd_body, CHAT
    from servers.azure_search import FakeAzureSearch

ROOT = Path(__file__).resolve().parents[1]
DIMS = 64
TOPICS = {
    "cats.txt": "Cats purr and chase mice in the barn. ",
    "tax.txt": "Income tax returns are filed every April with each deduction. ",
    "rocket.txt": "Rocket engines burn kerosene and liquid oxygen for thrust. ",
}


def make_docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, sentence in TOPICS.items():
        text = " ".join(f"{sentence.strip()} Line {i} of {name}." for i in range(40))
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "tax.txt.meta.json").write_text(json.dumps({"groups": ["finance"]}), encoding="utf-8")
    return folder


def first_ingest(docs: Path, idx: Path, *, chunk_size: int = 128) -> None:
    """Ingest ``docs`` into ``idx`` (hashing embedder): every document there, none failed."""
    embedder = HashingEmbedder(dimensions=DIMS)
    options = IngestOptions(chunking=ChunkingConfig(chunk_size=chunk_size, overlap=10))
    with LocalIndex(idx, dimensions=DIMS, model_id=embedder.model_id) as index:
        report = ingest(LocalFolderSource(docs), index=index, embedder=embedder, options=options)
    assert report.added + report.unchanged == 3 and not report.failed


def settings_for(idx: Path, **kw) -> Settings:
    return Settings(**({"index_dir": idx, "embedder": "hashing", "hashing_dimensions": DIMS} | kw))


def rebuild(idx: Path, *, chunk_size=None, dry_run=False, drop_old=False, stop=None, **kw) -> dict:
    s = settings_for(idx, **kw)
    return rebuild_local(s, build_settings(s, None), Console(file=open(os.devnull, "w")), chunk_size=chunk_size,
                         overlap=None, dry_run=dry_run, drop_old=drop_old, stop=stop)


def chunk_ids(directory: Path) -> set[str]:
    con = sqlite3.connect(f"file:{directory / 'index.sqlite'}?mode=ro", uri=True)
    try:
        return {r for (r,) in con.execute("SELECT id FROM chunks")}
    finally:
        con.close()


def search(index: LocalIndex, text: str, *, groups=ALL_GROUPS, top: int = 50):
    vec = HashingEmbedder(dimensions=DIMS).embed_query(text)
    return index.search(SearchRequest(text=text, vector=tuple(vec), mode="hybrid", top=top, groups=groups))


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path.parent)) for p in path.parent.rglob("*"))


# ---------------------------------------------------------------- recording scopes


def test_every_ingest_records_its_scope(tmp_path):
    docs, idx = make_docs(tmp_path / "docs"), tmp_path / "idx"
    first_ingest(docs, idx)
    with LocalIndex.open_existing(idx) as index:
        (record,) = index.list_scopes()
    assert (record.scope, record.kind, record.root) == (str(docs.resolve()), "folder", str(docs.resolve()))
    assert json.loads(record.chunking)["chunk_size"] == 128 and record.embedding == f"hashing-v1/{DIMS}"
    assert record.include == ("*",) and record.cleanup == "scoped" and record.ingested_at


def test_a_blob_scope_records_account_container_and_prefix_never_a_credential():
    from pipelines.engine import scope_record
    from pipelines.sources.blob import BlobDocumentSource

    secret = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=c2VjcmV0LWtleQ==;" \
             "BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;"
    source = BlobDocumentSource(container="docs", prefix="hr/", connection_string=secret, include=("*.pdf",))
    record = scope_record(source, cleanup="scoped")
    assert (record.kind, record.root, record.prefix, record.account) == ("blob", "docs", "hr/", "devstoreaccount1")
    assert record.scope == "devstoreaccount1/docs/hr" and record.include == ("*.pdf",)
    assert record.where() == "az://docs/hr/"  # the prefix as given: never widened to hr*
    assert "c2VjcmV0LWtleQ" not in json.dumps(record.to_dict()) and "AccountKey" not in json.dumps(record.to_dict())


def test_a_schema_3_index_is_migrated_and_keeps_opening(tmp_path):
    docs, idx = make_docs(tmp_path / "docs"), tmp_path / "idx"
    first_ingest(docs, idx)
    con = sqlite3.connect(idx / "index.sqlite")  # as schema 3 wrote it: no scopes table
    con.execute("DROP TABLE scopes")
    con.execute("UPDATE index_meta SET value = '3' WHERE key = 'schema_version'")
    con.commit()
    before = sorted(con.execute("SELECT id, content FROM chunks"))
    con.close()
    with LocalIndex.open_existing(idx) as index:
        assert index.list_scopes() == []  # nothing recorded yet: migrated, empty
        assert sorted(index._con().execute("SELECT id, content FROM chunks")) == before
        assert index._con().execute("SELECT value FROM index_meta WHERE key = 'schema_version'").fetchone() == ("4",)
    with pytest.raises(NothingToRebuild, match="records no source to rebuild from"):
        rebuild(idx, chunk_size=64)
    first_ingest(docs, idx)  # the next ingest records the scope: now it can be rebuilt
    assert rebuild(idx, chunk_size=64)["swapped"]


# ---------------------------------------------------------------- local rebuild


def test_rebuild_swaps_in_a_new_generation_with_the_same_documents_and_groups(tmp_path):
    docs, idx = make_docs(tmp_path / "docs"), tmp_path / "idx"
    first_ingest(docs, idx)
    old_ids = chunk_ids(idx)
    reader = LocalIndex.open_existing(idx)
    assert {h.chunk.id for h in search(reader, "kerosene thrust")} <= old_ids

    result = rebuild(idx, chunk_size=48)

    assert result["swapped"] and result["live"].startswith("gen-") and result["documents_written"] == 3
    assert generations.live_name(idx) == result["live"]
    new_ids = chunk_ids(idx / result["live"])
    assert new_ids and not new_ids & old_ids and len(new_ids) > len(old_ids)  # smaller chunks, new ids
    assert chunk_ids(idx) == old_ids  # the old generation is kept
    hits = search(reader, "kerosene thrust")  # the reader opened before follows the pointer on its next search
    assert hits and {h.chunk.id for h in hits} <= new_ids
    public = {h.chunk.source_id for h in search(reader, "income tax deduction", groups=())}
    finance = {h.chunk.source_id for h in search(reader, "income tax deduction", groups=("finance",))}
    assert "tax.txt" not in public and "tax.txt" in finance  # groups came through the sidecar, as in an ingest
    with LocalIndex.open_existing(idx) as fresh:
        (record,) = fresh.list_scopes()  # the new generation records its scope with the new settings
        assert json.loads(record.chunking)["chunk_size"] == 48
        assert fresh.stats().generation == result["live"] and fresh.stats().chunks == len(new_ids)
    reader.close()
    assert not generations.leftover_builds(idx)


def test_a_reader_searching_in_a_loop_during_a_rebuild_never_errors_nor_sees_a_partial_index(tmp_path):
    docs, idx = make_docs(tmp_path / "docs"), tmp_path / "idx"
    first_ingest(docs, idx)
    old_ids = chunk_ids(idx)
    reader = LocalIndex.open_existing(idx)
    seen: list[frozenset[str]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            try:
                seen.append(frozenset(h.chunk.id for h in search(reader, "cats tax rocket line", top=1000)))
            except BaseException as exc:  # noqa: BLE001 - the test reports it
                errors.append(exc)
                return

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        time.sleep(0.2)
        result = rebuild(idx, chunk_size=48)
        new_ids = chunk_ids(idx / result["live"])
        deadline = time.time() + 10
        while not (seen and seen[-1] == frozenset(new_ids)) and time.time() < deadline:
            time.sleep(0.05)
    finally:
        done.set()
        thread.join(30)
        reader.close()
    assert not errors, errors
    assert seen[0] == frozenset(old_ids) and seen[-1] == frozenset(new_ids)
    assert all(s in (frozenset(old_ids), frozenset(new_ids)) for s in seen)  # whole old or whole new, nothing between


def test_a_reader_of_another_model_keeps_serving_its_generation(tmp_path, caplog):
    docs, idx = make_docs(tmp_path / "docs"), tmp_path / "idx"
    first_ingest(docs, idx)
    reader = LocalIndex.open_existing(idx)
    old_ids = chunk_ids(idx)
    result = rebuild(idx, hashing_dimensions=32)  # a new embedding model: 32 dimensions
    assert result["changes"] == [f"embedding model: hashing-v1/{DIMS} -> hashing-v1/32"]
    with caplog.at_level("WARNING"):
        hits = search(reader, "kerosene thrust")  # a 64-dimension query: this reader stays on its generation
    assert hits and {h.chunk.id for h in hits} <= old_ids and "keeps serving generation" in caplog.text
    reader.close()
    assert LocalIndex.read_model(idx) == ("hashing-v1", 32)  # a new process opens the new generation


def test_dry_run_writes_nothing_and_says_what_changes(tmp_path):
    docs, idx = make_docs(tmp_path / "docs"), tmp_path / "idx"
    first_ingest(docs, idx)
    before = tree(idx)
    result = rebuild(idx, chunk_size=48, dry_run=True, drop_old=True)
    assert tree(idx) == before  # no lock file, no build folder, no pointer
    assert not result["swapped"] and result["dry_run"]
    assert result["scopes"][0]["root"] == str(docs.resolve()) and result["scopes"][0]["documents"] == 3
    assert result["changes"] == [f"chunking of scope {docs.resolve()}: chunk size 128 -> 48, overlap 10 -> 10"]
    assert result["dropped"] == ["the original index files in the index folder (once replaced)"]


def test_drop_old_deletes_the_replaced_generations_never_the_live_one(tmp_path):
    docs, idx = make_docs(tmp_path / "docs"), tmp_path / "idx"
    first_ingest(docs, idx)
    first = rebuild(idx, chunk_size=48)["live"]
    second = rebuild(idx, chunk_size=64, drop_old=True)
    assert second["dropped"] == ["the original index files in the index folder: index.sqlite, keyword.bin, vectors.faiss",
                                 f"generation {first}"]
    assert [g.name for g in generations.generations(idx)] == [second["live"]]
    assert not (idx / "index.sqlite").exists() and not (idx / first).exists()
    assert drop_local(settings_for(idx), dry_run=False) == []  # only the live one is left: nothing to delete
    with LocalIndex.open_existing(idx) as index:
        assert search(index, "kerosene")
    # a pointer that names something else than a generation of this folder is never followed, nor dropped
    (idx / "CURRENT").write_text("../elsewhere\n")
    with pytest.raises(IndexError_, match="never followed"):
        generations.drop_old(idx)
    assert (idx / second["live"]).is_dir()


def test_a_rebuild_in_progress_holds_the_lock(tmp_path):
    docs, idx = make_docs(tmp_path / "docs"), tmp_path / "idx"
    first_ingest(docs, idx)
    with generations.rebuild_lock(idx):
        with pytest.raises(generations.RebuildInProgress, match="already in progress"):
            rebuild(idx, chunk_size=48)
        with pytest.raises(generations.RebuildInProgress):
            rebuild(idx, chunk_size=48, dry_run=True)
    assert rebuild(idx, chunk_size=48)["swapped"]  # released


def test_an_ingest_and_a_rebuild_exclude_each_other(tmp_path):
    docs, idx = make_docs(tmp_path / "docs"), tmp_path / "idx"
    first_ingest(docs, idx)
    with generations.ingest_lock(idx), generations.ingest_lock(idx):  # ingests share it
        with pytest.raises(generations.RebuildInProgress, match=f"the index at {idx} is busy: an ingest is writing"):
            rebuild(idx, chunk_size=48)
        with pytest.raises(generations.RebuildInProgress, match="an ingest is writing"):
            drop_local(settings_for(idx), dry_run=False)
        with pytest.raises(generations.RebuildInProgress, match="an ingest is writing"):
            with generations.rebuild_lock(idx):
                pass
    assert generations.live_name(idx) == "." and not generations.leftover_builds(idx)
    with generations.rebuild_lock(idx):
        with pytest.raises(generations.RebuildInProgress, match=f"rebuild of the index at {idx} is in progress \\(pid"):
            with generations.ingest_lock(idx):
                pytest.fail("an ingest ran during a rebuild")
    assert rebuild(idx, chunk_size=48)["swapped"]  # both released
    with generations.ingest_lock(tmp_path / "new"):  # no folder yet: nothing created
        assert not (tmp_path / "new").exists()


def test_documents_without_a_recorded_source_or_a_vanished_folder_are_refused(tmp_path):
    docs, idx = make_docs(tmp_path / "docs"), tmp_path / "idx"
    first_ingest(docs, idx)
    with LocalIndex.open_existing(idx) as index:
        index._con().execute("DELETE FROM scopes")
        first_ingest(make_docs(tmp_path / "other"), idx)  # records only this scope
    with pytest.raises(NothingToRebuild, match=f"no recorded source.*{docs.resolve()} \\(3 documents\\)"):
        rebuild(idx)
    docs2, idx2 = make_docs(tmp_path / "gone"), tmp_path / "idx2"
    first_ingest(docs2, idx2)
    for p in docs2.iterdir():
        p.unlink()
    docs2.rmdir()
    with pytest.raises(ConfigError, match="no longer exists; nothing rebuilt"):
        rebuild(idx2)
    assert generations.live_name(idx2) == "." and not generations.leftover_builds(idx2)  # nothing built


def test_an_interrupted_rebuild_removes_its_build_and_leaves_the_live_index(tmp_path):
    docs, idx = make_docs(tmp_path / "docs"), tmp_path / "idx"
    first_ingest(docs, idx)
    stop = threading.Event()
    stop.set()  # Ctrl-C before the first document
    result = rebuild(idx, chunk_size=48, stop=stop)
    assert result["interrupted"] and not result["swapped"]
    assert generations.live_name(idx) == "." and not generations.leftover_builds(idx)
    with LocalIndex.open_existing(idx) as index:
        assert search(index, "kerosene")


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ondata.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, timeout=300)


def test_cli_errors_are_one_line_exit_2(tmp_path):
    missing = _cli("index", "rebuild", "--index", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"no index at {tmp_path / 'nope'}: nothing to rebuild" in missing.stderr
    idx = tmp_path / "idx"
    with LocalIndex(idx, dimensions=DIMS, model_id="hashing-v1") as index:
        index.ensure()
    empty = _cli("index", "rebuild", "--index", str(idx), "--embedder", "hashing")
    assert empty.returncode == 2 and "records no source to rebuild from" in empty.stderr
    docs = make_docs(tmp_path / "docs")
    first_ingest(docs, idx)
    bad = _cli("index", "rebuild", "--index", str(idx), "--embedder", "hashing", "--chunk-size", "16")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert f"scope {docs.resolve()}: invalid chunking settings" in bad.stderr and "give --overlap too" in bad.stderr
    assert generations.live_name(idx) == "." and not generations.leftover_builds(idx)
    with generations.rebuild_lock(idx):  # another process is rebuilding
        busy = _cli("index", "rebuild", "--index", str(idx), "--embedder", "hashing", "--chunk-size", "64")
        writer = _cli("ingest", str(docs), "--index", str(idx), "--embedder", "hashing",
                      env={"ONDATA_HASHING_DIMENSIONS": str(DIMS)})
    assert writer.returncode == 2 and "Traceback" not in writer.stderr  # it would write to the generation replaced
    said = " ".join(writer.stderr.split())
    assert f"a rebuild of the index at {idx} is in progress (pid {os.getpid()}, since " in said
    assert f"lock {idx / 'rebuild.lock'}" in said and "run it again once the rebuild is done" in said
    assert busy.returncode == 2 and "Traceback" not in busy.stderr
    assert f"a rebuild of the index at {idx} is already in progress (pid {os.getpid()}" in busy.stderr


def test_ondata_serve_switches_to_the_rebuilt_index_without_a_restart(tmp_path):
    docs, idx = make_docs(tmp_path / "docs"), tmp_path / "idx"
    env = {"ONDATA_EMBEDDER": "hashing", "ONDATA_HASHING_DIMENSIONS": str(DIMS)}
    assert _cli("ingest", str(docs), "--index", str(idx), env=env).returncode == 0
    serve = ServeProcess(["--index", f"docs={idx}"], env=env, cwd=tmp_path)
    try:
        def files(question: str) -> set[str]:
            r = httpx.post(serve.url + CHAT, json=oyd_body(question, query_type="simple"), timeout=60)
            assert r.status_code == 200, r.text
            return {d["filepath"] for d in r.json()["choices"][0]["message"]["context"]["all_retrieved_documents"]}

        assert files("zebra stripes savanna") == set()
        (docs / "zebra.txt").write_text("Zebra stripes confuse flies on the savanna. " * 20, encoding="utf-8")
        built = _cli("index", "rebuild", "--index", str(idx), "--chunk-size", "64", "--overlap", "6", "--json",
                     env=env)
        assert built.returncode == 0, built.stderr
        assert json.loads(built.stdout)["swapped"]
        assert "zebra.txt" in files("zebra stripes savanna")  # the same process now reads the new generation
        assert "cats.txt" in files("cats purr mice")
    finally:
        serve.stop()
    assert "Traceback" not in serve.stderr_text()


# ---------------------------------------------------------------- Azure AI Search: the alias path


KEY = "test-search-key"


def azure_settings(server: FakeAzureSearch, name: str) -> Settings:
    return Settings(profile="azure", azure_search_endpoint=server.url, azure_search_key=KEY, azure_search_index=name,
                    embedder="hashing", hashing_dimensions=DIMS, retry_backoff_seconds=0.01)


def azure_v1(server: FakeAzureSearch, docs: Path, embedder):
    """(settings naming the alias ``docs``, the index ``docs-v1`` with ``docs`` ingested into it)."""
    from ondata.wiring import build_index

    s = azure_settings(server, "docs")
    v1 = build_index(s.model_copy(update={"azure_search_index": "docs-v1"}), embedder)
    v1.ensure()
    ingest(LocalFolderSource(docs), index=v1, embedder=embedder,
           options=IngestOptions(chunking=ChunkingConfig(chunk_size=128, overlap=10)))
    return s, v1


def test_azure_rebuild_fills_a_new_index_and_points_the_alias_at_it(tmp_path):
    from ondata.wiring import build_index

    docs = make_docs(tmp_path / "docs")
    embedder = HashingEmbedder(dimensions=DIMS)
    with FakeAzureSearch(api_key=KEY) as server:
        s, v1 = azure_v1(server, docs, embedder)
        assert [r.root for r in v1.list_scopes()] == [str(docs.resolve())]
        old_ids = set(server.documents("docs-v1"))

        with pytest.raises(ConfigError, match="no Azure AI Search index or alias 'docs'"):
            rebuild_azure(s, s, Console(file=open(os.devnull, "w")), chunk_size=48, overlap=None, dry_run=True,
                          drop_old=False, stop=None)
        with pytest.raises(ConfigError, match="is an index, not an alias"):
            plain = s.model_copy(update={"azure_search_index": "docs-v1"})
            rebuild_azure(plain, plain, Console(file=open(os.devnull, "w")), chunk_size=48, overlap=None,
                          dry_run=True, drop_old=False, stop=None)
        with pytest.raises(ConfigError, match="'docs-v1' is an index: an alias cannot take an index's name"):
            alias_azure(s, "docs-v1", "docs-v1")
        with pytest.raises(ConfigError, match="no Azure AI Search index 'nope'"):
            alias_azure(s, "docs", "nope")
        assert alias_azure(s, "docs", "docs-v1") == "alias docs now maps to index docs-v1"  # once, for a plain index
        quiet = Console(file=open(os.devnull, "w"))
        dry = rebuild_azure(s, s, quiet, chunk_size=48, overlap=None, dry_run=True, drop_old=True, stop=None)
        assert (dry["live"], dry["new"], dry["swapped"]) == ("docs-v1", "docs-v2", False)
        assert sorted(server.indexes) == ["docs-v1", "docs-v1-sources"] and dry["dropped"] == ["index docs-v1"]

        result = rebuild_azure(s, s, quiet, chunk_size=48, overlap=None, dry_run=False, drop_old=False, stop=None)
        assert result["swapped"] and server.aliases == {"docs": "docs-v2"}
        new_ids = set(server.documents("docs-v2"))
        assert new_ids and not new_ids & old_ids and set(server.documents("docs-v1")) == old_ids  # old one kept
        reader = build_index(s, embedder)  # readers name the alias: they now read docs-v2
        hits = reader.search(SearchRequest(text="kerosene", mode="text", top=5, groups=ALL_GROUPS))
        assert hits and {h.chunk.id for h in hits} <= new_ids
        public = reader.search(SearchRequest(text="income tax", mode="text", top=50, groups=()))
        assert "tax.txt" not in {h.chunk.source_id for h in public}  # groups as in an ingest

        (docs / "zebra.txt").write_text("Zebra stripes on the savanna. " * 10, encoding="utf-8")
        report = ingest(LocalFolderSource(docs), index=reader, embedder=embedder,  # an ingest through the alias
                        options=IngestOptions(chunking=ChunkingConfig(chunk_size=48, overlap=10)))
        assert report.added == 1 and report.unchanged == 3  # the rebuilt index is in step with the sources
        assert reader.sources_index_name == "docs-v2-sources"  # the alias's index's own sources index
        assert "zebra.txt" in {d["source_id"] for d in server.documents("docs-v2").values()}
        assert [r.root for r in reader.list_scopes()] == [str(docs.resolve())]
        with pytest.raises(Exception, match="map to it"):  # the service never deletes an index an alias maps to
            reader.delete_index_named("docs-v2")
        from ondata.commands.rebuild import drop_azure

        build_index(s.model_copy(update={"azure_search_index": "docs-v3"}), embedder).ensure()  # a build in progress
        with pytest.raises(ConfigError, match="'docs-v3' already exists"):
            rebuild_azure(s, s, quiet, chunk_size=48, overlap=None, dry_run=False, drop_old=False, stop=None)
        assert drop_azure(s, dry_run=True) == ["index docs-v1", "index docs-v3"] and len(server.indexes) == 6
        assert drop_azure(s, dry_run=False) == ["index docs-v1", "index docs-v3"]  # with their sources indexes
        assert sorted(server.indexes) == ["docs-v2", "docs-v2-sources"] and server.aliases == {"docs": "docs-v2"}


def test_the_dry_run_lists_a_scope_once_with_each_of_its_sources(tmp_path):
    """A file ingested alone joins its folder's scope: the dry run names the scope (and its document count)
    once, then the folder and the file it re-reads, the file as a file."""
    from typer.testing import CliRunner

    from ondata.cli import app

    docs, idx = make_docs(tmp_path / "docs"), tmp_path / "idx"
    first_ingest(docs, idx)
    single = docs / sorted(TOPICS)[0]
    embedder = HashingEmbedder(dimensions=DIMS)
    with LocalIndex(idx, dimensions=DIMS, model_id=embedder.model_id) as index:
        report = ingest(LocalFolderSource(single), index=index, embedder=embedder,
                        options=IngestOptions(chunking=ChunkingConfig(chunk_size=128, overlap=10), cleanup="none"))
    assert report.unchanged == 1 and not report.failed
    env = {"ONDATA_EMBEDDER": "hashing", "ONDATA_HASHING_DIMENSIONS": str(DIMS), "COLUMNS": "1000"}  # no wrapping
    dry = CliRunner().invoke(app, ["index", "rebuild", "--index", str(idx), "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    said = " ".join(dry.output.split())
    scope = os.path.realpath(docs)
    assert said.count(f"scope {scope} ") == 1, said
    assert (f"scope {scope} (3 documents), re-read from: folder {scope} file {os.path.realpath(single)}" in said
            or f"scope {scope} (3 documents), re-read from: file {os.path.realpath(single)} folder {scope}" in said), said


def test_the_dry_run_and_stats_name_the_in_place_generation_in_words(tmp_path):
    from typer.testing import CliRunner

    from ondata.cli import app

    docs, idx = make_docs(tmp_path / "docs"), tmp_path / "idx"
    first_ingest(docs, idx)
    env = {"ONDATA_EMBEDDER": "hashing", "ONDATA_HASHING_DIMENSIONS": str(DIMS)}
    runner = CliRunner()
    dry = runner.invoke(app, ["index", "rebuild", "--index", str(idx), "--chunk-size", "48", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    said = " ".join(dry.output.split())  # rich wraps at the terminal width
    assert f"index {idx}: live: the original index files in the index folder; new: generation gen-" in said
    assert "live ." not in said
    assert f"scope {os.path.realpath(docs)} (3 documents), re-read from: folder {os.path.realpath(docs)}" in said
    stats = runner.invoke(app, ["index", "stats", "--index", str(idx), "--json"], env=env)
    data = json.loads(stats.output)
    assert data["generation"] == "." and "live_generation" not in data and isinstance(data["writes"], int)
    text = " ".join(runner.invoke(app, ["index", "stats", "--index", str(idx)], env=env).output.split())
    assert "generation │ . (the original index files in the index folder)" in text
    live = rebuild(idx, chunk_size=48)["live"]
    data = json.loads(runner.invoke(app, ["index", "stats", "--index", str(idx), "--json"], env=env).output)
    assert data["generation"] == live
    text = " ".join(runner.invoke(app, ["index", "stats", "--index", str(idx)], env=env).output.split())
    assert f"generation │ {live}" in text and "writes │" in text


def test_azure_rebuild_lock_refuses_a_second_rebuild_and_a_drop_and_a_stale_lock_is_taken_over(tmp_path):
    from indexers.errors import RebuildInProgress
    from ondata.commands.rebuild import drop_azure
    from ondata.wiring import build_index

    docs = make_docs(tmp_path / "docs")
    embedder = HashingEmbedder(dimensions=DIMS)
    quiet = Console(file=open(os.devnull, "w"))
    with FakeAzureSearch(api_key=KEY) as server:
        s, v1 = azure_v1(server, docs, embedder)
        alias_azure(s, "docs", "docs-v1")
        token = v1.take_rebuild_lock("ondata index rebuild, pid 4242 on host-a", building="docs-v2")
        held = f"'docs-v1' is already in progress: ondata index rebuild, pid 4242 on host-a, since 20"
        for dry_run in (True, False):  # refused before anything is built (no docs-v2 exists to refuse it)
            with pytest.raises(RebuildInProgress, match=held) as err:
                rebuild_azure(s, s, quiet, chunk_size=48, overlap=None, dry_run=dry_run, drop_old=False, stop=None)
            assert "building index 'docs-v2'" in str(err.value) and "counts as stale" in str(err.value)
        assert sorted(server.indexes) == ["docs-v1", "docs-v1-sources"] and server.aliases == {"docs": "docs-v1"}
        build_index(s.model_copy(update={"azure_search_index": "docs-v0"}), embedder).ensure()  # an old version
        with pytest.raises(RebuildInProgress, match=held):
            drop_azure(s, dry_run=False)
        assert "docs-v0" in server.indexes
        # an ingest recording its scope meanwhile keeps the lock (If-Match read-modify-write of the description)
        ingest(LocalFolderSource(make_docs(tmp_path / "more")), index=v1, embedder=embedder,
               options=IngestOptions(chunking=ChunkingConfig(chunk_size=128, overlap=10)))
        assert len(v1.list_scopes()) == 2 and v1.rebuild_lock_error() is not None
        v1.release_rebuild_lock("not-the-token")  # someone else's release leaves it
        assert v1.rebuild_lock_error() is not None
        v1.release_rebuild_lock(token)
        assert v1.rebuild_lock_error() is None
        # a stale lock (its rebuild died) is taken over
        v1.take_rebuild_lock("ondata index rebuild, pid 1 on host-b", building="docs-v2", now=time.time() - 25 * 3600)
        with pytest.raises(RebuildInProgress):
            v1.take_rebuild_lock("x", building="docs-v2", stale_after_s=26 * 3600)
        result = rebuild_azure(s, s, quiet, chunk_size=48, overlap=None, dry_run=False, drop_old=True, stop=None)
        assert result["swapped"] and server.aliases == {"docs": "docs-v2"}
        assert sorted(server.indexes) == ["docs-v2", "docs-v2-sources"]  # the locked docs-v1 dropped under its lock
        meta = json.loads(server.indexes["docs-v2"].definition["description"].removeprefix("ondata "))
        assert "rebuild_lock" not in meta and meta["scopes"]


def test_azure_description_writes_retry_when_another_writer_changed_it(tmp_path):
    from ondata.wiring import build_index

    embedder = HashingEmbedder(dimensions=DIMS)
    with FakeAzureSearch(api_key=KEY) as server:
        ix = build_index(azure_settings(server, "docs-v1"), embedder)
        ix.ensure()
        real = ix._get_index  # noqa: SLF001
        raced = []

        def stale_read(name):  # the first read is overtaken by another writer before the write
            got = real(name)
            if not raced:
                raced.append("taken")
                ix.take_rebuild_lock("other", building="docs-v2")  # reads through here too: raced is set
            return got

        ix._get_index = stale_read  # noqa: SLF001
        from indexers.records import ScopeRecord

        ix.record_scope(ScopeRecord(scope="s", kind="folder", root=str(tmp_path)))
        ix._get_index = real  # noqa: SLF001
        assert [r.scope for r in ix.list_scopes()] == ["s"] and ix.rebuild_lock_error() is not None  # both kept
