"""LocalFolderSource reads safely and isolates bad entries (issue 10 points 5 and 6).

Links (to /etc/passwd, /proc/self/environ, a folder outside, loops), special files (FIFO, socket,
device), a file swapped for a link or a FIFO between listing and open, bad sidecars, unreadable,
vanished and non-UTF-8 entries: each becomes an ``ItemProblem`` on that entry, never a read.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import threading
from pathlib import Path

import pytest

from indexers.embedders.hashing import HashingEmbedder
from indexers.local_index import LocalIndex
from indexers.records import SourceRecord
from pipelines.errors import (
    DocumentTooLargeError,
    InvalidMetadataError,
    SourceError,
    SpecialFileError,
    SymlinkError,
    UnsupportedFormatError,
)
from pipelines.ingest import ingest
from pipelines.records import ItemProblem, SourceItem
from pipelines.sources.local import LocalFolderSource
from pipelines.sync import plan_sync


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def entries(src: LocalFolderSource) -> dict[str, SourceItem | ItemProblem]:
    return {e.id: e for e in src.list_items()}


def problem(src_or_entries, rel: str) -> ItemProblem:
    found = src_or_entries if isinstance(src_or_entries, dict) else entries(src_or_entries)
    p = found[rel]
    assert isinstance(p, ItemProblem), f"{rel} was listed as {p!r}"
    return p


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "docs"
    _write(r / "ok.txt", "A normal document.")
    return r


# ---------------------------------------------------------------- links


@pytest.mark.parametrize("target", ["/etc/passwd", "/proc/self/environ"])
@pytest.mark.parametrize("follow", [False, True])
def test_links_out_of_the_root_are_skipped_never_read(root, target, follow, monkeypatch):
    if not os.path.exists(target):
        pytest.skip(f"{target} does not exist here")
    (root / "leak.txt").symlink_to(target)
    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: opened.append(str(p)) or real_open(p, *a, **k))
    found = entries(LocalFolderSource(root, follow_symlinks=follow))
    p = problem(found, "leak.txt")
    assert p.status == "skipped" and isinstance(p.error, SymlinkError) and "leak.txt" in str(p.error)
    assert ("outside the folder" in p.error.message) if follow else ("not followed" in p.error.message)
    assert isinstance(found["ok.txt"], SourceItem)
    assert not any(target in o or o == "leak.txt" for o in opened)  # never opened
    with pytest.raises(SymlinkError):  # and open() refuses it too, whatever the engine asks
        LocalFolderSource(root, follow_symlinks=follow).open(SourceItem(id="leak.txt", version="v", name="leak.txt"))


def test_the_process_environment_never_reaches_the_index(root, tmp_path, monkeypatch):
    monkeypatch.setenv("ONDATA_TEST_CANARY", "sk-canary-5e1f0c2a9b")
    (root / "env.txt").symlink_to("/proc/self/environ")
    (root / "passwd.txt").symlink_to("/etc/passwd")
    embedder = HashingEmbedder(dimensions=32)
    index = LocalIndex(tmp_path / "idx", dimensions=32, model_id=embedder.model_id)
    report = ingest(LocalFolderSource(root, follow_symlinks=True), index=index, embedder=embedder)
    assert report.counts()["added"] == 1 and {r.source_id for r in report.skipped} == {"env.txt", "passwd.txt"}
    import sqlite3

    con = sqlite3.connect(index.sqlite_path)
    text = " ".join(c for (c,) in con.execute("SELECT content FROM chunks"))
    con.close()
    index.close()
    assert "sk-canary" not in text and "root:" not in text and "A normal document." in text


def test_link_to_a_folder_outside_and_link_loops(root, tmp_path):
    outside = tmp_path / "outside"
    _write(outside / "secret.txt", "not part of the source")
    (root / "ext").symlink_to(outside, target_is_directory=True)
    (root / "self").symlink_to(root, target_is_directory=True)  # a loop back to the root
    (root / "a").symlink_to(root / "b")
    (root / "b").symlink_to(root / "a")  # a loop between two links
    for follow in (False, True):
        found = entries(LocalFolderSource(root, follow_symlinks=follow))
        assert [i.id for i in found.values() if isinstance(i, SourceItem)] == ["ok.txt"]
        assert not any("secret" in k for k in found)
    found = entries(LocalFolderSource(root, follow_symlinks=True))
    assert "outside the folder" in problem(found, "ext").error.message
    assert "loop" in problem(found, "self").error.message and problem(found, "self").status == "skipped"
    _write(root / "sub" / "x.txt", "inside")
    (root / "sub" / "up").symlink_to(root / "sub", target_is_directory=True)  # a loop one level down
    found = entries(LocalFolderSource(root, follow_symlinks=True))
    assert "loop" in problem(found, "sub/up").error.message and isinstance(found["sub/x.txt"], SourceItem)
    assert "loops" in problem(found, "a").error.message and "loops" in problem(found, "b").error.message
    found = entries(LocalFolderSource(root))
    assert all(problem(found, k).status == "skipped" for k in ("ext", "self", "a", "b"))


def test_follow_symlinks_follows_links_inside_the_root(root):
    _write(root / "real" / "inner.md", "# Inner\n\nInside the root.")
    (root / "alias.txt").symlink_to(root / "ok.txt")
    (root / "linked").symlink_to(root / "real", target_is_directory=True)
    src = LocalFolderSource(root, follow_symlinks=True)
    found = entries(src)
    assert {k for k, v in found.items() if isinstance(v, SourceItem)} == {
        "alias.txt", "linked/inner.md", "ok.txt", "real/inner.md"}
    with src.open(found["linked/inner.md"]) as fh:
        assert fh.read() == b"# Inner\n\nInside the root."
    assert found["alias.txt"].version == found["ok.txt"].version
    skipped = entries(LocalFolderSource(root))  # off by default
    assert problem(skipped, "alias.txt").status == "skipped" and problem(skipped, "linked").status == "skipped"


def test_the_root_itself_may_be_a_link_and_a_single_file_works(root, tmp_path):
    (tmp_path / "docs-link").symlink_to(root, target_is_directory=True)
    found = entries(LocalFolderSource(tmp_path / "docs-link"))
    assert list(found) == ["ok.txt"] and isinstance(found["ok.txt"], SourceItem)
    (item,) = LocalFolderSource(root / "ok.txt").list_items()
    assert item.id == "ok.txt" and LocalFolderSource(root / "ok.txt").open(item).read() == b"A normal document."
    (tmp_path / "one.txt").symlink_to(root / "ok.txt")  # a single file named through a link: what the user named
    (item,) = LocalFolderSource(tmp_path / "one.txt").list_items()
    assert item.id == "one.txt" and LocalFolderSource(tmp_path / "one.txt").open(item).read() == b"A normal document."


def test_virtual_filesystems_are_never_a_source():
    for path in ("/proc/self", "/proc/self/environ"):
        with pytest.raises(SourceError, match="virtual filesystem"):
            list(LocalFolderSource(path).list_items())


# ---------------------------------------------------------------- special files


def _listing_in_a_thread(src: LocalFolderSource) -> dict:
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(entries(src)), daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "listing blocked (a FIFO was opened?)"
    return out


def test_fifo_socket_and_device_are_skipped_without_blocking(root):
    os.mkfifo(root / "pipe.txt")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock.txt"))
    try:
        try:
            os.mknod(root / "null.txt", 0o600 | 0o020000, os.makedev(1, 3))  # a character device
            device = True
        except (PermissionError, OSError):
            device = False
        found = _listing_in_a_thread(LocalFolderSource(root))
    finally:
        sock.close()
    for name, kind in (("pipe.txt", "FIFO"), ("sock.txt", "socket")) + ((("null.txt", "device"),) if device else ()):
        p = problem(found, name)
        assert p.status == "skipped" and isinstance(p.error, SpecialFileError) and kind in p.error.message
    assert isinstance(found["ok.txt"], SourceItem)
    (p,) = _listing_in_a_thread(LocalFolderSource(root / "pipe.txt")).values()  # named as the source itself
    assert p.status == "skipped" and "FIFO" in p.error.message


# ---------------------------------------------------------------- races: listing -> open


def test_a_file_replaced_by_a_link_or_a_fifo_after_listing_is_refused(root, tmp_path):
    _write(root / "sub" / "doc.txt", "inner")
    src = LocalFolderSource(root)
    found = entries(src)
    item, inner = found["ok.txt"], found["sub/doc.txt"]
    (root / "ok.txt").unlink()
    (root / "ok.txt").symlink_to("/etc/passwd")
    with pytest.raises(SymlinkError) as info:
        src.open(item)
    assert info.value.doc_id == "ok.txt"
    (root / "ok.txt").unlink()
    os.mkfifo(root / "ok.txt")
    with pytest.raises(SpecialFileError):  # opened O_NONBLOCK, refused by fstat: never blocks
        src.open(item)
    # a folder on the path swapped for a link to a folder outside
    outside = tmp_path / "elsewhere"
    _write(outside / "doc.txt", "outside")
    (root / "sub").rename(tmp_path / "sub-moved")
    (root / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SymlinkError):
        src.open(inner)
    with pytest.raises(SymlinkError):  # even when following links: outside is outside
        LocalFolderSource(root, follow_symlinks=True).open(inner)


def test_a_file_swapped_for_a_link_while_listing_is_not_read(root, monkeypatch):
    _write(root / "swap.txt", "harmless")
    original = LocalFolderSource._item

    def swap_then_read(self, base, base_fd, target, here, rel, sidecar):
        if rel == "swap.txt":  # lstat saw a regular file; now it becomes a link before the open
            (root / "swap.txt").unlink()
            (root / "swap.txt").symlink_to("/etc/passwd")
        return original(self, base, base_fd, target, here, rel, sidecar)

    monkeypatch.setattr(LocalFolderSource, "_item", swap_then_read)
    p = problem(LocalFolderSource(root), "swap.txt")
    assert p.status == "skipped" and isinstance(p.error, SymlinkError)


def test_engine_supplied_ids_cannot_climb_out(root):
    src = LocalFolderSource(root)
    for bad in ("../x", "sub/../../x", "/etc/passwd", "a//b"):
        with pytest.raises(SourceError):
            src.open(SourceItem(id=bad, version="v", name="x"))


# ---------------------------------------------------------------- per-item isolation


@pytest.mark.parametrize("groups", ["finance", "", None, 0, False, 5, ["", "a"], [" "], [1], ["a", None], {"a": 1}])
def test_invalid_sidecar_groups_fail_that_document_only(root, groups):
    _write(root / "acl.txt", "restricted")
    _write(root / "acl.txt.meta.json", json.dumps({"groups": groups}))
    found = entries(LocalFolderSource(root))
    p = problem(found, "acl.txt")
    assert p.status == "failed" and isinstance(p.error, InvalidMetadataError)
    assert "acl.txt" in str(p.error) and "groups" in p.error.message
    assert isinstance(found["ok.txt"], SourceItem)


def test_valid_groups_are_cleaned_and_an_empty_list_is_public(root):
    _write(root / "a.txt", "x")
    _write(root / "a.txt.meta.json", json.dumps({"groups": [" hr ", "finance", "hr"]}))
    _write(root / "b.txt", "x")
    _write(root / "b.txt.meta.json", json.dumps({"groups": []}))
    found = entries(LocalFolderSource(root))
    assert found["a.txt"].groups == ("hr", "finance") and found["b.txt"].groups == ()


def test_a_groups_string_is_never_split_into_characters(root):
    _write(root / "s.txt", "x")
    _write(root / "s.txt.meta.json", json.dumps({"groups": "finance"}))
    p = problem(LocalFolderSource(root), "s.txt")
    assert p.status == "failed" and '["finance"]' in p.error.message  # says how to write it


@pytest.mark.parametrize("sidecar, why", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"title": 5}', "title must be a string"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
])
def test_bad_sidecars_fail_that_document(root, sidecar, why):
    _write(root / "d.txt", "x")
    _write(root / "d.txt.meta.json", sidecar)
    p = problem(LocalFolderSource(root), "d.txt")
    assert p.status == "failed" and why in p.error.message


def test_sidecar_that_is_a_folder_or_a_link_fails_the_document(root):
    _write(root / "d.txt", "x")
    (root / "d.txt.meta.json").mkdir()
    _write(root / "e.txt", "x")
    (root / "e.txt.meta.json").symlink_to("/etc/passwd")
    found = entries(LocalFolderSource(root))
    assert "is a folder" in problem(found, "d.txt").error.message
    assert "symbolic link" in problem(found, "e.txt").error.message and problem(found, "e.txt").status == "failed"
    found = entries(LocalFolderSource(root, follow_symlinks=True))
    assert "outside the folder" in problem(found, "e.txt").error.message


def test_unreadable_vanished_oversized_unsupported_and_non_utf8_entries(root, monkeypatch):
    _write(root / "denied.txt", "x")
    _write(root / "gone.txt", "x")
    _write(root / "big.txt", "x" * 5000)
    _write(root / "tool.exe", b"MZ")
    _write(root / "locked" / "inner.txt", "x")
    with open(os.path.join(os.fsencode(root), b"caf\xe9.txt"), "wb") as fh:
        fh.write(b"latin-1 name")
    real_open = os.open

    def guarded(path, flags, *args, **kw):
        name = os.fsdecode(path)
        if name in ("denied.txt", "locked"):  # as root, chmod does not deny: simulate EACCES
            raise PermissionError(errno.EACCES, "Permission denied", name)
        if name == "gone.txt":
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", name)
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", guarded)
    found = entries(LocalFolderSource(root, max_bytes=1000))
    assert "permission denied" in problem(found, "denied.txt").error.message
    assert "vanished" in problem(found, "gone.txt").error.message
    assert isinstance(problem(found, "big.txt").error, DocumentTooLargeError)
    assert problem(found, "locked/").status == "failed" and "permission denied" in problem(found, "locked/").error.message
    assert all(problem(found, k).status == "failed" for k in ("denied.txt", "gone.txt", "big.txt"))
    tool = problem(found, "tool.exe")
    assert tool.status == "skipped" and isinstance(tool.error, UnsupportedFormatError)
    bad_name = problem(found, "caf\\xe9.txt")
    assert bad_name.status == "failed" and "UTF-8" in bad_name.error.message
    assert isinstance(found["ok.txt"], SourceItem)
    json.dumps([str(p.error) for p in found.values() if isinstance(p, ItemProblem)])  # report-safe text


def test_include_and_exclude(root):
    for name in ("a.pdf", "b.md", "drafts/c.md", "d.txt"):
        _write(root / name, "x")
    src = LocalFolderSource(root, include=("*.md", "*.txt"), exclude=("drafts/*",))
    assert list(entries(src)) == ["b.md", "d.txt", "ok.txt"]


# ---------------------------------------------------------------- problems in the sync plan


def test_failed_problems_keep_their_stored_documents_skipped_ones_do_not():
    err = SourceError("x")
    items = [SourceItem(id="a", version="1", name="a"),
             ItemProblem("bad-sidecar.txt", "bad-sidecar.txt", err, "failed"),
             ItemProblem("locked/", "locked", err, "failed"),
             ItemProblem("env.txt", "env.txt", SymlinkError("link"), "skipped")]
    stored = [SourceRecord(s, "v", 1) for s in ("a", "bad-sidecar.txt", "locked/x.txt", "locked/y/z.txt",
                                                "env.txt", "gone.txt", "lockedness.txt")]
    plan = plan_sync(items, stored)
    assert plan.deleted == ("env.txt", "gone.txt", "lockedness.txt")
    assert [p.id for p in plan.problems] == ["bad-sidecar.txt", "locked/", "env.txt"]
    assert plan.listed == 1 and [i.id for i in plan.changed] == ["a"]


def test_a_document_whose_sidecar_breaks_keeps_its_indexed_version(root, tmp_path):
    _write(root / "acl.txt", "Restricted budget notes.")
    _write(root / "acl.txt.meta.json", json.dumps({"groups": ["finance"]}))
    embedder = HashingEmbedder(dimensions=32)
    index = LocalIndex(tmp_path / "idx", dimensions=32, model_id=embedder.model_id)
    assert ingest(LocalFolderSource(root), index=index, embedder=embedder).counts()["added"] == 2
    _write(root / "acl.txt.meta.json", json.dumps({"groups": "finance"}))  # a typo: would split or go public
    report = ingest(LocalFolderSource(root), index=index, embedder=embedder)
    assert report.counts() == {"added": 0, "updated": 0, "deleted": 0, "unchanged": 1, "failed": 1, "skipped": 0}
    (failed,) = report.failed
    assert failed.source_id == "acl.txt" and failed.error_type == "InvalidMetadataError"
    assert "| `acl.txt` |" in report.to_markdown()
    assert {s.source_id for s in index.list_sources()} == {"acl.txt", "ok.txt"}  # kept, with its old groups
    index.close()
