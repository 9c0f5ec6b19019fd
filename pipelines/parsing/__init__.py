"""Parsing: document bytes -> ``ParsedDocument`` (ordered title/text/list/table elements with pages).

``parse_document`` picks a parser from the file extension (or, failing that, the content type):
PDF -> :class:`~pipelines.parsing.pdf.PdfParser` (pypdf), TXT -> :class:`~pipelines.parsing.text.TextParser`,
HTML/DOCX/PPTX/MD/EML -> :class:`~pipelines.parsing.unstructured_parser.UnstructuredParser`
(``unstructured``, offline). Every failure is a typed ``ParseError`` naming the document; unexpected
library exceptions are wrapped into ``CorruptDocumentError``. Importing this package imports neither
``unstructured`` nor spaCy; they load on the first non-PDF, non-TXT parse.
"""

from __future__ import annotations

import logging
import mimetypes
from functools import lru_cache
from importlib import metadata
from pathlib import PurePath

from pipelines.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    ParseError,
    UnsupportedFormatError,
)
from pipelines.ports import Parser
from pipelines.records import ParsedDocument

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 50 * 1024 * 1024

_EXTENSION_FORMATS: dict[str, str] = {
    ".pdf": "pdf",
    ".txt": "txt",
    ".text": "txt",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".docx": "docx",
    ".pptx": "pptx",
    ".md": "md",
    ".markdown": "md",
    ".eml": "eml",
}
_CONTENT_TYPE_FORMATS: dict[str, str] = {
    "application/pdf": "pdf",
    "text/plain": "txt",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "text/markdown": "md",
    "text/x-markdown": "md",
    "message/rfc822": "eml",
}

#: File extensions (lower case, with dot) that ``parse_document`` handles.
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_EXTENSION_FORMATS)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "PARSER_REVISIONS",
    "SUPPORTED_EXTENSIONS",
    "file_format",
    "format_key",
    "get_parser",
    "guess_content_type",
    "is_supported",
    "listed_supported",
    "listed_type",
    "parse_document",
    "parser_version",
    "unsupported_format",
]

#: Revision of ondata's own parser code per format: bump it when a parser's output changes, so the
#: next ingest re-parses the documents of that format (their pipeline fingerprint changes, see
#: ``pipelines.sync``). The library a parser is built on is part of its version too.
PARSER_REVISIONS: dict[str, int] = {"pdf": 2, "txt": 2, "html": 1, "docx": 1, "pptx": 1, "md": 1, "eml": 1}
_PARSER_LIBRARIES: dict[str, tuple[str, str]] = {  # format -> (parser name, distribution it is built on)
    "pdf": ("pypdf", "pypdf"),
    "txt": ("text", ""),
}


@lru_cache(maxsize=None)
def _distribution_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def parser_version(name: str, content_type: str | None = None) -> str:
    """Name and version of the parser ``parse_document`` uses for this file, e.g. ``pdf:pypdf-5.1.0:r1``
    (format, parser, the library's version, ``PARSER_REVISIONS``); ``UnsupportedFormatError`` if none.
    Reads package metadata only: no parser library is imported."""
    fmt = file_format(name, content_type)
    if fmt is None:
        raise unsupported_format(name, content_type)
    return _format_version(fmt)


def _format_version(fmt: str) -> str:
    parser, dist = _PARSER_LIBRARIES.get(fmt, ("unstructured", "unstructured"))
    lib = f"-{_distribution_version(dist)}" if dist else ""
    return f"{fmt}:{parser}{lib}:r{PARSER_REVISIONS.get(fmt, 1)}"


def file_format(name: str, content_type: str | None = None) -> str | None:
    """The format a file is parsed as (``pdf``, ``txt``, ...; by extension, then content type), None if none:
    all that ``parser_version`` and ``is_supported`` depend on."""
    return _format_by(_suffix(name).lower(), content_type)


@lru_cache(maxsize=4096)
def _format_by(suffix: str, content_type: str | None) -> str | None:
    fmt = _EXTENSION_FORMATS.get(suffix)
    if fmt is None and content_type:
        fmt = _CONTENT_TYPE_FORMATS.get(content_type.split(";")[0].strip().lower())
    return fmt


def _suffix(name: str) -> str:
    """``PurePath(name).suffix``, without building a path (it runs once per listed file)."""
    base = name.rsplit("/", 1)[-1]
    i = base.rfind(".")
    return base[i:] if 0 < i < len(base) - 1 else ""


def guess_content_type(name: str) -> str | None:
    """``mimetypes.guess_type(name)[0]`` for a file name, cached by its last two suffixes (all it depends on)."""
    if ":" in name:  # a "scheme:" prefix changes how mimetypes reads the name: not cached
        return mimetypes.guess_type(name)[0]
    return _guess_type("x" + _type_key(name))


def listed_type(name: str) -> tuple[str | None, bool]:
    """``(guess_content_type(name), is_supported(name, <that type>))`` in one lookup cached by the name's
    last two suffixes (all both depend on): what a folder listing asks of every file."""
    if ":" in name:
        content_type = guess_content_type(name)
        return content_type, is_supported(name, content_type)
    return _listed_type("x" + _type_key(name))


def listed_supported(name: str) -> bool:
    """``listed_type(name)[1]``, answered from the last suffix alone when that picks a parser (the usual
    case: no content type is guessed, nothing else is looked at)."""
    return _parser_suffix(name) is not None or listed_type(name)[1]


def _parser_suffix(name: str) -> str | None:
    """The last suffix of the file name ``name`` (after its last ``/``) when that suffix alone picks a parser
    (a listing asks it of every file: one ``rfind`` and a lookup cached by the suffix)."""
    i = name.rfind(".")
    suffix = name[i:]
    if i > 0 and name[i - 1] != "/" and _picks_parser(suffix):  # not a hidden name's leading dot
        return suffix
    return None


@lru_cache(maxsize=4096)
def _picks_parser(suffix: str) -> bool:
    """Whether ``suffix`` (from the last ``.`` of a name on) is a whole suffix that picks a parser."""
    return len(suffix) > 1 and "/" not in suffix and _EXTENSION_FORMATS.get(suffix.lower()) is not None


@lru_cache(maxsize=4096)
def _listed_type(name: str) -> tuple[str | None, bool]:
    content_type = _guess_type(name)
    return content_type, is_supported(name, content_type)


def format_key(name: str) -> str | None:
    """A key that decides ``file_format(name, guess_content_type(name))`` and so ``parser_version`` of a
    listed file (a cache key per file format): its last suffix when that picks a parser, else its last
    two suffixes (which the content type is guessed from); None for a ``scheme:`` name."""
    suffix = _parser_suffix(name)
    if suffix is not None:
        return suffix
    return None if ":" in name else _type_key(name)


def _type_key(name: str) -> str:
    """The last two suffixes of a file name (``.tar.gz``, ``.txt``; ``""`` for none)."""
    base = name.rsplit("/", 1)[-1]
    i = base.rfind(".")
    j = base.rfind(".", 0, i) if i > 0 else -1
    return base[j:] if j > 0 else base[i:] if i > 0 else ""


@lru_cache(maxsize=4096)
def _guess_type(key: str) -> str | None:
    return mimetypes.guess_type(key)[0]


def is_supported(name: str, content_type: str | None = None) -> bool:
    """Whether ``parse_document`` has a parser for this file name (or content type)."""
    return file_format(name, content_type) is not None


def get_parser(name: str, content_type: str | None = None) -> Parser:
    """The parser for a file name (extension first, then content type); ``UnsupportedFormatError`` if none."""
    fmt = file_format(name, content_type)
    if fmt == "pdf":
        from pipelines.parsing.pdf import PdfParser

        return PdfParser()
    if fmt == "txt":
        from pipelines.parsing.text import TextParser

        return TextParser()
    if fmt is not None:
        from pipelines.parsing.unstructured_parser import UnstructuredParser

        return UnstructuredParser(fmt)
    raise unsupported_format(name, content_type)


def unsupported_format(name: str, content_type: str | None = None, *, doc_id: str | None = None) -> UnsupportedFormatError:
    """The error for a file no parser handles (sources list such files as ``skipped`` with it)."""
    suffix = PurePath(name).suffix or "(no extension)"
    return UnsupportedFormatError(
        f"The file '{name}' has an unsupported type {suffix}"
        + (f" ({content_type})" if content_type else "")
        + f"; supported are {', '.join(sorted(SUPPORTED_EXTENSIONS))}.",
        doc_id=doc_id or name,
    )


def parse_document(
    data: bytes,
    *,
    source_id: str,
    name: str,
    content_type: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ParsedDocument:
    """Parse one document; raises a ``ParseError`` subclass naming it (``doc_id=source_id``)."""
    try:
        parser = get_parser(name, content_type)
    except UnsupportedFormatError as exc:
        raise UnsupportedFormatError(exc.message, doc_id=source_id) from None
    if len(data) > max_bytes:
        raise DocumentTooLargeError(
            f"The file '{name}' is {len(data) / 1048576:.1f} MiB, over the limit of {max_bytes / 1048576:.1f} MiB.",
            doc_id=source_id,
        )
    if not data or not data.strip():
        raise EmptyDocumentError(f"The file '{name}' is empty.", doc_id=source_id)
    try:
        return parser.parse(data, source_id=source_id, name=name, content_type=content_type)
    except ParseError:
        raise
    except Exception as exc:  # never leak a raw library exception
        logger.debug("parser %s failed on %s", type(parser).__name__, source_id, exc_info=True)
        raise CorruptDocumentError(
            f"The file '{name}' could not be parsed ({type(exc).__name__}); it may be damaged.",
            doc_id=source_id,
        ) from exc
