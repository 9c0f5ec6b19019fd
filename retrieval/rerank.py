"""Re-ranking search candidates by their best sentence: a lexical, title- and heading-aware second stage.

Hybrid search ranks whole chunks (about 512 tokens, usually two pages). A broad question ("What
services does the plan provide?") often has its best chunk just below the top 5: the chunk's
vector is an average of everything it says, and BM25 rewards term counts over the whole chunk. The
second stage, like Azure AI Search's semantic ranker over the first results, looks at the
``candidates`` best hits and ranks them again by *evidence*: the share of the question's terms
(idf-weighted) that the chunk's best single quotable unit covers, a term found only in the chunk's
title, section heading path or file name counting half (``retrieval.extractive.source_context``;
the same scoring, ``ExtractiveAnswerer.score`` without an embedder, that the offline answerer
quotes with, typos respelt). The final order is the reciprocal-rank fusion (``k``, ``weight``) of
the search rank and the evidence rank, so a chunk must do well on both; ties keep the search order.
Pure and deterministic; no model is loaded (20 Contoso chunks: 60 ms median, 119 ms p95 with the 2 cores
at load 12, ``rerank`` alone over ``Retriever.search(question, top=20)`` of the 50 questions).

Measured with ``python bench/answers.py --rerank N`` (Contoso public 50, local profile, MiniLM, hybrid,
top 5; page recall@5 exact / within ±1 page): search order (``--rerank 0``) 0.60 / 0.67; the top 10
re-ranked at evidence weight 1.0: 0.63 / 0.74, weight 0.5: 0.61 / 0.70; the top 20 at weight 0.5
(the defaults): 0.63 / 0.74. Weight 1.0 over the top 10 cost the extractive answer more (it moves
lexically strong chunks of unanswerable questions up: Contoso tune abstention 10/18 -> 8/18,
data/samples 6/7 -> 5/7; weight 0.5 over 20: 9/18 and 6/7). data/samples recall stays 1.00. The
index's own ranking (``LocalIndex.search``, hence SciFact nDCG@10 of ``bench/retrieval.py``) is
unchanged: the stage runs in ``retrieval.answer.prepare_grounded_request``, on the answering path.

Three rules join the evidence ranking (2026-12-06):

- a question that asks two things (``retrieval.extractive.question_parts``: "..., and what ...?") ranks
  the candidates by each part's evidence too (``part_weight`` 0.5 each in the fusion): one quotable
  unit rarely covers both parts, so the whole-question evidence favours a chunk that covers a
  little of each over the chunk that answers the second part;
- a question that names a document, by its file name (extension dropped, "_" read as a space) or its
  whole title, two words at least, as a phrase ("according to the Northwind_Standard_Benefits_Details.pdf",
  "in the Acme Gold Plan Details"), gets that document's chunks first (``named_sources``; the order
  within each group is kept);
- within the first ``top`` (the answering path's cut), a hit whose pages a better hit of its document
  already covers (overlapping chunks repeat sentences) moves just after the ``top`` (``spread``), so
  the slot goes to other pages; nothing is dropped.

A fourth, a ranking by the chunk's own (last) section heading (``heading_scores``: the idf share of
the question's terms it names, ``heading_weight``), raised recall but cost the answerer, so
``HEADING_WEIGHT`` was 0 (off; 0.25 since, see the end). Measured on the candidates of ``Retriever.search(question, top=40)``
(page recall@5 exact / ±1; Contoso 50, data/samples 53), then with ``bench/answers.py`` (its own
search, ``prepare_grounded_request``) for the answerer:

    rerank (candidates, weight; rules)                contoso      cm (±1)     FA    samples FA  abst.  tune
    20, 0.5 (before)                                   0.61/0.71   0.35/0.53   5/50  2/46        7/7    13/18
    20, 0.5; parts + named + spread (the defaults)     0.62/0.72   0.34/0.53   5/50  2/46        7/7    13/18
    30, 0.5; parts + named + spread                    0.63/0.73   0.34/0.52   5/50  2/46        7/7    13/18
    30, 0.5; + heading 0.25                            0.64/0.75   0.36/0.54   5/50  2/46        7/7    12/18
    30, 0.5; + heading 0.5                             0.65/0.76   0.36/0.51   5/50  3/46        7/7    12/18
    30, 0.5; + heading 1.0                             0.66/0.76   0.33/0.52   4/50  3/46        7/7    12/18
    20, 0.5; + heading 0.25 / 0.5                      0.63/0.73, 0.64/0.74    5/50  2/46, 3/46  7/7    12/18
    20, 1.0; parts + named + spread                    0.65/0.75   0.35/0.55   4/50  1/46        6/7    12/18

Each rule alone adds about 0.01 to both recalls on the candidates (one gold page of 75; 30
candidates, weight 0.5: none 0.60/0.70, spread 0.61/0.71, named 0.61/0.71, parts 0.62/0.71). The
heldout unanswerable split, read after these choices (``bench/answers.py`` prints it): 14/17 with
the defaults, as before; 13/17 with 30 candidates (all three rules, or any two), one reason 20 stays. Dropping
*any* hit whose pages overlap a better hit's (not only covered ones) measured 0.60/0.74 (30, named):
more ±1 pages, fewer exact ones. The heading ranking gated at an idf share of 0.2-0.5 lost its gain
(0.63/0.73), and the unanswerable question it flips ("Does Northwind Standard include pet
insurance?") flips because the fifth source changes, not the quoted one. The rules cost no time:
``rerank`` alone over 20 Contoso candidates, 55 ms median both before and after (p95 180 / 189 ms,
interleaved, load 7). Commands::

    python bench/answers.py --index-dir /tmp/recall-ba --refresh     # the defaults, all four sets
    python bench/answers.py --index-dir /tmp/recall-ba --rerank 30

The heading ranking and the candidate count were swept again with the answerer as merged that evening
(``retrieval.extractive.CALIBRATION``, its first paragraph, has the table): with the answerer's
amount questions typed and its composition re-swept, 40 candidates and ``HEADING_WEIGHT`` 0.25 are the
defaults now, page recall@5 0.65 / 0.76 (from 0.62 / 0.72), citations_matched 0.50 (±1 0.66), false
abstention 1/50, unanswerable 16/18 and 16/17, data/samples 2/46 and 7/7. Heading weight 0.35-0.5 costs a
data/samples answer (3/46). The index's own ranking, hence SciFact, is unchanged (0.7222).
"""

from __future__ import annotations

import math
from typing import Sequence

from indexers.fusion import reciprocal_rank_fusion
from indexers.records import Chunk, SearchHit
from indexers.text import terms, words

#: How many search hits the answering path fetches and re-ranks (0: keep the search order).
RERANK_CANDIDATES = 40

#: Weight of the heading ranking (``heading_scores``) in the fusion (see the 2026-12-06 measurements, the last paragraph).
HEADING_WEIGHT = 0.25



def _contains(text: Sequence[str], phrase: Sequence[str]) -> bool:
    n = len(phrase)
    return n >= 2 and any(list(text[i:i + n]) == list(phrase) for i in range(len(text) - n + 1))


def named_sources(question: str, hits: Sequence[SearchHit]) -> set[str]:
    """The ``source_id`` of each hit's document that ``question`` names: its file name (without the
    extension, "_" read as a space) or its whole title, of at least two words, as a phrase."""
    from retrieval.extractive import file_name_text

    asked = words(question.replace("_", " "))
    named: set[str] = set()
    for h in hits:
        c = h.chunk
        if c.source_id not in named and (_contains(asked, words(file_name_text(c))) or _contains(asked, words(c.title))):
            named.add(c.source_id)
    return named


def _pages(chunk: Chunk) -> set[int]:
    if chunk.page_start is None:
        return set()
    return set(range(chunk.page_start, (chunk.page_end or chunk.page_start) + 1))


def spread(hits: Sequence[SearchHit], top: int) -> list[SearchHit]:
    """``hits`` with each hit, within the first ``top``, whose pages a better hit of its document
    already covers moved after those ``top`` (in order); nothing is dropped."""
    kept: list[SearchHit] = []
    moved: list[SearchHit] = []
    covered: dict[str, set[int]] = {}
    for h in hits:
        pages = _pages(h.chunk)
        seen = covered.setdefault(h.chunk.source_id, set())
        if len(kept) < top and pages and pages <= seen:
            moved.append(h)
            continue
        kept.append(h)
        seen |= pages
    return kept[:top] + moved + kept[top:]


def _evidence_order(question: str, hits: Sequence[SearchHit]) -> list[int]:
    """Hit positions by the coverage of their best unit (``ExtractiveAnswerer.score``), ties in search order."""
    from retrieval.extractive import ExtractiveAnswerer, source_context

    scored = ExtractiveAnswerer().score(
        question, [(i, source_context(h.chunk), h.chunk.content, h.vector_score) for i, h in enumerate(hits)])
    evidence: dict[int, float] = {}
    for u in scored:
        evidence[u.source] = max(evidence.get(u.source, 0.0), u.coverage)
    return sorted(range(len(hits)), key=lambda i: (-evidence.get(i, 0.0), i))


def heading_scores(question: str, hits: Sequence[SearchHit]) -> list[float]:
    """Per hit, the idf-weighted share of the question's terms found in the chunk's own (last) section
    heading; idf over the candidates' contents and headings."""
    from retrieval.extractive import question_terms

    asked = list(dict.fromkeys(question_terms(question)))
    if not asked:
        return [0.0] * len(hits)
    bags = [set(terms(h.chunk.content + " " + h.chunk.section)) for h in hits]
    idf = {t: math.log(1 + len(hits) / (1 + sum(t in b for b in bags))) for t in asked}
    total = sum(idf.values()) or 1.0
    out = []
    for h in hits:
        heading = set(terms(h.chunk.section.rsplit(" > ", 1)[-1]))
        share = sum(idf[t] for t in asked if t in heading) / total
        out.append(share)
    return out


def rerank(question: str, hits: Sequence[SearchHit], *, k: int = 60, weight: float = 0.5,
           heading_weight: float = HEADING_WEIGHT, part_weight: float = 0.5, top: int = 5) -> list[SearchHit]:
    """``hits`` (best first) in re-ranked order (see the module docstring). Never drops or adds a hit.

    ``weight``: of the evidence ranking (0: the search order, nothing else applies);
    ``heading_weight``: of the heading ranking; ``part_weight``: of each part's evidence ranking
    for a question that asks two things; ``top``: how many first hits the near-duplicate rule fills."""
    from retrieval.extractive import question_parts

    if k < 1 or weight < 0 or heading_weight < 0 or part_weight < 0 or top < 1:
        raise ValueError("rerank needs k >= 1, top >= 1 and weights >= 0")
    hits = list(hits)
    if len(hits) < 2 or not weight:
        return hits
    rankings: list[Sequence[int]] = [range(len(hits)), _evidence_order(question, hits)]
    weights = [1.0, weight]
    heads = heading_scores(question, hits) if heading_weight else []
    if any(heads):
        rankings.append(sorted(range(len(hits)), key=lambda i: (-heads[i], i)))
        weights.append(heading_weight)
    parts = question_parts(question) if part_weight else [question]
    if len(parts) == 2:
        for part in parts:
            rankings.append(_evidence_order(part, hits))
            weights.append(part_weight)
    fused = reciprocal_rank_fusion(rankings, k=k, weights=weights, ties="first")
    ordered = [hits[i] for i, _ in fused]
    named = named_sources(question, ordered)
    if named:
        ordered = [h for h in ordered if h.chunk.source_id in named] + \
                  [h for h in ordered if h.chunk.source_id not in named]
    return spread(ordered, top)
