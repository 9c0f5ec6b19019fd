"""Answer-level metrics: groundedness, abstention, length and latency (pure functions)."""

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


def abstention_scores(rows: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Abstention over ``{"answerable": bool, "abstained": bool}`` rows.

    - ``abstention_rate``: share of unanswerable questions where the system abstained (higher is better);
    - ``false_abstention_rate``: share of answerable questions where it abstained (lower is better).
    Each is None when there is no question of that kind.
    """
    unanswerable = [r for r in rows if not r.get("answerable", True)]
    answerable = [r for r in rows if r.get("answerable", True)]
    return {
        "abstention_rate": sum(bool(r.get("abstained")) for r in unanswerable) / len(unanswerable) if unanswerable else None,
        "false_abstention_rate": sum(bool(r.get("abstained")) for r in answerable) / len(answerable) if answerable else None,
    }


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
