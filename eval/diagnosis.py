"""Why a question failed: failure reasons computed from a stored run record (a pure function).

``diagnose(record)`` reads only what ``results.jsonl`` stores (gold citations, the retrieved hits
with their ranks and filter reasons, the answer's citations and judged claims, ``abstained``,
``answerable``) and returns the reasons, in the order a reader should fix them:

- ``not_retrieved``: a gold page is not among the retrieved hits (with the nearest hit of that
  document, when there is one);
- ``not_cited``: a gold page was retrieved but the answer does not cite it (with the hit's rank and,
  when the strictness or token budget kept it out of the prompt, why);
- ``neighbour_page``: the answer cites the gold document one page before or after the gold page;
- ``abstained_with_gold``: the system said it does not know although a gold page was retrieved;
- ``abstained``: it abstained on an answerable question that has no gold citation to check;
- ``answered_unanswerable``: it answered a question the dataset marks unanswerable;
- ``unsupported_claim``: an answer sentence the groundedness scorer judged unsupported;
- ``error``: answering the question failed.

A correct abstention (an unanswerable question the system declined) has no reason and is never
among the worst questions. ``outcome`` condenses a record into ``passed``, ``correct_abstention``,
``failed`` or ``error``. Nothing here mutates its input.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from eval.metrics.retrieval import hit_matches, normalize_file

# code -> label shown to a data team (the order is the order reasons are listed in)
REASONS: dict[str, str] = {
    "error": "the question failed",
    "not_retrieved": "gold page not retrieved",
    "abstained_with_gold": "abstained though the gold page was retrieved",
    "abstained": "abstained on an answerable question",
    "not_cited": "retrieved but not cited",
    "neighbour_page": "cited the neighbouring page",
    "answered_unanswerable": "answered an unanswerable question",
    "unsupported_claim": "unsupported claim",
}

OUTCOMES: dict[str, str] = {
    "passed": "passed",
    "correct_abstention": "correct abstention",
    "failed": "failed",
    "error": "error",
}


def _reason(code: str, detail: str) -> dict[str, str]:
    return {"reason": code, "label": REASONS[code], "detail": detail}


def _gold_keys(record: Mapping[str, Any]) -> list[tuple[str, int | None]]:
    keys: list[tuple[str, int | None]] = []
    for g in record.get("gold") or []:
        key = (normalize_file(g["file"]), g.get("page"))
        if key not in keys:
            keys.append(key)
    return keys


def _gold_name(key: tuple[str, int | None], record: Mapping[str, Any]) -> str:
    shown = next((g["file"] for g in record.get("gold") or [] if normalize_file(g["file"]) == key[0]), key[0])
    return shown if key[1] is None else f"{shown} p{key[1]}"


def _citation_file(citation: Mapping[str, Any]) -> str:
    return normalize_file(citation.get("filepath") or citation.get("source_id") or citation.get("title") or "")


def page_range(hit: Mapping[str, Any]) -> str:
    """`` p3``, `` p3-4`` for a hit spanning pages, ``""`` without pages."""
    start, end = hit.get("page_start"), hit.get("page_end")
    if start is None:
        return ""
    return f" p{start}" if end in (None, start) else f" p{start}-{end}"


def gold_retrieved(record: Mapping[str, Any], key: tuple[str, int | None]) -> Mapping[str, Any] | None:
    """The best-ranked stored hit that holds the gold page ``key`` exactly, or None."""
    return next((h for h in record.get("hits") or [] if hit_matches(h, key)), None)


def gold_cited(record: Mapping[str, Any], key: tuple[str, int | None]) -> bool:
    file, page = key
    return any(_citation_file(c) == file and (page is None or c.get("page") == page)
               for c in record.get("citations") or [])


def neighbour_cited(record: Mapping[str, Any], key: tuple[str, int | None]) -> Mapping[str, Any] | None:
    """A citation of the gold document one page before or after the gold page, or None."""
    file, page = key
    if page is None:
        return None
    return next((c for c in record.get("citations") or []
                 if _citation_file(c) == file and c.get("page") is not None and abs(int(c["page"]) - page) == 1), None)


def _not_retrieved_detail(record: Mapping[str, Any], key: tuple[str, int | None]) -> str:
    hits = record.get("hits") or []
    same_doc = [h for h in hits if normalize_file(h.get("file") or "") == key[0]]
    where = f"{_gold_name(key, record)} is not among the {len(hits)} retrieved hits"
    if same_doc:
        h = same_doc[0]
        return f"{where}; the document was retrieved at rank {h.get('rank')}{page_range(h)}"
    return f"{where}; nor is any page of its document"


def _retrieved_detail(hit: Mapping[str, Any], key: tuple[str, int | None], record: Mapping[str, Any]) -> str:
    detail = f"{_gold_name(key, record)} retrieved at rank {hit.get('rank')}"
    if hit.get("in_prompt") is False:
        why = {"score": "its score was below the strictness threshold",
               "top_n": "more relevant sources filled the prompt"}.get(str(hit.get("filter_reason")), str(hit.get("filter_reason")))
        detail += f" but kept out of the prompt ({why})"
    elif hit.get("in_prompt"):
        detail += " and given to the model"
    return detail


def diagnose(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """The failure reasons of one stored record (``{"reason", "label", "detail"}`` each); empty when it went well."""
    if record.get("error"):
        return [_reason("error", str(record["error"]))]
    reasons: list[dict[str, str]] = []
    if not record.get("answerable", True):
        if not record.get("abstained"):
            cited = ", ".join(c.get("ref", "") for c in record.get("citations") or []) or "no source"
            reasons.append(_reason("answered_unanswerable", f"answered (citing {cited}) instead of saying it does not know"))
    else:
        keys = _gold_keys(record)
        if record.get("abstained"):
            found = [(k, gold_retrieved(record, k)) for k in keys]
            retrieved = [(k, h) for k, h in found if h is not None]
            if retrieved:
                k, h = retrieved[0]
                reasons.append(_reason("abstained_with_gold", _retrieved_detail(h, k, record)))
            elif keys:
                reasons.extend(_reason("not_retrieved", _not_retrieved_detail(record, k)) for k in keys)
            else:
                reasons.append(_reason("abstained", "no gold citation, so retrieval cannot be checked"))
        else:
            for key in keys:
                if gold_cited(record, key):
                    continue
                neighbour = neighbour_cited(record, key)
                hit = gold_retrieved(record, key)
                if neighbour is not None:
                    reasons.append(_reason("neighbour_page", f"cites {neighbour.get('ref') or 'page ' + str(neighbour.get('page'))} "
                                                            f"instead of {_gold_name(key, record)}"))
                elif hit is not None:
                    reasons.append(_reason("not_cited", _retrieved_detail(hit, key, record)))
                else:
                    reasons.append(_reason("not_retrieved", _not_retrieved_detail(record, key)))
    unsupported = [c for c in record.get("claims") or [] if not c.get("supported") and not c.get("error")]
    if unsupported:
        judged = sum(1 for c in record.get("claims") or [] if not c.get("error"))
        first = " ".join(str(unsupported[0].get("text", "")).split())
        if len(first) > 140:
            first = first[:139] + "…"
        reasons.append(_reason("unsupported_claim", f"{len(unsupported)} of {judged} sentences unsupported, e.g. “{first}”"))
    return reasons


def outcome(record: Mapping[str, Any], reasons: Sequence[Mapping[str, str]] | None = None) -> str:
    """``error``, ``failed`` (any reason), ``correct_abstention`` or ``passed``."""
    if record.get("error"):
        return "error"
    reasons = diagnose(record) if reasons is None else reasons
    if reasons:
        return "failed"
    if not record.get("answerable", True) and record.get("abstained"):
        return "correct_abstention"
    return "passed"


def reason_counts(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many questions carry each reason (a question counts once per reason), in ``REASONS`` order."""
    counts = dict.fromkeys(REASONS, 0)
    for r in records:
        for code in {x["reason"] for x in diagnose(r)}:
            counts[code] += 1
    return {code: n for code, n in counts.items() if n}
