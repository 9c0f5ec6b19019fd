"""LocalFolderSource: stable ids, content versions, sidecars, hidden files, errors."""

from __future__ import annotations

import json

import pytest

from pipelines.errors import InvalidMetadataError, SourceError
from pipelines.records import ItemProblem, SourceItem
from pipelines.sources.local import LocalFolderSource


def _write(path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def test_lists_files_recursively_with_relative_ids(tmp_path):
    _write(tmp_path / "b.txt", "bee")
    _write(tmp_path / "sub" / "a.md", "# A")
    _write(tmp_path / ".hidden" / "x.txt", "no")
    _write(tmp_path / ".DS_Store", "no")
    items = list(LocalFolderSource(tmp_path).list_items())
    assert [i.id for i in items] == ["b.txt", "sub/a.md"]
    assert items[1].filepath == "sub/a.md" and items[1].name == "a.md"
    with LocalFolderSource(tmp_path).open(items[1]) as fh:
        assert fh.read() == b"# A"


def test_version_follows_content_and_sidecar(tmp_path):
    _write(tmp_path / "a.txt", "one")
    src = LocalFolderSource(tmp_path)
    v1 = next(iter(src.list_items())).version
    assert next(iter(src.list_items())).version == v1  # stable
    _write(tmp_path / "a.txt", "two")
    v2 = next(iter(src.list_items())).version
    assert v2 != v1
    _write(tmp_path / "a.txt.meta.json", json.dumps({"groups": ["hr"]}))
    item = next(iter(src.list_items()))
    assert item.version not in (v1, v2)
    assert item.groups == ("hr",)


def test_sidecar_fills_title_url_groups_and_metadata(tmp_path):
    _write(tmp_path / "pay.pdf", b"%PDF-1.4")
    _write(tmp_path / "pay.pdf.meta.json",
           json.dumps({"title": "Pay scales", "url": "https://intra/pay", "groups": ["finance", "hr"], "owner": "Ana"}))
    (item,) = LocalFolderSource(tmp_path).list_items()
    assert (item.title, item.url, item.groups) == ("Pay scales", "https://intra/pay", ("finance", "hr"))
    assert dict(item.metadata) == {"owner": "Ana"}
    assert item.content_type == "application/pdf"


def test_bad_sidecar_fails_that_document_only(tmp_path):
    _write(tmp_path / "a.txt", "x")
    _write(tmp_path / "a.txt.meta.json", "{not json")
    _write(tmp_path / "b.txt", "fine")
    problem, ok = LocalFolderSource(tmp_path).list_items()
    assert isinstance(problem, ItemProblem) and problem.status == "failed" and problem.id == "a.txt"
    assert isinstance(problem.error, InvalidMetadataError) and "a.txt" in str(problem.error)
    assert "not valid JSON" in problem.error.message
    assert isinstance(ok, SourceItem) and ok.id == "b.txt"


def test_missing_folder_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        list(LocalFolderSource(tmp_path / "nope").list_items())


def test_include_exclude_globs(tmp_path):
    for n in ("a.pdf", "b.txt", "c.pdf", "draft-d.pdf"):
        _write(tmp_path / n, n)
    src = LocalFolderSource(tmp_path, include=("*.pdf",), exclude=("draft-*",))
    assert [i.id for i in src.list_items()] == ["a.pdf", "c.pdf"]


def test_single_file_path(tmp_path):
    _write(tmp_path / "one.txt", "hello")
    (item,) = LocalFolderSource(tmp_path / "one.txt").list_items()
    assert item.id == "one.txt"
    with LocalFolderSource(tmp_path / "one.txt").open(item) as fh:
        assert fh.read() == b"hello"
    _write(tmp_path / "one.txt.meta.json", json.dumps({"groups": ["hr"], "title": "One"}))
    (item,) = LocalFolderSource(tmp_path / "one.txt").list_items()
    assert (item.groups, item.title) == (("hr",), "One")
