"""CI gates: ``--fail-under METRIC=VALUE`` (repeatable).

For a metric where higher is better the gate fails when the value is below VALUE; for a metric
where lower is better (latency, false abstention, failures) when it is above VALUE. On ``eval
compare`` a gate may name a delta, ``delta:METRIC=VALUE``: it fails when B - A is below VALUE
(e.g. ``delta:groundedness=-0.02`` allows at most a two-point drop).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from eval.errors import GateError
from eval.scoring import HEADLINES

LOWER_IS_BETTER = {key for key, (_, _, higher_is_better) in HEADLINES.items() if not higher_is_better}


@dataclass(frozen=True)
class Gate:
    metric: str
    threshold: float
    delta: bool = False

    @property
    def higher_is_better(self) -> bool:
        return self.delta or self.metric not in LOWER_IS_BETTER


def parse_gate(text: str) -> Gate:
    """``METRIC=VALUE`` or ``delta:METRIC=VALUE`` -> ``Gate``; ``GateError`` when malformed."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise GateError(f"--fail-under {text!r} must look like METRIC=VALUE, e.g. groundedness=0.8")
    try:
        threshold = float(value)
    except ValueError:
        raise GateError(f"--fail-under {text!r}: {value!r} is not a number") from None
    delta = name.startswith("delta:")
    return Gate(metric=name[len("delta:"):] if delta else name, threshold=threshold, delta=delta)


def validate_gates(gates: Sequence[Gate], *, k: int, allow_delta: bool = False) -> None:
    """Raise ``GateError`` before a run when a gate names a metric the summary will not have."""
    from eval.scoring import MEAN_METRICS, summarize

    known = set(summarize([], k=k)["metrics"])
    deltas = {t.format(k=k) for t in MEAN_METRICS}
    for gate in gates:
        if gate.delta and not allow_delta:
            raise GateError(f"gate delta:{gate.metric} only applies to `ondata eval compare`")
        pool = deltas if gate.delta else known
        if gate.metric not in pool:
            raise GateError(f"unknown metric {gate.metric!r} in --fail-under; known metrics: {', '.join(sorted(pool))}")


def check_gates(gates: Sequence[Gate], metrics: Mapping[str, Any], *, deltas: Mapping[str, Any] | None = None) -> list[str]:
    """One reason sentence per failed gate (empty when all pass); ``GateError`` for an unknown metric."""
    failures = []
    for gate in gates:
        source = deltas if gate.delta else metrics
        if source is None:
            raise GateError(f"gate delta:{gate.metric} only applies to `ondata eval compare`")
        if gate.metric not in source:
            known = ", ".join(sorted(source))
            raise GateError(f"unknown metric {gate.metric!r} in --fail-under; known metrics: {known}")
        value = source[gate.metric]
        label = f"delta of {gate.metric}" if gate.delta else gate.metric
        if value is None:
            failures.append(f"{label} is undefined for this run, required {'>=' if gate.higher_is_better else '<='} {gate.threshold:g}")
        elif gate.higher_is_better and value < gate.threshold:
            failures.append(f"{label} = {value:.4g} is below {gate.threshold:g}")
        elif not gate.higher_is_better and value > gate.threshold:
            failures.append(f"{label} = {value:.4g} is above {gate.threshold:g}")
    return failures
