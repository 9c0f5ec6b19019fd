"""Citation metrics.

``any_citation`` and ``citations_matched`` follow the Azure reference app
(azure-search-openai-demo ``evals/evaluate.py``): both look for ``[name.ext]`` or
``[name.ext#page=N]`` in the answer text with the regex ``\\[([^\\]]+)\\.\\w{3,4}(#page=\\d+)*\\]``;
``citations_matched`` is the share of the truth's citations (compared as (name without
extension, page suffix) pairs, as that regex's groups are) that the answer also cites;
``citations_matched_near`` is the same with a page tolerance (default ±1: the gold labels of the
Contoso set are often one page off). Answers that cite with ``[docN]`` markers (the On Your Data
shape) are first rendered from their claims with ``render_claims``, so each citation becomes the
cited file and the page that claim rests on.

Citation precision / recall take per-sentence support judgements (ALCE-style, simplified):
recall is the share of answer sentences whose cited sources together support them (a sentence
without a citation counts as unsupported); precision is the share of citations that on their own
support the sentence that cites them.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

REFERENCE_CITATION_RE = re.compile(r"\[([^\]]+)\.\w{3,4}(#page=\d+)*\]")


def render_citation(citation: Mapping[str, Any]) -> str:
    """``[file#page=N]`` (or ``[file]``) for a citation dict with ``filepath``/``title`` and ``page``."""
    name = citation.get("filepath") or citation.get("title") or citation.get("url") or ""
    name = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    page = citation.get("page")
    return f"[{name}#page={page}]" if page is not None else f"[{name}]"


def render_claims(claims: Sequence[Mapping[str, Any]], citations: Sequence[Mapping[str, Any]]) -> str:
    """The answer as its claims cite it: each claim's text followed by ``[file#page=N]`` for each of its
    citations, at the page that claim gives (``claims``: ``{"text", "docs", "pages"}``, ``docs`` 1-based)."""
    parts = []
    for claim in claims:
        refs = []
        pages = list(claim.get("pages") or [])
        for i, n in enumerate(claim.get("docs") or []):
            if 0 < n <= len(citations):
                page = pages[i] if i < len(pages) else citations[n - 1].get("page")
                refs.append(render_citation({**citations[n - 1], "page": page}))
        parts.append(" ".join([str(claim.get("text", ""))] + refs))
    return " ".join(parts)


def any_citation(response: str) -> bool:
    """True when the answer text cites at least one file (reference app definition)."""
    return bool(REFERENCE_CITATION_RE.search(response))


def citations_matched(truth: str, response: str) -> float | None:
    """Share of the truth's citations present in the answer (reference app definition); None if the truth cites nothing."""
    truth_citations = set(REFERENCE_CITATION_RE.findall(truth))
    if not truth_citations:
        return None
    response_citations = set(REFERENCE_CITATION_RE.findall(response))
    return len(truth_citations & response_citations) / len(truth_citations)


def _pairs(text: str) -> set[tuple[str, int | None]]:
    return {(name, int(page[len("#page="):]) if page else None) for name, page in REFERENCE_CITATION_RE.findall(text)}


def citations_matched_near(truth: str, response: str, *, tolerance: int = 1) -> float | None:
    """``citations_matched`` accepting a cited page within ``tolerance`` pages of the truth's page (same file)."""
    truth_pairs = _pairs(truth)
    if not truth_pairs:
        return None
    cited = _pairs(response)

    def near(name: str, page: int | None) -> bool:
        return any(n == name and (p == page or (p is not None and page is not None and abs(p - page) <= tolerance))
                   for n, p in cited)

    return sum(near(n, p) for n, p in truth_pairs) / len(truth_pairs)


def citation_precision_recall(sentences: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Citation recall and precision from per-sentence judgements.

    Each sentence is ``{"cited": [bool, ...], "supported_by_all": bool}``: ``cited[i]`` says whether
    the i-th source cited by that sentence supports it on its own; ``supported_by_all`` whether all
    of its cited sources together do. Returns ``{"citation_recall", "citation_precision"}``, each
    None when undefined (no sentences / no citations).
    """
    if not sentences:
        return {"citation_recall": None, "citation_precision": None}
    recall = sum(1 for s in sentences if s.get("cited") and s.get("supported_by_all")) / len(sentences)
    flags = [bool(flag) for s in sentences for flag in s.get("cited", ())]
    precision = sum(flags) / len(flags) if flags else None
    return {"citation_recall": recall, "citation_precision": precision}
