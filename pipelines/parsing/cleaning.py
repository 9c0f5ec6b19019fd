"""Pure text-cleaning functions for extracted document text.

Everything here is deterministic and free of I/O except :func:`english_words`, which reads a word
list once (lazily, cached) to decide whether a word broken at a line end was hyphenated by the
typesetter (``regu-`` / ``lation`` -> ``regulation``) or carries a real hyphen (``well-known``).

- :func:`normalize_unicode` expands typographic ligatures (``ﬁ`` -> ``fi``) with NFKC applied only to
  the Alphabetic Presentation Forms, turns exotic spaces into plain spaces and drops soft hyphens and
  zero-width characters; the rest of the text is NFC-normalised (NFKC everywhere would also rewrite
  ``²``, ``½`` or ``™``).
- :func:`collapse_whitespace`, :func:`join_lines` (wrapped lines -> one paragraph, de-hyphenated).
- :func:`find_repeated_edge_lines` finds running headers/footers: lines at the top or bottom of most
  pages, compared with digits ignored so "Page 3 of 20" repeats.
- :func:`heading_level_from_numbering`, :func:`is_title_case_heading`, :func:`continues_numbered_list`:
  heading heuristics for formats without structure (a line ending in "the", "and", "of" … runs on
  and is no heading; "2. …" right after "1. …" is a list item).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import AbstractSet, Iterable, Sequence

logger = logging.getLogger(__name__)

# -- unicode ------------------------------------------------------------------------------------

_LIGATURES = re.compile("[\ufb00-\ufb4f]")  # Alphabetic Presentation Forms (ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ ...)
_SPACES = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\t\f\v]")
_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")  # soft hyphen, zero-width chars
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f]")


def normalize_unicode(text: str) -> str:
    """Expand ligatures (NFKC on presentation forms only), unify spaces, drop invisible characters."""
    text = unicodedata.normalize("NFC", text)
    text = _LIGATURES.sub(lambda m: unicodedata.normalize("NFKC", m.group(0)), text)
    text = _INVISIBLE.sub("", text)
    text = _CONTROL.sub("", text)
    return _SPACES.sub(" ", text)


_WS = re.compile(r"\s+")


def collapse_whitespace(text: str) -> str:
    """Every run of whitespace (newlines included) becomes one space; ends are stripped."""
    return _WS.sub(" ", text).strip()


# -- de-hyphenation -------------------------------------------------------------------------------

# First parts of compounds that are hyphenated in normal writing; a line break after them keeps
# the hyphen ("well-\nknown" -> "well-known"), unless the document itself spells the word joined.
COMPOUND_PREFIXES: frozenset[str] = frozenset(
    """
    all anti back co cross counter cost day e end ever ex extra far fast first full good half hard
    high in inter long low multi near never non off on one out over part post pre pro real
    right second self semi short side so state sub super third three time top two under up
    user well wide world x year
    """.split()
)

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?", re.UNICODE)


@functools.lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """A large English word list (the one shipped with ``unstructured``), read once; empty if absent.

    Only the data file is read; the ``unstructured`` package itself is not imported.
    """
    spec = importlib.util.find_spec("unstructured")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    path = Path(next(iter(spec.submodule_search_locations))) / "nlp" / "english-words.txt"
    try:
        return frozenset(w.strip().lower() for w in path.read_text(encoding="utf-8").split("\n") if w.strip())
    except OSError:  # pragma: no cover - data file missing in a slimmed install
        logger.warning("English word list not found at %s; de-hyphenation uses the document vocabulary only", path)
        return frozenset()


def document_vocabulary(texts: Iterable[str]) -> frozenset[str]:
    """Lower-cased words and hyphenated compounds that occur *within* lines of ``texts``."""
    vocab: set[str] = set()
    for text in texts:
        for token in re.findall(r"[^\W_](?:[\w'’-]*[^\W_])?", text):
            token = token.lower()
            vocab.add(token)
    return frozenset(vocab)


def join_hyphenated(left: str, right: str, *, vocabulary: AbstractSet[str] = frozenset()) -> bool:
    """Should ``left-`` at a line end and ``right`` at the next line start be joined without hyphen?

    ``left`` and ``right`` are the word fragments around the break. The hyphen is kept when the
    document spells ``left-right`` elsewhere, when ``left`` is a usual compound prefix ("well",
    "self", "non") followed by a word of its own ("known") and the joined word does not occur in the
    document, or when the joined form is no known word ("pre-" + "ferred" is joined: "ferred" is
    no word, "preferred" is). It is dropped when the document or the English word list knows the joined word.
    """
    if not left or not right or not left[-1].isalpha() or not right[0].isalpha() or not right[0].islower():
        return False
    lo, ro = left.lower(), right.lower()
    joined, hyphenated = lo + ro, f"{lo}-{ro}"
    if hyphenated in vocabulary:
        return False
    if joined in vocabulary:
        return True
    words = english_words()
    if lo in COMPOUND_PREFIXES and (ro in words or not words):
        return False
    return joined in words


_TRAILING_WORD = re.compile(r"([^\W\d_]+)-$")
_LEADING_WORD = re.compile(r"^([^\W\d_]+)")


def join_lines(lines: Sequence[str], *, vocabulary: AbstractSet[str] = frozenset()) -> str:
    """Join wrapped lines into one paragraph, removing typesetter hyphens at line ends."""
    out = ""
    for raw in lines:
        line = collapse_whitespace(raw)
        if not line:
            continue
        if not out:
            out = line
            continue
        m_left = _TRAILING_WORD.search(out)
        if m_left is not None:
            m_right = _LEADING_WORD.match(line)
            if m_right is not None and join_hyphenated(m_left.group(1), m_right.group(1), vocabulary=vocabulary):
                out = out[:-1] + line
            else:
                out = out + line  # real hyphen: "in-" + "network" -> "in-network"
            continue
        out = f"{out} {line}"
    return out


def dehyphenate(text: str, *, vocabulary: AbstractSet[str] | None = None) -> str:
    """Remove typesetter hyphens at line breaks in ``text`` ("regu-\\nlation" -> "regulation").

    Real hyphens ("well-\\nknown") are kept, the line break itself is kept otherwise.
    """
    vocab = document_vocabulary(text.splitlines()) if vocabulary is None else vocabulary

    def repl(m: re.Match[str]) -> str:
        left, right = m.group(1), m.group(2)
        return left + right if join_hyphenated(left, right, vocabulary=vocab) else f"{left}-{right}"

    return re.sub(r"([^\W\d_]+)-[ \t]*\n[ \t]*([^\W\d_]+)", repl, text)


# -- running headers and footers ------------------------------------------------------------------

_DIGITS = re.compile(r"\d+")


def edge_line_key(line: str) -> str:
    """The comparison key of a header/footer candidate: digits ignored, case and spacing folded."""
    return collapse_whitespace(_DIGITS.sub("#", line)).casefold()


def find_repeated_edge_lines(
    pages: Sequence[Sequence[str]],
    *,
    zone: int = 2,
    min_pages: int = 3,
    min_ratio: float = 0.5,
) -> list[set[int]]:
    """Indices (per page) of lines that are running headers or footers.

    A line counts when it is among the first or last ``zone`` non-blank lines of its page and the
    same key (:func:`edge_line_key`) occurs in that zone on more than ``min_ratio`` of the pages
    (and on at least two pages). Documents with fewer than ``min_pages`` pages are left alone.
    """
    n = len(pages)
    result: list[set[int]] = [set() for _ in pages]
    if n < min_pages:
        return result
    edges: list[list[tuple[int, str]]] = []
    counts: Counter[str] = Counter()
    for lines in pages:
        nonblank = [i for i, line in enumerate(lines) if line.strip()]
        picked = sorted(set(nonblank[:zone] + nonblank[-zone:]))
        keyed = [(i, edge_line_key(lines[i])) for i in picked]
        edges.append(keyed)
        counts.update({key for _, key in keyed})
    threshold = max(2, math.floor(n * min_ratio) + 1)
    repeated = {key for key, c in counts.items() if c >= threshold}
    for page_index, keyed in enumerate(edges):
        result[page_index] = {i for i, key in keyed if key in repeated}
    return result


def remove_repeated_edge_lines(pages: Sequence[Sequence[str]], **options: float) -> list[list[str]]:
    """``pages`` without their running headers/footers (see :func:`find_repeated_edge_lines`)."""
    drop = find_repeated_edge_lines(pages, **options)  # type: ignore[arg-type]
    return [[line for i, line in enumerate(lines) if i not in drop[p]] for p, lines in enumerate(pages)]


# -- heading heuristics ---------------------------------------------------------------------------

_NUMBERED = re.compile(r"^(?:(?:section|chapter|part|article)\s+)?(\d{1,2}(?:\.\d{1,2}){0,4})\.?\s+(\S.*)$", re.I)
_SMALL_WORDS = frozenset(
    "a an and as at but by for from in into nor of on or per the to vs via with".split()
)


def _heading_shape(text: str, *, max_words: int) -> bool:
    if not text or len(text) > 120 or text[-1] in ".,;!":
        return False
    words = text.split()
    if words and words[-1].lower() in _SMALL_WORDS:  # "…, such as ERISA, the": a line that runs on
        return False
    return 0 < len(words) <= max_words and any(ch.isalpha() for ch in text)


def heading_level_from_numbering(text: str) -> int | None:
    """Level of a numbered-section heading ("3 Benefits" -> 1, "3.2 Leave policy" -> 2), else None.

    The title after the number must be short, start with a capital letter and not end like a
    sentence; plain numbered list items ("1. Call your doctor.") do not qualify.
    """
    text = collapse_whitespace(text)
    m = _NUMBERED.match(text)
    if m is None:
        return None
    number, title = m.group(1), m.group(2)
    if not title[0].isupper() or not _heading_shape(title, max_words=12):
        return None
    if "." not in number and int(number) > 50:  # "2024 Annual report" is a year, not section 2024
        return None
    return number.count(".") + 1


def continues_numbered_list(previous: str, text: str) -> bool:
    """Whether ``text`` ("2. Familiarize yourself …") is the next item of the list item ``previous`` ("1. Read …").

    A numbered line right after the item before it in the numbering is a list item, not a section
    heading, however short it is: taken for a heading it would become the section of everything
    that follows.
    """
    m = _LIST_NUMBER.match(text)
    if m is None or int(m.group(1)) < 2:
        return False
    p = _LIST_NUMBER.match(previous)
    return p is not None and int(p.group(1)) == int(m.group(1)) - 1


def is_title_case_heading(text: str) -> bool:
    """A short line in Title Case (or ALL CAPS) without final punctuation: a likely heading."""
    text = collapse_whitespace(text)
    if not _heading_shape(text, max_words=10) or text.endswith(("?", ":")):
        return False
    words = [w for w in re.split(r"[\s/]+", text) if any(ch.isalpha() for ch in w)]
    if not words or not words[0][0].isupper():
        return False
    significant = [w for w in words[1:] if w.lower() not in _SMALL_WORDS]
    return all(w[0].isupper() or not w[0].isalpha() for w in significant)


_LIST_NUMBER = re.compile(r"^\s*\(?(\d{1,2})[.)]\s+")
_BULLET = re.compile(r"^\s*(?:[•·▪◦‣●○■□➢►\-–—*]|\(?\d{1,2}[.)]|\(?[a-z][.)])\s+")


def is_list_item(text: str) -> bool:
    """Whether a line starts like a list item (bullet glyph, dash, "1." / "a)")."""
    return _BULLET.match(text) is not None
