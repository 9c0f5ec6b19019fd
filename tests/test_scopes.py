"""Scoped sync end to end (issue 10 points 2, 3, 7, 9): scopes, cleanup modes, pipeline fingerprints,
groups changes, ``ondata index sources|remove``, the schema 1 -> 2 migration and bad arguments."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from indexers.embedders.cache import CachedEmbedder, EmbeddingCache
from indexers.embedders.hashing import HashingEmbedder
from indexers.errors import IndexSchemaError
from indexers.local_index import LocalIndex
from indexers.records import SearchRequest
from pipelines.chunking import ChunkingConfig
from pipelines.ingest import IngestOptions, ingest
from pipelines.sources.local import LocalFolderSource
from tests.data.local_index_v1 import build_v1_index
from tests.terminal import read_until

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples" / "docs"
LONG = " ".join(f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(120))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _folder(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        _write(root / name, text)
    return root


def _setup(tmp_path, dims=64):
    embedder = CachedEmbedder(HashingEmbedder(dimensions=dims), EmbeddingCache(tmp_path / "cache.sqlite"))
    return embedder, LocalIndex(tmp_path / "idx", dimensions=dims, model_id=embedder.model_id)


def _docs(index: LocalIndex) -> list[tuple[str, str]]:
    return [(r.scope, r.source_id) for r in index.list_sources()]


def _cli(*args, cwd=ROOT, input=None):
    return subprocess.run([sys.executable, "-m", "ondata.cli", *args], capture_output=True, text=True, cwd=cwd,
                          input=input, env={**os.environ, "COLUMNS": "200"}, timeout=300)


# ---------------------------------------------------------------- scopes


def test_same_file_name_in_two_folders_never_collides(tmp_path):
    a = _folder(tmp_path / "a", {"readme.txt": "Alpha team notes about the boiler.", "only-a.txt": "Alpha only."})
    b = _folder(tmp_path / "b", {"readme.txt": "Beta team notes about the garden."})
    embedder, index = _setup(tmp_path)
    assert ingest(LocalFolderSource(a), index=index, embedder=embedder).added == 2
    second = ingest(LocalFolderSource(b), index=index, embedder=embedder)
    assert second.counts()["deleted"] == 0 and second.added == 1  # a's documents are another scope's
    ra, rb = str(a.resolve()), str(b.resolve())
    assert _docs(index) == [(ra, "only-a.txt"), (ra, "readme.txt"), (rb, "readme.txt")]
    hits = index.search(SearchRequest(text="team notes", mode="text", top=10))
    assert sorted(h.chunk.content for h in hits) == ["Alpha team notes about the boiler.",
                                                     "Beta team notes about the garden."]

    (a / "only-a.txt").unlink()
    (b / "readme.txt").write_text("Beta team notes, revised.")
    again_a = ingest(LocalFolderSource(a), index=index, embedder=embedder)
    assert again_a.counts() == {"added": 0, "updated": 0, "deleted": 1, "unchanged": 1, "failed": 0,
                                     "skipped": 0}
    assert _docs(index) == [(ra, "readme.txt"), (rb, "readme.txt")]  # b untouched, though b changed
    assert [h.chunk.content for h in index.search(SearchRequest(text="Beta", mode="text"))] == [
        "Beta team notes about the garden."]


def test_scope_name_and_default_scope_of_a_single_file(tmp_path):
    folder = _folder(tmp_path / "docs", {"x.txt": "Xylophones.", "y.txt": "Yachts."})
    named = LocalFolderSource(folder, scope="handbooks")
    assert named.scope == "handbooks" and {i.scope for i in named.list_items()} == {"handbooks"}
    single = LocalFolderSource(folder / "x.txt")
    assert single.scope == str(folder.resolve()) and single.single_file and not LocalFolderSource(folder).single_file
    with pytest.raises(ValueError, match="scope must not be empty"):
        LocalFolderSource(folder, scope=" ")


def test_single_file_ingest_keeps_the_rest_of_the_index(tmp_path):
    """The reproduction of the issue: on main this deleted the other nine (ten with the eml) documents."""
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLES, docs)
    idx = tmp_path / "idx"
    assert _cli("ingest", str(docs), "--index", str(idx), "--embedder", "hashing").returncode == 0
    files = sorted(p.name for p in docs.iterdir() if not p.name.endswith(".meta.json"))
    dry = _cli("ingest", str(docs / "it_security_guidelines.md"), "--index", str(idx), "--embedder", "hashing",
               "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["counts"] == {"added": 0, "updated": 0, "deleted": 0, "unchanged": 1, "failed": 0,
                                                "skipped": 0}
    (docs / "it_security_guidelines.md").write_text("# IT security\n\nRotate every password each quarter.\n")
    out = _cli("ingest", str(docs / "it_security_guidelines.md"), "--index", str(idx), "--embedder", "hashing",
               "--json")
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout)["counts"]
    assert counts["updated"] == 1 and counts["deleted"] == 0  # the folder's document, updated in place
    listing = json.loads(_cli("index", "sources", "--index", str(idx), "--json").stdout)
    assert sorted(r["source_id"] for r in listing) == files
    assert {r["scope"] for r in listing} == {str(docs.resolve())}


# ---------------------------------------------------------------- cleanup modes


def test_cleanup_none_and_full(tmp_path):
    a = _folder(tmp_path / "a", {"1.txt": "One.", "2.txt": "Two."})
    b = _folder(tmp_path / "b", {"3.txt": "Three."})
    embedder, index = _setup(tmp_path)
    ingest(LocalFolderSource(a), index=index, embedder=embedder)
    ingest(LocalFolderSource(b), index=index, embedder=embedder)
    (a / "2.txt").unlink()
    none = ingest(LocalFolderSource(a), index=index, embedder=embedder, options=IngestOptions(cleanup="none"))
    assert none.deleted == 0 and len(_docs(index)) == 3  # add/update only: 2.txt stays

    dry = ingest(LocalFolderSource(a), index=index, embedder=embedder,
                 options=IngestOptions(cleanup="full", dry_run=True))
    deleted = [(r.scope, r.source_id) for r in dry.results if r.status == "deleted"]
    assert deleted == [(None, "2.txt"), (str(b.resolve()), "3.txt")] and len(_docs(index)) == 3
    full = ingest(LocalFolderSource(a), index=index, embedder=embedder, options=IngestOptions(cleanup="full"))
    assert full.deleted == 2 and _docs(index) == [(str(a.resolve()), "1.txt")]  # the index mirrors a


def test_cli_cleanup_full_asks_refuses_without_a_terminal_and_yes_confirms(tmp_path):
    a = _folder(tmp_path / "a", {"1.txt": "One."})
    b = _folder(tmp_path / "b", {"3.txt": "Three.", "4.txt": "Four."})
    idx = str(tmp_path / "idx")
    common = ("--index", idx, "--embedder", "hashing")
    for folder in (a, b):
        assert _cli("ingest", str(folder), *common).returncode == 0

    refused = _cli("ingest", str(a), *common, "--cleanup", "full")  # stdin is not a terminal
    assert refused.returncode == 2 and "Traceback" not in refused.stderr and refused.stdout == ""  # not even a blank line
    assert refused.stderr.strip() == ("error: --cleanup full would delete 2 documents, 2 of them from other scopes; "
                                      "pass --yes to confirm (--dry-run lists them)")
    listing = json.loads(_cli("index", "sources", "--index", idx, "--json").stdout)
    assert len(listing) == 3  # nothing deleted

    dry = _cli("ingest", str(a), *common, "--cleanup", "full", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would be deleted: 3.txt" in dry.stdout and f"(scope {b.resolve()})" in dry.stdout

    bad = _cli("ingest", str(a), *common, "--cleanup", "everything")
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "error: --cleanup must be one of scoped, none, full, not 'everything'")

    yes = _cli("ingest", str(a), *common, "--cleanup", "full", "--yes", "--json")
    assert yes.returncode == 0, yes.stderr
    assert json.loads(yes.stdout)["counts"]["deleted"] == 2
    assert [r["source_id"] for r in json.loads(_cli("index", "sources", "--index", idx, "--json").stdout)] == ["1.txt"]


def test_cli_cleanup_full_confirmation_on_a_terminal(tmp_path):
    """On a pseudo-terminal ``--cleanup full`` lists what it deletes and asks; 'n' deletes nothing."""
    import pty

    a = _folder(tmp_path / "a", {"1.txt": "One."})
    b = _folder(tmp_path / "b", {"3.txt": "Three."})
    idx = str(tmp_path / "idx")
    for folder in (a, b):
        assert _cli("ingest", str(folder), "--index", idx, "--embedder", "hashing").returncode == 0
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ondata.cli", "ingest", str(a), "--index", idx, "--embedder",
                             "hashing", "--cleanup", "full"], stdin=slave, stdout=slave, stderr=slave, cwd=ROOT,
                            env={**os.environ, "COLUMNS": "200"}, close_fds=True)
    os.close(slave)
    try:
        shown = read_until(master, b"[y/N]")
        assert b"deletes 1 documents not in this source" in shown and b"3.txt" in shown
        os.write(master, b"n\n")
        rest = read_until(master, b"not confirmed")
        assert b"nothing deleted: --cleanup full was not confirmed" in rest
        assert proc.wait(timeout=60) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert len(json.loads(_cli("index", "sources", "--index", idx, "--json").stdout)) == 2


# ---------------------------------------------------------------- ondata index sources / remove


def test_cli_index_sources_and_remove(tmp_path):
    a = _folder(tmp_path / "a", {"same.txt": "A same.", "a-only.txt": "A only."})
    b = _folder(tmp_path / "b", {"same.txt": "B same."})
    _write(b / "same.txt.meta.json", json.dumps({"groups": ["hr"]}))
    idx = str(tmp_path / "idx")
    assert _cli("ingest", str(a), "--index", idx, "--embedder", "hashing").returncode == 0
    assert _cli("ingest", str(b), "--index", idx, "--embedder", "hashing", "--scope", "hr-docs").returncode == 0

    listing = json.loads(_cli("index", "sources", "--index", idx, "--json").stdout)
    assert [(r["scope"], r["source_id"], r["chunk_count"], r["groups"]) for r in listing] == [
        (str(a.resolve()), "a-only.txt", 1, []), (str(a.resolve()), "same.txt", 1, []),
        ("hr-docs", "same.txt", 1, ["hr"])]
    assert all(r["version"].startswith("sha256:") and "|c=" in r["version"] and r["ingested_at"] for r in listing)
    table = _cli("index", "sources", "--index", idx, "--scope", "hr-docs")
    assert table.returncode == 0 and "scope hr-docs - 1 documents" in table.stdout and "a-only" not in table.stdout

    ambiguous = _cli("index", "remove", "--index", idx, "--source", "same.txt")
    assert ambiguous.returncode == 2 and "is in 2 scopes" in ambiguous.stderr and "--scope" in ambiguous.stderr
    dry = _cli("index", "remove", "--index", idx, "--scope", str(a.resolve()), "--dry-run")
    assert dry.returncode == 0 and "2 documents would be removed" in dry.stdout
    assert len(json.loads(_cli("index", "sources", "--index", idx, "--json").stdout)) == 3
    one = _cli("index", "remove", "--index", idx, "--source", "same.txt", "--scope", "hr-docs", "--json")
    assert json.loads(one.stdout) == {"dry_run": False, "removed": [
        {"scope": "hr-docs", "source_id": "same.txt", "chunks": 1}]}
    whole = _cli("index", "remove", "--index", idx, "--scope", str(a.resolve()))
    assert whole.returncode == 0 and "2 documents removed" in whole.stdout
    assert json.loads(_cli("index", "sources", "--index", idx, "--json").stdout) == []
    assert "nothing to remove" in _cli("index", "remove", "--index", idx, "--source", "nope").stdout
    neither = _cli("index", "remove", "--index", idx)
    assert neither.returncode == 2 and "--scope NAME or --source ID" in neither.stderr


# ---------------------------------------------------------------- pipeline fingerprint


def _reasons(report) -> dict[str, str]:
    return {r.source_id: r.reason for r in report.results if r.status == "updated"}


@pytest.mark.parametrize("new", [ChunkingConfig(chunk_size=128), ChunkingConfig(overlap=0)],
                         ids=["chunk-size", "overlap"])
def test_chunking_change_re_processes_every_document(tmp_path, new):
    folder = _folder(tmp_path / "d", {"long.txt": LONG, "short.txt": "A short note."})
    embedder, index = _setup(tmp_path)
    ingest(LocalFolderSource(folder), index=index, embedder=embedder)
    before = {r.source_id: r.chunk_count for r in index.list_sources()}
    assert ingest(LocalFolderSource(folder), index=index, embedder=embedder).unchanged == 2

    dry = ingest(LocalFolderSource(folder), index=index, embedder=embedder,
                 options=IngestOptions(chunking=new, dry_run=True))
    assert _reasons(dry) == {"long.txt": "chunking settings changed", "short.txt": "chunking settings changed"}
    run = ingest(LocalFolderSource(folder), index=index, embedder=embedder, options=IngestOptions(chunking=new))
    assert run.updated == 2 and _reasons(run)["long.txt"] == "chunking settings changed"
    after = {r.source_id: r.chunk_count for r in index.list_sources()}
    if new.chunk_size == 128:
        assert after["long.txt"] > before["long.txt"]
    assert run.embedding_cache_hits >= 1  # the short note's text did not change: its vector is cached
    assert ingest(LocalFolderSource(folder), index=index, embedder=embedder,
                  options=IngestOptions(chunking=new)).unchanged == 2  # converged


def test_parser_version_change_re_processes_only_that_format(tmp_path, monkeypatch):
    from pipelines import parsing

    folder = _folder(tmp_path / "d", {"a.txt": "Plain text.", "b.html": "<html><body><p>Hyper text.</p></body></html>"})
    embedder, index = _setup(tmp_path)
    ingest(LocalFolderSource(folder), index=index, embedder=embedder)
    monkeypatch.setitem(parsing.PARSER_REVISIONS, "txt", parsing.PARSER_REVISIONS["txt"] + 1)
    run = ingest(LocalFolderSource(folder), index=index, embedder=embedder)
    assert _reasons(run) == {"a.txt": "parser version changed"} and run.unchanged == 1


def test_embedding_model_change_re_processes(tmp_path):
    class Renamed:
        """The same vectors under another model id (e.g. a new model version of the same size)."""

        def __init__(self, inner):
            self.inner = inner

        model_id = "hashing-v2-renamed"
        dimensions = property(lambda self: self.inner.dimensions)

        def embed_documents(self, texts):
            return self.inner.embed_documents(texts)

        def embed_query(self, text):
            return self.inner.embed_query(text)

    folder = _folder(tmp_path / "d", {"a.txt": "Alpha.", "b.txt": "Beta."})
    embedder = HashingEmbedder(dimensions=32)
    index = LocalIndex(tmp_path / "idx", dimensions=32, model_id="any")
    ingest(LocalFolderSource(folder), index=index, embedder=embedder)
    run = ingest(LocalFolderSource(folder), index=index, embedder=Renamed(embedder))
    assert _reasons(run) == {"a.txt": "embedding model changed", "b.txt": "embedding model changed"}


def test_cli_dry_run_says_why(tmp_path):
    folder = _folder(tmp_path / "d", {"a.txt": LONG})
    idx = str(tmp_path / "idx")
    assert _cli("ingest", str(folder), "--index", idx, "--embedder", "hashing").returncode == 0
    dry = _cli("ingest", str(folder), "--index", idx, "--embedder", "hashing", "--chunk-size", "128", "--dry-run")
    assert dry.returncode == 0 and "would be updated: a.txt (chunking settings changed)" in dry.stdout


# ---------------------------------------------------------------- groups changes (point 7)


def test_sidecar_groups_change_takes_effect_in_the_same_run(tmp_path):
    folder = _folder(tmp_path / "d", {"plan.txt": "The secret merger plan.", "open.txt": "Opening hours."})
    sidecar = _write(folder / "plan.txt.meta.json", json.dumps({"groups": ["hr", "finance"]}))
    embedder, index = _setup(tmp_path)
    ingest(LocalFolderSource(folder), index=index, embedder=embedder)

    def visible(groups):
        return [h.chunk.source_id for h in index.search(
            SearchRequest(text="secret merger plan", mode="text", groups=groups, public_when_no_groups=True))]

    assert visible(("finance",)) == ["plan.txt"]
    sidecar.write_text(json.dumps({"groups": ["hr"]}))  # content unchanged, groups narrowed
    dry = ingest(LocalFolderSource(folder), index=index, embedder=embedder, options=IngestOptions(dry_run=True))
    assert _reasons(dry) == {"plan.txt": "groups changed"}
    run = ingest(LocalFolderSource(folder), index=index, embedder=embedder)
    assert run.updated == 1 and run.unchanged == 1
    assert visible(("finance",)) == [] and visible(("hr",)) == ["plan.txt"]
    assert {r.source_id: r.groups for r in index.list_sources()}["plan.txt"] == ("hr",)
    sidecar.unlink()  # no sidecar: public
    assert _reasons(ingest(LocalFolderSource(folder), index=index, embedder=embedder)) == {"plan.txt": "groups changed"}
    assert visible(()) == ["plan.txt"]


# ---------------------------------------------------------------- schema 1 -> 2 migration


def test_an_index_built_before_scopes_is_migrated_in_place_and_adopted(tmp_path, caplog):
    folder = _folder(tmp_path / "d", {"a.txt": "Alpha apples.", "b.txt": "Beta bananas."})
    path = tmp_path / "idx"
    build_v1_index(path, {"a.txt": "Alpha apples.", "elsewhere.txt": "From another folder."}, dimensions=64)
    embedder = HashingEmbedder(dimensions=64)
    index = LocalIndex(path, dimensions=64, model_id=embedder.model_id)
    with caplog.at_level("WARNING"):
        assert _docs(index) == [("", "a.txt"), ("", "elsewhere.txt")]  # opened: nothing lost
        index.ensure()
    assert "migrated the local index" in caplog.text and "from schema 1 to 4" in caplog.text
    con = sqlite3.connect(path / "index.sqlite")
    assert con.execute("SELECT value FROM index_meta WHERE key = 'schema_version'").fetchone() == ("4",)
    con.close()
    assert [h.chunk.source_id for h in index.search(SearchRequest(text="apples", mode="text"))] == ["a.txt"]

    run = ingest(LocalFolderSource(folder), index=index, embedder=embedder)
    assert run.counts() == {"added": 1, "updated": 1, "deleted": 0, "unchanged": 0, "failed": 0, "skipped": 0}
    assert _reasons(run) == {"a.txt": "stored before scopes"}
    scope = str(folder.resolve())
    assert _docs(index) == [("", "elsewhere.txt"), (scope, "a.txt"), (scope, "b.txt")]  # adopted, never doubled
    assert index.count() == 3
    assert ingest(LocalFolderSource(folder), index=index, embedder=embedder).unchanged == 2


def test_an_index_of_an_unknown_schema_is_refused_in_one_line(tmp_path):
    path = tmp_path / "idx"
    build_v1_index(path, {"a.txt": "Alpha."}, dimensions=64)
    con = sqlite3.connect(path / "index.sqlite")
    con.execute("UPDATE index_meta SET value = '9' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(IndexSchemaError, match="schema version 9, which this version of ondata .* cannot read; "
                                               "upgrade ondata, or re-ingest into a new --index folder"):
        LocalIndex(path, dimensions=64, model_id="hashing-v1").ensure()


# ---------------------------------------------------------------- bad arguments (point 9)


def test_bad_arguments_are_one_line_exit_2_and_create_nothing(tmp_path):
    folder = _folder(tmp_path / "d", {"a.txt": "Alpha."})
    a_file = _write(tmp_path / "not-a-folder", "x")
    out = _cli("ingest", str(folder), "--index", str(a_file), "--embedder", "hashing")
    assert out.returncode == 2 and out.stderr.strip() == (
        f"error: the index path {a_file} is a file, not a folder; give --index a folder")
    assert a_file.read_text() == "x"

    idx = tmp_path / "fresh"
    missing = _cli("ingest", str(tmp_path / "nope"), "--index", str(idx), "--embedder", "hashing")
    assert missing.returncode == 2 and missing.stderr.strip() == (
        f"error: {tmp_path / 'nope'} does not exist; give a folder or a file to ingest (or az://container/prefix)")
    assert not idx.exists()  # no index, no embedding cache

    for args in (("index", "sources"), ("index", "stats")):
        listed = _cli(*args, "--index", str(a_file))
        assert listed.returncode == 2 and listed.stderr.count("\n") == 1 and "Traceback" not in listed.stderr


def _runs_as_nobody() -> bool:
    try:
        return subprocess.run([sys.executable, "-c", "import ondata"], cwd=ROOT, capture_output=True,
                              user=65534, group=65534, timeout=120).returncode == 0
    except OSError:
        return False


def test_an_unreadable_index_folder_is_one_line(tmp_path, monkeypatch):
    folder = _folder(tmp_path / "d", {"a.txt": "Alpha."})
    idx = tmp_path / "locked"
    idx.mkdir()
    expected = f"the index folder {idx} cannot be read: Permission denied"
    if os.geteuid() == 0 and not _runs_as_nobody():
        # root reads every folder, and this interpreter cannot run as another user: simulate EACCES
        from typer.testing import CliRunner

        from ondata.cli import app
        from indexers.errors import ConfigError

        real = os.listdir
        monkeypatch.setattr(os, "listdir", lambda p=".": (_ for _ in ()).throw(
            PermissionError(13, "Permission denied", str(p))) if Path(p) == idx else real(p))
        result = CliRunner().invoke(app, ["ingest", str(folder), "--index", str(idx), "--embedder", "hashing"])
        assert isinstance(result.exception, ConfigError) and str(result.exception) == expected
        assert real(idx) == []
        return
    user = {"user": 65534, "group": 65534} if os.geteuid() == 0 else {}
    for p in (tmp_path, folder):
        p.chmod(0o755)
    idx.chmod(0)
    try:
        out = subprocess.run([sys.executable, "-m", "ondata.cli", "ingest", str(folder), "--index", str(idx),
                              "--embedder", "hashing"], capture_output=True, text=True, cwd=ROOT,
                             env={**os.environ, "HOME": str(tmp_path)}, timeout=300, **user)
    finally:
        idx.chmod(0o755)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == f"error: {expected}"
    assert os.listdir(idx) == []
