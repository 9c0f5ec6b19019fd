"""The sample corpus regenerates byte-for-byte and its QA set cites pages that hold the evidence."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
DOCS = SAMPLES / "docs"
QA = SAMPLES / "qa.jsonl"
CITE = re.compile(r"\[([^\[\]#]+?)(?:#page=(\d+))?\]")
PAGED = {".pdf", ".pptx"}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _rows() -> list[dict]:
    return [json.loads(line) for line in QA.read_text(encoding="utf-8").splitlines() if line.strip()]


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _pages(path: Path) -> list[str]:
    if path.suffix == ".pdf":
        from pypdf import PdfReader

        return [page.extract_text() or "" for page in PdfReader(path).pages]
    import pptx

    return ["\n".join(shape.text_frame.text for shape in slide.shapes if shape.has_text_frame)
            for slide in pptx.Presentation(path).slides]


def _text(path: Path) -> str:
    suffix = path.suffix
    if suffix == ".docx":
        import docx

        document = docx.Document(path)
        parts = [p.text for p in document.paragraphs]
        parts += [cell.text for table in document.tables for row in table.rows for cell in row.cells]
        return "\n".join(parts)
    if suffix == ".eml":
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        return f"{message['subject']}\n{message.get_body(preferencelist=('plain',)).get_content()}"
    if suffix in {".html", ".htm"}:
        parser = _TextOnly()
        parser.feed(path.read_text(encoding="utf-8"))
        return "\n".join(parser.parts)
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("samples")
    subprocess.run([sys.executable, str(SAMPLES / "generate.py"), "--out", str(out / "docs"),
                    "--qa", str(out / "qa.jsonl")], check=True, capture_output=True)
    return out


def test_regenerating_gives_byte_identical_documents(regenerated: Path) -> None:
    committed = {p.name: _sha256(p) for p in DOCS.iterdir() if p.is_file()}
    fresh = {p.name: _sha256(p) for p in (regenerated / "docs").iterdir() if p.is_file()}
    assert fresh == committed


def test_regenerating_gives_byte_identical_qa_set(regenerated: Path) -> None:
    assert _sha256(regenerated / "qa.jsonl") == _sha256(QA)


def test_corpus_has_the_required_formats_and_size() -> None:
    from pypdf import PdfReader

    docs = [p for p in DOCS.iterdir() if not p.name.endswith(".meta.json")]
    assert len(docs) >= 8
    assert {".pdf", ".docx", ".pptx", ".html", ".md", ".txt"} <= {p.suffix for p in docs}
    assert max(len(PdfReader(p).pages) for p in docs if p.suffix == ".pdf") >= 20
    assert sum(p.stat().st_size for p in DOCS.iterdir()) < 1_500_000


def test_sidecars_describe_existing_documents() -> None:
    sidecars = sorted(DOCS.glob("*.meta.json"))
    assert any(json.loads(p.read_text(encoding="utf-8")).get("groups") for p in sidecars), "no restricted document"
    for sidecar in sidecars:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        assert (DOCS / sidecar.name.removesuffix(".meta.json")).is_file(), sidecar.name
        assert isinstance(meta.get("title"), str) and meta["title"], sidecar.name
        assert isinstance(meta.get("groups", []), list), sidecar.name


def test_qa_set_is_well_formed() -> None:
    rows = _rows()
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    assert len(answerable) >= 30
    assert len(unanswerable) >= 5
    assert len({r["question"] for r in rows}) == len(rows), "questions must be unique"
    for row in answerable:
        assert CITE.search(row["truth"]), row["question"]
        assert row["evidence"].strip(), row["question"]
    for row in unanswerable:
        assert not CITE.search(row["truth"]), row["question"]
        assert row["truth"].startswith("The documents do not"), row["question"]


def test_restricted_documents_answer_at_most_two_questions_which_name_their_groups() -> None:
    restricted = {p.name.removesuffix(".meta.json"): json.loads(p.read_text(encoding="utf-8")).get("groups", [])
                  for p in DOCS.glob("*.meta.json")}
    restricted = {name: groups for name, groups in restricted.items() if groups}
    on_restricted = [r for r in _rows() if any(m.group(1) in restricted for m in CITE.finditer(r["truth"]))]
    assert len(on_restricted) <= 2
    for row in on_restricted:
        cited = {m.group(1) for m in CITE.finditer(row["truth"])}
        assert set(row.get("groups", ())) & {g for name in cited for g in restricted.get(name, [])}, row["question"]


def test_every_citation_points_at_text_that_holds_the_evidence() -> None:
    pages_cache: dict[str, list[str]] = {}
    for row in (r for r in _rows() if r["answerable"]):
        evidence = _norm(row["evidence"])
        for match in CITE.finditer(row["truth"]):
            name, page = match.group(1), match.group(2)
            path = DOCS / name
            assert path.is_file(), f"{row['question']!r} cites missing file {name}"
            if path.suffix in PAGED:
                assert page is not None, f"{row['question']!r} cites {name} without a page"
                pages = pages_cache.setdefault(name, _pages(path))
                assert 1 <= int(page) <= len(pages), f"{name} has no page {page}"
                assert evidence in _norm(pages[int(page) - 1]), f"{row['question']!r}: not on {name} page {page}"
            else:
                assert page is None, f"{row['question']!r} cites a page of non-paged {name}"
                assert evidence in _norm(_text(path)), f"{row['question']!r}: evidence not in {name}"


def test_running_header_and_footer_repeat_on_every_handbook_page_after_the_cover() -> None:
    pages = _pages(DOCS / "employee_handbook.pdf")
    assert len(pages) >= 20
    assert "page 1 of" not in _norm(pages[0])
    for number, text in enumerate(pages[1:], start=2):
        assert "larkspur mobility ltd | employee handbook | version 4.2" in _norm(text), number
        assert f"page {number} of {len(pages)}" in _norm(text), number
