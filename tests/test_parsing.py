"""Tests of pipelines.parsing on files generated here (reportlab, pypdf, python-docx, python-pptx)."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

from pipelines.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    EncryptedDocumentError,
    ParseError,
    UnsupportedFormatError,
)
from pipelines.parsing import SUPPORTED_EXTENSIONS, get_parser, is_supported, parse_document
from pipelines.ports import Parser

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any outbound connection fails the test loudly."""

    def refuse(self: socket.socket, address: object) -> None:
        raise AssertionError(f"network access attempted: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def _handbook_pdf() -> bytes:
    """Four pages with a running header/footer, a numbered bold heading, hyphenated breaks, a ligature, a table."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    body_font = "Helvetica"
    if os.path.exists(DEJAVU):
        pdfmetrics.registerFont(TTFont("DejaVu", DEJAVU))
        body_font = "DejaVu"
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter)
    c.setTitle("")
    _, height = letter
    pages = 4

    def chrome(n: int) -> None:
        c.setFont("Helvetica", 9)
        c.drawString(72, height - 40, "ACME Corp Employee Guide - Confidential")
        c.drawString(72, 30, f"Page {n} of {pages}")

    def lines(y: float, texts: list[str], font: str = body_font, size: float = 11) -> float:
        c.setFont(font, size)
        for t in texts:
            c.drawString(72, y, t)
            y -= size * 1.35
        return y - size  # paragraph gap

    # page 1
    chrome(1)
    y = lines(height - 100, ["1 Introduction"], "Helvetica-Bold", 16)
    y = lines(y, [
        "This guide explains the rules that apply to every employee of the company.",
        "Each rule follows the national regu-",
        "lation on working time and is reviewed every year by the board.",
    ])
    y = lines(y, [
        "The final ﬁnal policy text is a well-",
        "known reference for managers and staff alike in all offices.",
    ])
    c.showPage()
    # page 2
    chrome(2)
    y = lines(height - 100, ["2.1 Leave Policy"], "Helvetica-Bold", 13)
    y = lines(y, [
        "Employees receive twenty days of paid leave per calendar year and may carry",
        "over up to five unused days into the following year.",
    ])
    c.setFont(body_font, 11)
    for row in (["Plan", "Deductible", "Copay"], ["Standard", "$2,000", "$30"], ["Plus", "$1,500", "$20"]):
        for x, cell in zip((72, 200, 330), row):
            c.drawString(x, y, cell)
        y -= 16
    c.showPage()
    # page 3
    chrome(3)
    y = lines(height - 100, ["2.2 Sick Leave"], "Helvetica-Bold", 13)
    y = lines(y, ["Sick leave is paid from the first day of illness when a doctor's note is provided."])
    c.showPage()
    # page 4
    chrome(4)
    y = lines(height - 100, ["Closing Remarks"])
    y = lines(y, ["Questions about this guide go to the human resources team by e-mail."])
    c.showPage()
    c.save()
    return buf.getvalue()


@pytest.fixture(scope="module")
def handbook_pdf() -> bytes:
    return _handbook_pdf()


@pytest.fixture(scope="module")
def handbook(handbook_pdf: bytes):
    return parse_document(handbook_pdf, source_id="docs/handbook.pdf", name="handbook.pdf")


def _blank_pdf() -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.rect(100, 100, 200, 200)  # drawing, no text: like a scan without OCR
    c.showPage()
    c.showPage()
    c.save()
    return buf.getvalue()


def _encrypted(pdf: bytes, *, user_password: str, owner_password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# -- PDF ------------------------------------------------------------------------------------------


def test_pdf_pages_are_one_based_and_complete(handbook) -> None:
    assert handbook.page_count == 4
    assert {e.page for e in handbook.elements} == {1, 2, 3, 4}
    assert [e.page for e in handbook.elements] == sorted(e.page for e in handbook.elements)
    sick = next(e for e in handbook.elements if "Sick leave is paid" in e.text)
    assert sick.page == 3


def test_pdf_running_header_and_footer_are_removed(handbook) -> None:
    text = handbook.text
    assert "ACME Corp Employee Guide" not in text
    assert "Page " not in text and "of 4" not in text


def test_pdf_dehyphenates_line_breaks_but_keeps_real_hyphens(handbook) -> None:
    text = handbook.text
    assert "national regulation on working time" in text
    assert "regu-" not in text and "regu lation" not in text
    assert "well-known reference" in text


def test_pdf_expands_ligatures(handbook) -> None:
    text = handbook.text
    assert "\ufb01" not in text
    assert "The final final policy" in text


def test_pdf_detects_headings_with_levels(handbook) -> None:
    titles = [(e.text, e.level, e.page) for e in handbook.elements if e.kind == "title"]
    assert ("1 Introduction", 1, 1) in titles
    assert ("2.1 Leave Policy", 2, 2) in titles
    assert ("2.2 Sick Leave", 2, 3) in titles
    assert any(t == "Closing Remarks" for t, _, _ in titles)
    # body sentences are never headings
    assert not any(t.endswith(".") for t, _, _ in titles)


def test_pdf_wrapped_lines_form_one_paragraph(handbook) -> None:
    para = next(e for e in handbook.elements if e.text.startswith("Employees receive twenty days"))
    assert para.kind == "text"
    assert para.text.endswith("into the following year.")
    assert "\n" not in para.text


def test_pdf_table_rows_stay_whole(handbook) -> None:
    table = next(e for e in handbook.elements if e.kind == "table")
    assert table.page == 2
    rows = table.text.splitlines()
    assert rows[0] == "| Plan | Deductible | Copay |"
    assert rows[1].startswith("|---")
    assert rows[2:] == ["| Standard | $2,000 | $30 |", "| Plus | $1,500 | $20 |"]


def test_pdf_title_falls_back_to_first_heading(handbook) -> None:
    assert handbook.title == "1 Introduction"


def _cover_pdf(*, cover: bool) -> bytes:
    """A running header on every page but the cover; a cover page or a repeated first heading."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter)
    c.setTitle("")
    _, height = letter
    if cover:
        c.setFont("Helvetica", 36)
        c.drawString(72, height - 200, "Contoso Electronics")
        c.drawString(72, height - 400, "Employee Handbook")
        c.showPage()
    sections = [("Exceptions", "Managers may approve exceptions in writing."),
                ("Leave Policy", "Annual leave is booked through the portal."),
                ("Exceptions", "Leave carried over needs approval by HR."),
                ("Travel Rules", "Trains are preferred for trips under four hours.")]
    for n, (heading, body) in enumerate(sections, start=1):
        c.setFont("Helvetica", 9)
        c.drawString(72, height - 40, "Contoso Electronics Internal")
        c.drawString(72, 30, f"Page {n}")
        c.setFont("Helvetica-Bold", 16)
        c.drawString(72, height - 100, heading)
        c.setFont("Helvetica", 11)
        c.drawString(72, height - 130, body)
        c.drawString(72, height - 150, "Each rule is reviewed every year by the board of the company.")
        c.showPage()
    c.save()
    return buf.getvalue()


def test_pdf_title_is_the_cover_not_the_publisher_line() -> None:
    doc = parse_document(_cover_pdf(cover=True), source_id="h.pdf", name="h.pdf")
    assert doc.title == "Contoso Electronics Employee Handbook"


def test_pdf_title_skips_running_header_and_repeated_headings() -> None:
    doc = parse_document(_cover_pdf(cover=False), source_id="h.pdf", name="h.pdf")
    assert "Internal" not in doc.text  # the running header is dropped, so it cannot be the title
    assert doc.title == "Leave Policy"  # "Exceptions" heads two sections: not the document's title


def test_pdf_with_owner_password_only_opens_with_empty_password(handbook_pdf: bytes) -> None:
    data = _encrypted(handbook_pdf, user_password="", owner_password="owner-secret")
    doc = parse_document(data, source_id="locked-lite.pdf", name="locked-lite.pdf")
    assert "national regulation" in doc.text


def test_pdf_with_user_password_is_encrypted_error(handbook_pdf: bytes) -> None:
    data = _encrypted(handbook_pdf, user_password="s3cret", owner_password="owner-secret")
    with pytest.raises(EncryptedDocumentError) as info:
        parse_document(data, source_id="hr/locked.pdf", name="locked.pdf")
    assert info.value.doc_id == "hr/locked.pdf"
    assert "locked.pdf" in str(info.value) and "password" in str(info.value)


def test_truncated_pdf_is_corrupt(handbook_pdf: bytes) -> None:
    with pytest.raises(CorruptDocumentError) as info:
        parse_document(handbook_pdf[: len(handbook_pdf) // 3], source_id="cut.pdf", name="cut.pdf")
    assert "cut.pdf" in str(info.value)


def test_random_bytes_named_pdf_is_corrupt() -> None:
    garbage = bytes((i * 7919 + 13) % 256 for i in range(4096))
    with pytest.raises(CorruptDocumentError) as info:
        parse_document(garbage, source_id="noise.pdf", name="noise.pdf")
    assert "noise.pdf" in str(info.value) and "not a PDF" in str(info.value)


def test_pdf_header_with_garbage_body_is_corrupt() -> None:
    with pytest.raises(CorruptDocumentError) as info:
        parse_document(b"%PDF-1.7\n" + b"\x00garbage" * 500, source_id="bad.pdf", name="bad.pdf")
    assert "bad.pdf" in str(info.value)


def test_blank_pdf_is_empty() -> None:
    with pytest.raises(EmptyDocumentError) as info:
        parse_document(_blank_pdf(), source_id="scan.pdf", name="scan.pdf")
    assert "scan.pdf" in str(info.value) and "no extractable text" in str(info.value)


# -- dispatch and generic errors ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["setup.exe", "archive.zip", "photo.png", "noextension"])
def test_unsupported_types(name: str) -> None:
    assert not is_supported(name)
    with pytest.raises(UnsupportedFormatError) as info:
        parse_document(b"PK\x03\x04 whatever", source_id=f"x/{name}", name=name)
    assert info.value.doc_id == f"x/{name}"
    assert name in str(info.value)


def test_supported_extensions_and_content_type_fallback() -> None:
    assert {".pdf", ".docx", ".pptx", ".html", ".md", ".txt", ".eml"} <= SUPPORTED_EXTENSIONS
    assert is_supported("Report.PDF")
    assert is_supported("blob-without-extension", "application/pdf")
    assert isinstance(get_parser("a.docx"), Parser)
    assert isinstance(get_parser("a.pdf"), Parser)


def test_oversized_document(handbook_pdf: bytes) -> None:
    with pytest.raises(DocumentTooLargeError) as info:
        parse_document(handbook_pdf, source_id="big.pdf", name="big.pdf", max_bytes=1000)
    assert "big.pdf" in str(info.value)


@pytest.mark.parametrize("name", ["empty.txt", "empty.pdf", "empty.docx", "empty.md"])
def test_empty_file(name: str) -> None:
    with pytest.raises(EmptyDocumentError) as info:
        parse_document(b"", source_id=name, name=name)
    assert name in str(info.value)


def test_unexpected_library_errors_are_wrapped(no_network: None) -> None:
    with pytest.raises(CorruptDocumentError) as info:
        parse_document(b"this is not a zip archive at all", source_id="fake.docx", name="fake.docx")
    assert "fake.docx" in str(info.value)
    assert isinstance(info.value, ParseError)


def test_importing_parsing_does_not_import_unstructured_or_spacy() -> None:
    code = (
        "import sys, pipelines.parsing, pipelines.parsing.pdf, pipelines.parsing.unstructured_parser;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('unstructured','spacy')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# -- TXT ------------------------------------------------------------------------------------------


def test_txt_paragraphs_headings_lists() -> None:
    text = (
        "Travel Policy\n\n"
        "Employees book travel through the portal. Trains are pre-\n"
        "ferred for trips under four hours.\n\n"
        "3.1 Expenses\n\n"
        "- Keep every receipt.\n- Submit within 30 days.\n"
    )
    doc = parse_document(text.encode(), source_id="travel.txt", name="travel.txt")
    kinds = [(e.kind, e.text) for e in doc.elements]
    assert kinds[0] == ("title", "Travel Policy")
    assert kinds[1] == ("text", "Employees book travel through the portal. Trains are preferred for trips under four hours.")
    assert ("title", "3.1 Expenses") in kinds
    assert [t for k, t in kinds if k == "list"] == ["- Keep every receipt.", "- Submit within 30 days."]
    assert next(e.level for e in doc.elements if e.text == "3.1 Expenses") == 2
    assert doc.title == "Travel Policy"


# -- unstructured formats -------------------------------------------------------------------------


def test_docx_heading_paragraph_table(no_network: None) -> None:
    import docx

    d = docx.Document()
    d.add_heading("Benefits Overview", level=1)
    d.add_paragraph("Every employee can choose between two health plans each year.")
    d.add_heading("Plan Costs", level=2)
    table = d.add_table(rows=3, cols=3)
    for r, row in enumerate([["Plan", "Deductible", "Copay"], ["Standard", "$2,000", "$30"], ["Plus", "$1,500", "$20"]]):
        for col, value in enumerate(row):
            table.cell(r, col).text = value
    d.add_paragraph("Ask HR for details.", style="List Bullet")
    buf = io.BytesIO()
    d.save(buf)

    doc = parse_document(buf.getvalue(), source_id="hr/benefits.docx", name="benefits.docx")
    by_kind = [(e.kind, e.text) for e in doc.elements]
    assert by_kind[0] == ("title", "Benefits Overview")
    assert ("text", "Every employee can choose between two health plans each year.") in by_kind
    titles = {e.text: e.level for e in doc.elements if e.kind == "title"}
    assert titles["Benefits Overview"] < titles["Plan Costs"]
    table = next(e for e in doc.elements if e.kind == "table")
    assert table.text.splitlines()[0] == "| Plan | Deductible | Copay |"
    assert table.text.splitlines()[2] == "| Standard | $2,000 | $30 |"
    assert ("list", "Ask HR for details.") in by_kind
    assert doc.title == "Benefits Overview"


def test_pptx_pages_are_slide_numbers(no_network: None) -> None:
    from pptx import Presentation

    deck = Presentation()
    for i in range(1, 4):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Quarter {i} Results"
        slide.placeholders[1].text = f"Revenue grew by {i * 5} percent in quarter {i}."
    buf = io.BytesIO()
    deck.save(buf)

    doc = parse_document(buf.getvalue(), source_id="deck.pptx", name="deck.pptx")
    assert doc.page_count == 3
    for i in range(1, 4):
        title = next(e for e in doc.elements if e.text == f"Quarter {i} Results")
        assert (title.kind, title.page) == ("title", i)
        body = next(e for e in doc.elements if f"quarter {i}." in e.text)
        assert body.page == i


def test_html_table_and_headings(no_network: None) -> None:
    html = (
        "<html><body><h1>Perks Program</h1><p>The program reimburses fitness costs up to a yearly limit.</p>"
        "<h2>Limits</h2><table><thead><tr><th>Item</th><th>Limit</th></tr></thead>"
        "<tbody><tr><td>Gym | pool</td><td>$1,000</td></tr><tr><td>Classes</td><td>$500</td></tr></tbody></table>"
        "<ul><li>Submit receipts monthly</li></ul></body></html>"
    )
    doc = parse_document(html.encode(), source_id="perks.html", name="perks.html")
    titles = [(e.text, e.level) for e in doc.elements if e.kind == "title"]
    assert titles == [("Perks Program", 1), ("Limits", 2)]
    table = next(e for e in doc.elements if e.kind == "table")
    assert table.text.splitlines() == [
        "| Item | Limit |",
        "|---|---|",
        "| Gym \\| pool | $1,000 |",
        "| Classes | $500 |",
    ]
    assert any(e.kind == "list" and e.text == "Submit receipts monthly" for e in doc.elements)


def test_markdown_table_is_a_table_element(no_network: None) -> None:
    md = (
        "# Handbook\n\nThe handbook describes the leave policy for all staff members.\n\n"
        "## Leave days\n\n| Years | Days |\n|---|---|\n| 0-5 | 20 |\n| 5+ | 25 |\n\n- first item\n- second item\n"
    )
    doc = parse_document(md.encode(), source_id="hb.md", name="hb.md")
    assert [(e.kind, e.text) for e in doc.elements if e.kind == "title"] == [("title", "Handbook"), ("title", "Leave days")]
    table = next(e for e in doc.elements if e.kind == "table")
    assert table.text.splitlines() == ["| Years | Days |", "|---|---|", "| 0-5 | 20 |", "| 5+ | 25 |"]
    assert [e.text for e in doc.elements if e.kind == "list"] == ["first item", "second item"]


def test_eml_subject_and_body(no_network: None) -> None:
    eml = (
        b"From: alice@example.com\nTo: hr@example.com\nSubject: Parental leave question\n"
        b"Content-Type: text/plain; charset=utf-8\n\n"
        b"Hello HR,\n\nHow many weeks of parental leave do new parents get?\n\nThanks, Alice\n"
    )
    doc = parse_document(eml, source_id="mail/q.eml", name="q.eml")
    assert doc.elements[0].kind == "title" and doc.elements[0].text == "Parental leave question"
    assert "How many weeks of parental leave do new parents get?" in doc.text


@given(st.text(alphabet="ab.:/xtpdfmlTXPDF", max_size=12))
def test_listed_type_is_the_content_type_and_support_of_the_name(name):
    from pipelines.parsing import guess_content_type, is_supported, listed_type

    content_type = guess_content_type(name)
    assert listed_type(name) == (content_type, is_supported(name, content_type))


def _numbered_list_pdf() -> bytes:
    """Bold section headings around a numbered list whose second item wraps (the Northwind benefits PDFs)."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter)
    _, height = letter

    def page(heading: str, lines: list[str]) -> None:
        c.setFont("Helvetica-Bold", 16)
        c.drawString(72, height - 100, heading)
        c.setFont("Helvetica", 11)
        y = height - 130
        for line in lines:
            c.drawString(72, y, line)
            y -= 14
        c.showPage()

    page("Conformity With The Law", [
        "The plan complies with the applicable state and federal laws and regulations.",
        "Tips for Employees:",
        "1. Read your Summary Plan Description carefully to understand the benefits available to you.",
        "2. Familiarize yourself with the applicable laws and regulations, such as ERISA, the",
        "Affordable Care Act (ACA), and the Mental Health Parity and Addiction Equity Act.",
        "3. Be aware of the coverage and limits your plan provides.",
        "4. Be aware of any exclusions or exceptions that may apply to your plan.",
    ])
    page("Entire Contract", [
        "The plan is a contract between you and Northwind Health, read it in full.",
        "Your information may be disclosed for:",
        "- Research",
    ])
    page("Venue", ["Legal actions are brought in the state where the policyholder lives."])
    c.save()
    return buf.getvalue()


def test_pdf_numbered_list_items_and_bullets_are_not_headings() -> None:
    """A wrapped numbered list item ("2. Familiarize yourself …, the") was taken for a level-1 heading,
    and every chunk after it, to the end of the document, carried it as its section."""
    from pipelines.chunking import ChunkingConfig, chunk_document
    from pipelines.records import SourceItem

    doc = parse_document(_numbered_list_pdf(), source_id="plan.pdf", name="plan.pdf")
    assert [e.text for e in doc.elements if e.kind == "title"] == ["Conformity With The Law", "Entire Contract", "Venue"]
    items = [e.text for e in doc.elements if e.kind == "list"]
    assert [t[:3] for t in items[:4]] == ["1. ", "2. ", "3. ", "4. "]
    assert "- Research" in items  # a bulleted line that ends a page is a list item too
    config = ChunkingConfig(chunk_size=40, overlap=0, page_bounded=True)
    chunks = chunk_document(doc, SourceItem(id="plan.pdf", version="v1", name="plan.pdf"), config=config)
    venue = [ch for ch in chunks if "Legal actions" in ch.content]
    assert venue and all(ch.section == "Venue" for ch in venue)
