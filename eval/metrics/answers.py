"""Answer-level metrics: groundedness, length and latency (pure functions)."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np


def groundedness(claims: Sequence[Mapping[str, Any]]) -> float | None:
    """Share of an answer's claims judged supported by its cited sources (``{"supported": bool}`` each).

    Claims whose judgement failed (``"error"`` set) are left out; None when no claim was judged.
    """
    judged = [c for c in claims if not c.get("error")]
    if not judged:
        return None
    return sum(1 for c in judged if c.get("supported")) / len(judged)


def answer_length(content: str) -> int:
    """Length of an answer in words (whitespace-separated)."""
    return len(content.split())


def latency_percentiles(latencies: Sequence[float], *, percentiles: Sequence[float] = (50, 95)) -> dict[str, float | None]:
    """``{"p50": ..., "p95": ...}`` of latencies (seconds), linear interpolation; None when empty."""
    values = [float(x) for x in latencies if x is not None and not math.isnan(float(x))]
    if not values:
        return {f"p{int(p)}": None for p in percentiles}
    arr = np.asarray(values)
    return {f"p{int(p)}": float(np.percentile(arr, p)) for p in percentiles}


def mean(values: Sequence[float | None]) -> float | None:
    """Mean of the non-None values; None when there are none."""
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def scorer_agreement(pairs: Sequence[tuple[bool, bool]]) -> dict[str, float | int | None]:
    """Agreement of two groundedness scorers over the claims both judged: ``(a_supported, b_supported)`` each.

    ``kappa`` is Cohen's kappa (scikit-learn's ``cohen_kappa_score``): 1 = always agree, 0 = as often as
    chance would; None when there is no claim or both scorers gave one constant verdict that chance explains.
    ``agreement`` is the raw share of equal verdicts; ``a_grounded`` / ``b_grounded`` each scorer's share
    of supported claims.
    """
    n = len(pairs)
    if not n:
        return {"claims": 0, "kappa": None, "agreement": None, "a_grounded": None, "b_grounded": None}
    a = [bool(x) for x, _ in pairs]
    b = [bool(y) for _, y in pairs]
    agreement = sum(x == y for x, y in zip(a, b)) / n
    if len(set(a) | set(b)) < 2:  # both constant and equal: kappa is undefined (0/0)
        kappa = None
    else:
        from sklearn.metrics import cohen_kappa_score

        kappa = float(cohen_kappa_score(a, b))
        if math.isnan(kappa):
            kappa = None
    return {"claims": n, "kappa": kappa, "agreement": agreement, "a_grounded": sum(a) / n, "b_grounded": sum(b) / n}
