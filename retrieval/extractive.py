"""An offline chat model that writes no text of its own: it quotes the best-supported source sentences.

``ExtractiveChatModel`` reads the question and the numbered ``[docN]`` sources back from a grounded
request (``retrieval.prompt.parse_grounded_messages``), scores every sentence (and table row, see
``answer_units``) of the sources
against the question with a BM25-like lexical score (idf over the sentences of the sources plus a
background idf from a small English stop list; optionally blended with the embedder's cosine),
and answers with the best few sentences, each followed by its ``[docN]`` marker. The answer starts
with ``Extractive answer (no language model):``. When the best sentence covers less than
``min_support`` of the question's weighted terms and the request is in scope, it abstains with On
Your Data's standard sentence.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from retrieval.chat import ChatResult, Message
from retrieval.prompt import NOT_AVAILABLE, parse_grounded_messages, split_sentences

PREFIX = "Extractive answer (no language model):"

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOP = frozenset(
    """a an the and or but if then else of to in on at by for with about from into over under as is are was were be been
    being do does did have has had can could should would will shall may might must i me my we our you your he him his she
    her it its they them their this that these those what which who whom whose when where why how there here not no yes
    so than too very just also any all some more most other such only own same few many much each both either neither
    please tell explain describe give show know want need get find say said again s t""".split()
)


def stem(word: str) -> str:
    """A light English suffix stripper (plural, -ing, -ed, -ly) so 'policies' matches 'policy'."""
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("edly", ""), ("ed", ""), ("ly", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: len(word) - len(suffix)] + repl
    return word


def terms(text: str) -> list[str]:
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def answer_units(content: str) -> list[str]:
    """The quotable pieces of a source: sentences within each line or paragraph, and each row of a
    Markdown table rendered with its header (``Part: Battery pack; Price (£): 529.00``), so an answer
    quotes one row rather than a whole table or a run of unpunctuated lines."""
    units: list[str] = []
    header: list[str] | None = None
    for line in content.split("\n"):
        stripped = line.strip()
        if stripped.startswith("|") and stripped.count("|") >= 2:
            cells = _cells(stripped)
            if all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
                continue  # the separator row
            if header is None:
                header = cells
                continue
            pairs = [f"{h}: {v}" for h, v in zip(header, cells) if v]
            units.append("; ".join(pairs) + ".")
            continue
        header = None
        if stripped:
            units.extend(s for s in split_sentences(stripped) if s.strip())
    return units


@dataclass(frozen=True)
class ScoredSentence:
    source: int
    text: str
    score: float
    support: float
    position: int


class ExtractiveChatModel:
    """Answers from the sources' own sentences, citing them; works offline with no language model.

    - ``max_sentences``: at most this many sentences in the answer.
    - ``min_support``: the idf-weighted fraction of the question's terms the best sentence (with its
      source's title) must contain, else the model abstains (when the request is in scope).
    - ``embedder``: optional; when given, the sentence score blends in the question-sentence cosine.
    """

    extractive = True
    model_id = "extractive"

    def __init__(self, *, max_sentences: int = 3, min_support: float = 0.45, embedder: Any = None,
                 k1: float = 1.2, b: float = 0.5) -> None:
        self.max_sentences = max_sentences
        self.min_support = min_support
        self.embedder = embedder
        self.k1 = k1
        self.b = b

    def score(self, question: str, sources: Sequence[tuple[int, str, str]]) -> list[ScoredSentence]:
        """Every sentence of ``sources`` (``(n, header, content)``) scored against ``question``, best first."""
        q = list(dict.fromkeys(terms(question)))
        sentences: list[tuple[int, str, list[str], set[str], int]] = []
        for n, header, content in sources:
            title_terms = set(terms(header))
            for i, s in enumerate(answer_units(content)):
                s = " ".join(s.split())
                if len(s) < 3:
                    continue
                sentences.append((n, s, terms(s), title_terms, i))
        if not sentences or not q:
            return []
        N = len(sentences)
        df = {t: sum(1 for _, _, ts, _, _ in sentences if t in ts) for t in q}
        idf = {t: math.log(1 + (N - df[t] + 0.5) / (df[t] + 0.5)) + 0.1 for t in q}
        total = sum(idf.values())
        avgdl = sum(len(ts) for _, _, ts, _, _ in sentences) / N or 1.0
        cos = None
        if self.embedder is not None:
            vecs = self.embedder.embed_documents([s for _, s, _, _, _ in sentences])
            cos = np.asarray(vecs) @ np.asarray(self.embedder.embed_query(question))
        out = []
        for j, (n, s, ts, title_terms, pos) in enumerate(sentences):
            tf = {t: ts.count(t) for t in q}
            bm25 = sum(
                idf[t] * tf[t] * (self.k1 + 1) / (tf[t] + self.k1 * (1 - self.b + self.b * len(ts) / avgdl))
                for t in q if tf[t]
            )
            covered = {t for t in q if tf[t] or t in title_terms}
            support = sum(idf[t] for t in covered) / total
            score = bm25 / total + 0.5 * support
            if cos is not None:
                score = 0.5 * score + float(cos[j])
            out.append(ScoredSentence(source=n, text=s, score=score, support=support, position=pos))
        out.sort(key=lambda x: (-x.score, x.source, x.position))
        return out

    def answer(self, messages: Sequence[Message]) -> str:
        prompt = parse_grounded_messages(messages)
        scored = self.score(prompt.question, [(s.n, s.header, s.content) for s in prompt.sources])
        if not scored or scored[0].support < self.min_support:
            if prompt.in_scope or not scored:
                return NOT_AVAILABLE
        best = scored[0].score
        picked: list[ScoredSentence] = []
        for s in scored:
            if len(picked) >= self.max_sentences or s.score < 0.6 * best:
                break
            if s.support <= 0 or any(s.text == p.text for p in picked):
                continue
            picked.append(s)
        if not picked:
            return NOT_AVAILABLE
        body = " ".join(f"{s.text.rstrip()} [doc{s.source}]" for s in picked)
        return f"{PREFIX} {body}"

    def complete(self, messages: Sequence[Message], **opts: Any) -> ChatResult:
        text = self.answer(messages)
        return ChatResult(content=text, finish_reason="stop", usage={"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})

    def stream(self, messages: Sequence[Message], **opts: Any) -> Iterator[str]:
        text = self.answer(messages)
        for piece in re.findall(r"\S+\s*", text):
            yield piece
