"""Text helpers shared by the scorers and the runner: sentence splitting, content tokens, numbers, cues."""

from __future__ import annotations

import re

_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n{2,}|\n(?=\s*[-*•]\s)")
_WORD = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*%?")
_DOC_MARKER = re.compile(r"\s*\[doc\d+\]")

STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being it its this that
    these those which who whom what when where why how than then there their they them he she his her we our you
    your i me my do does did done has have had having can could would should may might will shall must also such
    into over under about after before between during through per via both each other any all some most more less
    so not no nor only own same very just too s t""".split()
)

NEGATIONS = frozenset("not no never none nor without cannot neither lack lacks lacking absent absence fail fails failed".split())

# Direction words: +1 (up) / -1 (down). A claim and its evidence pointing opposite ways is a contradiction cue.
DIRECTION = {
    **{w: 1 for w in "increase increases increased increasing higher high more greater elevated enhance enhances enhanced "
       "raise raises raised rise rises promote promotes promoted improve improves improved positive upregulated "
       "upregulates upregulation induce induces induced activate activates activated".split()},
    **{w: -1 for w in "decrease decreases decreased decreasing lower low less fewer reduce reduces reduced reduction "
       "diminish diminished inhibit inhibits inhibited suppress suppresses suppressed impair impairs impaired "
       "negative downregulated downregulates downregulation prevent prevents prevented block blocks blocked".split()},
}


def strip_markers(text: str) -> str:
    """``text`` without ``[docN]`` citation markers."""
    return _DOC_MARKER.sub("", text).strip()


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (a light rule-based splitter: ., !, ? followed by a capital or digit; blank lines; bullets)."""
    parts = [p.strip() for p in _SENT_SPLIT.split(text or "")]
    return [p for p in parts if p and any(ch.isalnum() for ch in p)]


def stem(word: str) -> str:
    for suffix in ("ational", "ations", "ation", "ments", "ment", "ness", "ings", "ing", "ies", "ed", "es", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text or "")]


def content_words(text: str) -> list[str]:
    """Lowercased words of ``text`` without stopwords and negations, unstemmed."""
    return [w for w in words(text) if w not in STOPWORDS and w not in NEGATIONS]


def content_tokens(text: str) -> list[str]:
    """Lowercased, lightly stemmed words of ``text`` without stopwords."""
    return [stem(w) for w in content_words(text)]


def numbers(text: str) -> set[str]:
    """Numbers written in ``text`` (``1,000`` and ``1000`` compare equal; a trailing % is kept)."""
    return {n.replace(",", "").lstrip("+") for n in _NUMBER.findall(text or "")}


def negation_count(text: str) -> int:
    return sum(1 for w in words(text) if w in NEGATIONS or w.endswith("n't"))


def direction(text: str) -> int:
    """Net direction of ``text``: sum of +1/-1 direction words, flipped by an odd number of negations, clipped to -1..1."""
    total = sum(DIRECTION.get(w, 0) for w in words(text))
    if negation_count(text) % 2:
        total = -total
    return (total > 0) - (total < 0)
