"""The scorers' text cues over ``indexers.text`` (sentences, words, stopwords, stems, markers): content
tokens, numbers, negations and direction words."""

from __future__ import annotations

import re

from indexers import text as _text
from indexers.text import NEGATIONS, STOPWORDS, split_sentences, stem, strip_markers, words

__all__ = ["NEGATIONS", "STOPWORDS", "content_tokens", "content_words", "direction", "negation_count", "numbers",
           "split_sentences", "stem", "strip_markers", "words"]

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*%?")

# Direction words: +1 (up) / -1 (down). A claim and its evidence pointing opposite ways is a contradiction cue.
DIRECTION = {
    **{w: 1 for w in "increase increases increased increasing higher high more greater elevated enhance enhances enhanced "
       "raise raises raised rise rises promote promotes promoted improve improves improved positive upregulated "
       "upregulates upregulation induce induces induced activate activates activated".split()},
    **{w: -1 for w in "decrease decreases decreased decreasing lower low less fewer reduce reduces reduced reduction "
       "diminish diminished inhibit inhibits inhibited suppress suppresses suppressed impair impairs impaired "
       "negative downregulated downregulates downregulation prevent prevents prevented block blocks blocked".split()},
}


def content_words(text: str) -> list[str]:
    """Lowercased words of ``text`` without stopwords and negations, unstemmed."""
    return _text.content_words(text, drop=NEGATIONS)


def content_tokens(text: str) -> list[str]:
    """Lowercased, stemmed (Snowball) words of ``text`` without stopwords and negations."""
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
