"""The "groundedness scorer" block of a run report: who judged the claims and how far to trust it.

A groundedness figure means little without the scorer behind it. The block names the scorer and
its version, prints the balanced accuracy and AUC it was measured to have on each labelled domain
(from the scorer's ``card()``, stored in the run's ``config.json`` as ``scorer_card``), its
throughput in this run, and warns when the answers' cited sources do not resemble any of the
measured domains (``summary["scoring"]["in_domain"]``, from the scorer's ``domain_share``): there its
accuracy is unknown. With ``--scorer both`` it adds the agreement with the LLM judge (Cohen's kappa).

``scorer_block`` is a pure function of the config and summary; the two renderers format it.
"""

from __future__ import annotations

import html as _html
from typing import Any, Mapping

#: below this share of sources resembling a measured domain, the report warns
IN_DOMAIN_WARNING = 0.5


def scorer_block(config: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Any]:
    """``{name, version, measured: {domain: {...}}, pairs_per_s, in_domain, warnings: [...], agreement: {...}}``."""
    card = dict(config.get("scorer_card") or {})
    scoring = dict(summary.get("scoring") or {})
    measured = dict(card.get("measured") or {})
    warnings = []
    in_domain = scoring.get("in_domain")
    if measured and in_domain is not None and in_domain < IN_DOMAIN_WARNING:
        names = ", ".join(m.get("label", d) for d, m in measured.items())
        warnings.append(f"Only {in_domain:.0%} of the cited sources resemble the domains this scorer was measured on "
                        f"({names}): its accuracy on these answers is unknown, so read groundedness as indicative. "
                        "`--scorer both` adds an LLM judge's verdicts for comparison.")
    if not measured and card.get("name") == "local":
        warnings.append("This scorer's calibration records no measured accuracy.")
    return {
        "name": card.get("name") or config.get("scorer"),
        "version": card.get("version") or config.get("scorer_version"),
        "threshold": card.get("threshold"),
        "measured": measured,
        "pairs": scoring.get("pairs"),
        "pairs_per_s": scoring.get("pairs_per_s"),
        "in_domain": in_domain,
        "warnings": warnings,
        "agreement": dict(summary.get("scorer_agreement") or {}),
    }


def _num(value: Any, pattern: str = "{:.3f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def _measured_rows(block: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for domain, m in block["measured"].items():
        ba = _num(m.get("balanced_accuracy")) + (f" ± {m['std']:.3f}" if m.get("std") is not None else "")
        how = m.get("how") or "grouped CV"
        rows.append((m.get("label", domain), ba, _num(m.get("auc")), f"{m.get('pairs', '?')} pairs, {m.get('folds', '?')} grouped folds; {how}"))
    return rows


def _summary_line(block: Mapping[str, Any]) -> str:
    parts = [f"{block['pairs'] or 0} claim/source pairs judged"]
    if block["pairs_per_s"] is not None:
        parts.append(f"{block['pairs_per_s']:.1f} pairs/s")
    if block["in_domain"] is not None:
        parts.append(f"{block['in_domain']:.0%} of cited sources resemble the measured domains")
    return "; ".join(parts) + "."


def _agreement_lines(block: Mapping[str, Any]) -> list[str]:
    out = []
    for name, a in block["agreement"].items():
        out.append(f"Agreement with {name}: Cohen's kappa {_num(a.get('kappa'))}, same verdict on "
                   f"{_num(a.get('agreement'), '{:.1%}')} of {a.get('claims', 0)} claims; share grounded "
                   f"{_num(a.get('a_grounded'))} ({block['name']}) vs {_num(a.get('b_grounded'))} ({name}); "
                   f"{a.get('failures', 0)} {name} failures.")
    return out


def render_markdown(block: Mapping[str, Any]) -> list[str]:
    lines = ["## Groundedness scorer", "", f"Scorer `{block['name']}`, version `{block['version']}`"
             + (f", threshold {block['threshold']:.3f}" if isinstance(block.get("threshold"), (int, float)) else "") + ".", ""]
    if block["measured"]:
        lines += ["| measured on | balanced accuracy | AUC | how |", "| --- | ---: | ---: | --- |"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in _measured_rows(block)] + [""]
    lines += [_summary_line(block), ""]
    lines += [f"> Warning: {w}" for w in block["warnings"]] + ([""] if block["warnings"] else [])
    lines += [f"- {line}" for line in _agreement_lines(block)] + ([""] if block["agreement"] else [])
    return lines


def render_html(block: Mapping[str, Any]) -> str:
    e = _html.escape
    parts = ["<h2>Groundedness scorer</h2>",
             f"<p>Scorer <code>{e(str(block['name']))}</code>, version <code>{e(str(block['version']))}</code>.</p>"]
    if block["measured"]:
        parts.append("<table><tr><th>measured on</th><th>balanced accuracy</th><th>AUC</th><th>how</th></tr>")
        parts += [f"<tr><td>{e(a)}</td><td class='num'>{e(b)}</td><td class='num'>{e(c)}</td><td>{e(d)}</td></tr>"
                  for a, b, c, d in _measured_rows(block)]
        parts.append("</table>")
    parts.append(f"<p>{e(_summary_line(block))}</p>")
    parts += [f"<p class='warning'><b>Warning:</b> {e(w)}</p>" for w in block["warnings"]]
    parts += [f"<p>{e(line)}</p>" for line in _agreement_lines(block)]
    return "\n".join(parts)
