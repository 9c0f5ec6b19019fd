#!/usr/bin/env python3
"""Generate the Larkspur Mobility sample corpus and its QA set, byte-for-byte reproducibly.

Renders the documents described in ``content_*.py`` (PDF with reportlab, DOCX with python-docx,
PPTX with python-pptx, plus HTML, Markdown, plain text and an e-mail) into ``--out`` (default
``data/samples/docs``), writes ``<file>.meta.json`` sidecars next to the documents that carry a
title/url/ACL groups, and writes the QA set from ``qa_spec.py`` to ``--qa`` (default
``data/samples/qa.jsonl`` when ``--out`` is the default, otherwise only when given).

Every non-deterministic input is pinned: reportlab runs with ``invariant=1``; Office core
properties (author, dates, revision) are fixed; Office zip containers are rewritten with sorted
members, a fixed timestamp (2024-01-01) and fixed compression. The same library versions therefore
produce identical bytes on every run.

The page (PDF) or slide (PPTX) of every QA citation is not typed by hand: it is found by extracting
each page's text with pypdf (slides with python-pptx) and locating the row's ``evidence`` phrase,
which must occur on exactly one page of the cited file; generation fails otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.message
import email.policy
import html
import io
import json
import logging
import re
import sys
import textwrap
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import content_handbook as handbook  # noqa: E402
import content_other as other  # noqa: E402
import content_price_list as prices  # noqa: E402
import qa_spec  # noqa: E402

log = logging.getLogger("ondata.samples.generate")

ORG = "Larkspur Mobility Ltd"
AUTHOR = "Larkspur Mobility"
FIXED_DATETIME = dt.datetime(2024, 1, 1, 0, 0, 0)
ZIP_DATE_TIME = (2024, 1, 1, 0, 0, 0)

DEFAULT_OUT = HERE / "docs"
DEFAULT_QA = HERE / "qa.jsonl"


class SampleGenerationError(Exception):
    """The corpus could not be generated consistently (e.g. a QA evidence phrase is not on one page)."""


# --------------------------------------------------------------------------- helpers


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))


def _write_json(path: Path, obj: dict) -> None:
    _write_text(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def _normalise_zip(data: bytes) -> bytes:
    """Rewrite an OOXML zip with sorted members, fixed timestamps and fixed compression."""
    src = zipfile.ZipFile(io.BytesIO(data))
    names = sorted(src.namelist(), key=lambda n: (n != "[Content_Types].xml", n))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in names:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            dst.writestr(info, src.read(name), compresslevel=9)
    return out.getvalue()


def _set_core_properties(props, *, title: str) -> None:
    props.title = title
    props.author = AUTHOR
    props.last_modified_by = AUTHOR
    props.created = FIXED_DATETIME
    props.modified = FIXED_DATETIME
    props.last_printed = FIXED_DATETIME
    props.revision = 1
    props.subject = ""
    props.keywords = ""
    props.comments = ""
    props.category = ""


def _soft_hyphens(text: str) -> str:
    return text.replace("~", "\u00ad")


def _plain(text: str) -> str:
    return text.replace("~", "")


# --------------------------------------------------------------------------- PDF rendering


def _pdf_styles():
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet

    base = getSampleStyleSheet()
    body = ParagraphStyle("Body", parent=base["BodyText"], fontName="Helvetica", fontSize=11,
                          leading=16, spaceAfter=7, embeddedHyphenation=1, uriWasteReduce=0.3)
    return {
        "body": body,
        "h1": ParagraphStyle("H1", parent=base["Heading1"], fontName="Helvetica-Bold", fontSize=17,
                             leading=21, spaceAfter=10),
        "h2": ParagraphStyle("H2", parent=base["Heading2"], fontName="Helvetica-Bold", fontSize=12.5,
                             leading=16, spaceBefore=8, spaceAfter=5),
        "cell": ParagraphStyle("Cell", parent=body, fontSize=9.5, leading=12, spaceAfter=0),
        "cellhead": ParagraphStyle("CellHead", parent=body, fontName="Helvetica-Bold", fontSize=9.5,
                                   leading=12, spaceAfter=0),
        "bullet": ParagraphStyle("Bullet", parent=body, leftIndent=16, bulletIndent=4, spaceAfter=4),
        "cover": ParagraphStyle("Cover", parent=base["Title"], fontName="Helvetica-Bold", fontSize=28,
                                leading=34, spaceAfter=18),
        "coversub": ParagraphStyle("CoverSub", parent=body, fontSize=14, leading=20),
        "toc": ParagraphStyle("Toc", parent=body, fontSize=11, leading=17, spaceAfter=0),
    }


def _pdf_table(rows, styles, *, col_widths=None, repeat_header=True):
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph, Table, TableStyle

    data = [[Paragraph(escape(str(c)), styles["cellhead"] if i == 0 else styles["cell"]) for c in row]
            for i, row in enumerate(rows)]
    table = Table(data, colWidths=col_widths, repeatRows=1 if repeat_header else 0, hAlign="LEFT")
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#9aa5b1")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde7f0")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ]))
    return table


def _column_widths(rows, style, width: float) -> list[float]:
    """Column widths that never split a word: each column gets its longest word, the rest is shared
    in proportion to the column's longest cell."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    def w(text: str) -> float:
        return stringWidth(text, "Helvetica-Bold", style.fontSize) + 12

    ncols = len(rows[0])
    minimum = [max(w(word) for row in rows for word in row[c].split()) for c in range(ncols)]
    longest = [max(w(row[c]) for row in rows) for c in range(ncols)]
    spare = width - sum(minimum)
    if spare < 0:
        raise SampleGenerationError("A handbook table has words too long to fit the page width.")
    extra = [max(0.0, longest[c] - minimum[c]) for c in range(ncols)]
    total = sum(extra) or 1.0
    return [minimum[c] + spare * extra[c] / total for c in range(ncols)]


def _blocks_to_flowables(blocks, styles, *, width):
    from reportlab.platypus import Paragraph, Spacer

    flow = []
    for kind, value in blocks:
        if kind == "p":
            flow.append(Paragraph(escape(_soft_hyphens(value)), styles["body"]))
        elif kind == "h":
            flow.append(Paragraph(escape(value), styles["h2"]))
        elif kind == "bullets":
            for item in value:
                flow.append(Paragraph(escape(_soft_hyphens(item)), styles["bullet"], bulletText="\u2022"))
            flow.append(Spacer(1, 4))
        elif kind == "table":
            flow.append(_pdf_table(value, styles, col_widths=_column_widths(value, styles["cell"], width)))
            flow.append(Spacer(1, 10))
        else:  # pragma: no cover - content error
            raise SampleGenerationError(f"Unknown block kind {kind!r} in the handbook content.")
    return flow


def _numbered_canvas_class(*, header: str, footer: str, skip_first: bool, margin: float):
    """A reportlab canvas that draws a running header and a 'Page N of M' footer on every page."""
    from reportlab.pdfgen.canvas import Canvas

    class NumberedCanvas(Canvas):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._saved_pages = []

        def showPage(self):  # noqa: N802 - reportlab API
            self._saved_pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._saved_pages)
            for state in self._saved_pages:
                self.__dict__.update(state)
                if not (skip_first and self._pageNumber == 1):
                    self._decorate(total)
                super().showPage()
            super().save()

        def _decorate(self, total: int) -> None:
            width, height = self._pagesize
            self.saveState()
            self.setFont("Helvetica", 7.5)
            self.setFillGray(0.35)
            self.drawString(margin, height - margin + 22, header)
            self.line(margin, height - margin + 18, width - margin, height - margin + 18)
            self.drawString(margin, margin - 26, footer)
            self.drawRightString(width - margin, margin - 26, f"Page {self._pageNumber} of {total}")
            self.restoreState()

    return NumberedCanvas


def _build_pdf(path: Path, story, *, title: str, header: str, footer: str, skip_first: bool,
               pagesize=None, margin: float = 56) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.platypus import SimpleDocTemplate

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=pagesize or A4, invariant=1, title=title, author=AUTHOR, subject="",
                            creator="ondata sample generator", leftMargin=margin, rightMargin=margin,
                            topMargin=margin + 6, bottomMargin=margin)
    doc.build(story, canvasmaker=_numbered_canvas_class(header=header, footer=footer,
                                                        skip_first=skip_first, margin=margin))
    _write_bytes(path, buf.getvalue())


def render_handbook(path: Path) -> None:
    """A5 booklet: cover, contents, numbered sections; parts start on a new page."""
    from reportlab.lib.pagesizes import A5
    from reportlab.platypus import CondPageBreak, PageBreak, Paragraph, Spacer

    styles = _pdf_styles()
    margin = 44
    width = A5[0] - 2 * margin
    story = [
        Spacer(1, 90),
        Paragraph(escape(ORG), styles["coversub"]),
        Paragraph(escape(handbook.TITLE), styles["cover"]),
        Paragraph(escape(f"{handbook.VERSION} - {handbook.EFFECTIVE}"), styles["coversub"]),
        Spacer(1, 30),
        Paragraph("Owned by the People team. Please read it in full during your first month and keep "
                  "it to hand; the latest version is always on the intranet.", styles["body"]),
        PageBreak(),
        Paragraph("Contents", styles["h1"]),
    ]
    story += [Paragraph(escape(s["title"]), styles["toc"]) for s in handbook.SECTIONS]
    for section in handbook.SECTIONS:
        # Parts of the handbook start on a new page; other sections follow on, so many run over a page.
        story.append(PageBreak() if section.get("new_page") else CondPageBreak(A5[1] * 0.3))
        story.append(Paragraph(escape(section["title"]), styles["h1"]))
        story += _blocks_to_flowables(section["blocks"], styles, width=width)
    _build_pdf(path, story, title=f"{ORG} - {handbook.TITLE}", header=handbook.HEADER,
               footer=handbook.FOOTER, skip_first=True, pagesize=A5, margin=margin)


def _price_rows():
    rows = [["SKU", "Part", "Model", "Price (£)", "Lead time"]]
    for code, description, per_model in prices.PARTS:
        for model_code, model_name in prices.MODELS:
            entry = per_model.get(model_code)
            if entry is None:
                continue
            price, lead = entry
            rows.append([f"LM-{model_code}-{code}", description, model_name, f"{price:,.2f}",
                         f"{lead} day" if lead == 1 else f"{lead} days"])
    return rows


def render_price_list(path: Path) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.platypus import Paragraph, Spacer

    styles = _pdf_styles()
    width = A4[0] - 112
    story = [Paragraph(escape(f"Larkspur Mobility - {prices.TITLE}"), styles["h1"])]
    story += [Paragraph(escape(p), styles["body"]) for p in prices.INTRO]
    story.append(Paragraph("Parts", styles["h2"]))
    story.append(_pdf_table(_price_rows(), styles,
                            col_widths=[0.15 * width, 0.38 * width, 0.2 * width, 0.12 * width, 0.15 * width]))
    story.append(Spacer(1, 10))
    story.append(Paragraph("Services and labour", styles["h2"]))
    service_rows = [["SKU", "Service", "Price (£)", "Unit"]]
    service_rows += [[f"LM-SV-{c}", d, f"{p:,.2f}", u] for c, d, p, u in prices.SERVICES]
    story.append(_pdf_table(service_rows, styles,
                            col_widths=[0.15 * width, 0.45 * width, 0.12 * width, 0.28 * width]))
    story.append(Paragraph("Terms and notes", styles["h2"]))
    story += [Paragraph(escape(p), styles["bullet"], bulletText="\u2022") for p in prices.NOTES]
    _build_pdf(path, story, title=f"{ORG} - {prices.TITLE}", header=f"{ORG}  |  {prices.TITLE}",
               footer="Prices exclude VAT. Valid 1 January to 31 December 2024.", skip_first=False)


def render_budget(path: Path) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.platypus import Paragraph, Spacer

    styles = _pdf_styles()
    width = A4[0] - 112
    story = [Paragraph(escape(f"Larkspur Mobility - {other.BUDGET_TITLE}"), styles["h1"])]
    story += [Paragraph(escape(p), styles["body"]) for p in other.BUDGET_PARAGRAPHS]
    story.append(Spacer(1, 6))
    story.append(_pdf_table(other.BUDGET_TABLE, styles, col_widths=[0.5 * width, 0.25 * width, 0.25 * width]))
    _build_pdf(path, story, title=f"{ORG} - {other.BUDGET_TITLE}",
               header=f"{ORG}  |  RESTRICTED - Finance and leadership only",
               footer="Board draft - figures may change", skip_first=False)


# --------------------------------------------------------------------------- Office rendering


def render_expense_policy(path: Path) -> None:
    import docx

    document = docx.Document()
    for kind, value in other.EXPENSE_BLOCKS:
        if kind == "h1":
            document.add_heading(value, level=1)
        elif kind == "h2":
            document.add_heading(value, level=2)
        elif kind == "p":
            document.add_paragraph(value)
        elif kind == "table":
            table = document.add_table(rows=len(value), cols=len(value[0]))
            table.style = "Table Grid"
            for r, row in enumerate(value):
                for c, cell_text in enumerate(row):
                    cell = table.cell(r, c)
                    cell.text = cell_text
                    if r == 0:
                        for run in cell.paragraphs[0].runs:
                            run.bold = True
        else:  # pragma: no cover - content error
            raise SampleGenerationError(f"Unknown block kind {kind!r} in the expense policy content.")
    _set_core_properties(document.core_properties, title=other.EXPENSE_TITLE)
    buf = io.BytesIO()
    document.save(buf)
    _write_bytes(path, _normalise_zip(buf.getvalue()))


def render_ops_review(path: Path) -> None:
    import pptx

    prs = pptx.Presentation()
    for spec in other.OPS_REVIEW_SLIDES:
        if "subtitle" in spec:
            slide = prs.slides.add_slide(prs.slide_layouts[0])
            slide.shapes.title.text = spec["title"]
            slide.placeholders[1].text = spec["subtitle"]
            continue
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = spec["title"]
        frame = slide.placeholders[1].text_frame
        for i, bullet in enumerate(spec["bullets"]):
            para = frame.paragraphs[0] if i == 0 else frame.add_paragraph()
            para.text = bullet
    _set_core_properties(prs.core_properties, title=other.OPS_REVIEW_TITLE)
    buf = io.BytesIO()
    prs.save(buf)
    _write_bytes(path, _normalise_zip(buf.getvalue()))


# --------------------------------------------------------------------------- text formats


def render_help_centre(path: Path) -> None:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en-GB">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{esc(other.HELP_TITLE)}</title>",
        "<style>body{font-family:sans-serif;max-width:52em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 8px}</style>",
        "</head>",
        "<body>",
        '<nav><a href="/">Larkspur home</a> | <a href="/help">Help centre</a> | <a href="/app">Get the app</a></nav>',
        "<main>",
        f"<h1>{esc(other.HELP_TITLE)}</h1>",
        "<p>Answers to the questions riders ask us most often. Can't find what you need? Chat with us in "
        "the app, any time.</p>",
    ]
    for heading, blocks in other.HELP_SECTIONS:
        parts.append(f"<h2>{esc(heading)}</h2>")
        for kind, value in blocks:
            if kind == "p":
                parts.append(f"<p>{esc(value)}</p>")
            elif kind == "table":
                parts.append("<table>")
                parts.append("<thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in value[0]) + "</tr></thead>")
                parts.append("<tbody>")
                for row in value[1:]:
                    parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
                parts.append("</tbody></table>")
    parts += [
        "</main>",
        "<footer><p>&copy; 2024 Larkspur Mobility Ltd, 48 Quarry Lane, Tarrow. Rider line 0330 160 4477.</p></footer>",
        "</body>",
        "</html>",
    ]
    _write_text(path, "\n".join(parts) + "\n")


def _reflow(text: str, *, width: int = 72) -> str:
    """Re-wrap long source lines to ``width`` so the mail body stays 7-bit plain text.

    A source line shorter than 60 characters ends a logical line (headings, signatures, last lines of
    paragraphs); a line starting with '- ' starts a new list item.
    """
    blocks = []
    for block in text.strip("\n").split("\n\n"):
        items, current = [], []
        for line in block.splitlines():
            if line.startswith("- ") and current:
                items.append(current)
                current = []
            current.append(line.strip())
            if len(line) < 60:
                items.append(current)
                current = []
        if current:
            items.append(current)
        wrapped = []
        for item in items:
            joined = " ".join(item)
            indent = "  " if joined.startswith("- ") else ""
            wrapped.append(textwrap.fill(joined, width=width, subsequent_indent=indent,
                                         break_long_words=False, break_on_hyphens=False))
        blocks.append("\n".join(wrapped))
    return "\n\n".join(blocks) + "\n"


def render_eml(path: Path) -> None:
    msg = email.message.EmailMessage(policy=email.policy.default)
    for name, value in other.EML_HEADERS:
        msg[name] = value
    msg.set_content(_reflow(other.EML_BODY))
    _write_bytes(path, msg.as_bytes())


# --------------------------------------------------------------------------- corpus

DOCUMENTS = {
    "employee_handbook.pdf": render_handbook,
    "fleet_parts_price_list_2024.pdf": render_price_list,
    "fy2025_budget_summary.pdf": render_budget,
    "travel_and_expense_policy.docx": render_expense_policy,
    "q3_2024_operations_review.pptx": render_ops_review,
    "rider_help_centre.html": render_help_centre,
    "it_security_guidelines.md": lambda p: _write_text(p, other.IT_SECURITY_MD),
    "incident_report_INC-2024-0712.txt": lambda p: _write_text(p, other.INCIDENT_TXT),
    "eastfield_depot_announcement.eml": render_eml,
    "customer_care_restructuring_2025.md": lambda p: _write_text(p, other.REORG_MD),
}

SIDECARS = {
    "employee_handbook.pdf": other.HANDBOOK_META,
    "fy2025_budget_summary.pdf": other.BUDGET_META,
    "customer_care_restructuring_2025.md": other.REORG_META,
}


def generate_documents(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, render in DOCUMENTS.items():
        render(out / name)
        written.append(out / name)
        log.info("wrote %s", out / name)
    for name, meta in SIDECARS.items():
        _write_json(out / f"{name}.meta.json", meta)
        written.append(out / f"{name}.meta.json")
    return written


# --------------------------------------------------------------------------- QA set


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _pages_of(path: Path) -> list[str]:
    """Text per page (PDF) or per slide (PPTX), 1-based order."""
    if path.suffix == ".pdf":
        from pypdf import PdfReader

        return [page.extract_text() or "" for page in PdfReader(path).pages]
    if path.suffix == ".pptx":
        import pptx

        slides = []
        for slide in pptx.Presentation(path).slides:
            texts = [shape.text_frame.text for shape in slide.shapes if shape.has_text_frame]
            slides.append("\n".join(texts))
        return slides
    raise SampleGenerationError(f"{path.name} has no pages.")


def build_qa(docs: Path) -> list[dict]:
    rows = []
    page_cache: dict[str, list[str]] = {}
    for spec in qa_spec.QA:
        row = {"question": spec["question"]}
        if not spec.get("file"):
            row.update(truth=spec["truth"], answerable=False, evidence="", citations=[])
            rows.append(row)
            continue
        name, evidence = spec["file"], spec["evidence"]
        path = docs / name
        if name.endswith((".pdf", ".pptx")):
            pages = page_cache.setdefault(name, _pages_of(path))
            hits = [i + 1 for i, text in enumerate(pages) if _norm(evidence) in _norm(text)]
            if len(hits) != 1:
                raise SampleGenerationError(
                    f"Evidence {evidence!r} for question {spec['question']!r} occurs on pages {hits} of "
                    f"{name}, but must occur on exactly one page.")
            cite = f"{name}#page={hits[0]}"
        else:
            cite = name
        row.update(truth=spec["truth"].replace("{cite}", f"[{cite}]"), answerable=True, evidence=evidence,
                   citations=[cite])
        if spec.get("groups"):
            row["groups"] = list(spec["groups"])
        rows.append(row)
    return rows


def write_qa(path: Path, rows: list[dict]) -> None:
    _write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for the documents")
    parser.add_argument("--qa", type=Path, default=None,
                        help="where to write qa.jsonl (default: data/samples/qa.jsonl when --out is the default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    qa_path = args.qa if args.qa is not None else (DEFAULT_QA if args.out.resolve() == DEFAULT_OUT else None)
    generate_documents(args.out)
    if qa_path is not None:
        write_qa(qa_path, build_qa(args.out))
        log.info("wrote %s", qa_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
