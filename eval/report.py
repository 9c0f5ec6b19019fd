"""Run reports for data teams: ``report.md`` and a self-contained ``report.html``; the comparison page.

Both reports show the headline metrics (with what each means and over which questions), the
groundedness scorer that judged them, why questions failed (``eval.diagnosis``), recall per document
with question counts, and the questions themselves. The HTML adds plots (score distributions,
recall per document, latency without the warm-up) as inline base64 PNGs made with matplotlib
(imported on first use) and a drill-down table of every question, sortable and filterable by metric,
outcome and failure reason (``eval.html``), so the file can be mailed or attached to a CI run as is.
``render_compare_html`` renders ``eval.compare.compare_runs`` the same way. Everything here is a
function of the stored run (``config.json`` and ``results.jsonl``).
"""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

from eval import html as H
from eval import scorer_card
from eval.metrics.citations import render_citation
from eval.diagnosis import OUTCOMES, REASONS, diagnose, outcome, page_range, reason_counts
from eval.scoring import (MEAN_METRICS, POPULATIONS, headline_keys, metric_values, recall_per_document, scored, summarize,
                          warmup_qids)
from eval.store import RunStore

log = logging.getLogger(__name__)
e = H.e
_fmt = H.fmt  # kept for callers of the old name


def badness(record: Mapping[str, Any], *, k: int) -> float:
    """How bad a question went (lower is worse): sum of page recall (±1), citations matched and groundedness."""
    if record.get("error"):
        return -1.0
    s = record.get("scores") or {}
    if not record.get("answerable", True):
        return 1.0 if record.get("abstained") else 0.0
    parts = [s.get(f"page1_recall@{k}"), s.get("citations_matched"), s.get("groundedness")]
    return sum(0.0 if p is None else float(p) for p in parts)


def worst_questions(records: Sequence[Mapping[str, Any]], *, k: int, n: int = 10) -> list[Mapping[str, Any]]:
    """The ``n`` worst questions that failed (a correct abstention or a passed question is never listed)."""
    failing = [r for r in records if diagnose(r)]
    return sorted(failing, key=lambda r: (badness(r, k=k), r.get("line", 0)))[:n]


def drilldown_order(records: Sequence[Mapping[str, Any]], *, k: int) -> list[Mapping[str, Any]]:
    """Every question: failed ones worst first, then passed ones, then correct abstentions (by line)."""
    rank = {"error": 0, "failed": 0, "passed": 1, "correct_abstention": 2}
    return sorted(records, key=lambda r: (rank[outcome(r)], badness(r, k=k), r.get("line", 0)))


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def make_plots(records: Sequence[Mapping[str, Any]], *, k: int) -> dict[str, str]:
    """Base64 PNGs: ``scores`` (distributions), ``per_document`` (recall, labelled), ``latency`` (no warm-up)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    ok = [r for r in records if not r.get("error") and "scores" in r]
    plots: dict[str, str] = {}
    keys = [("page1_recall@{k}", f"page recall@{k} (±1)"), ("citations_matched", "citations matched"),
            ("groundedness", "groundedness")]
    fig, axes = plt.subplots(1, len(keys), figsize=(11, 3))
    for ax, (template, label) in zip(axes, keys):
        values = list(metric_values(ok, template, k=k).values())
        ax.hist(values, bins=[i / 10 for i in range(11)], color="#3b7dd8", edgecolor="white")
        ax.set_title(f"{label} (n={len(values)})", fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_xlabel("score per question")
    axes[0].set_ylabel("questions")
    plots["scores"] = _png(fig)

    per_doc = recall_per_document(ok, k=k)
    fig, ax = plt.subplots(figsize=(9, 0.42 * max(len(per_doc), 2) + 1))
    names = [f"{name} (n={v['questions']})" for name, v in per_doc.items()]
    values = [v["recall"] for v in per_doc.values()]
    bars = ax.barh(names, values, color="#4caf50")
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=3, fontsize=9)
    ax.set_xlim(0, 1.12)
    ax.invert_yaxis()
    ax.set_xlabel(f"page recall@{k} (±1): mean over the n questions citing the document")
    plots["per_document"] = _png(fig)

    warm = warmup_qids(ok)
    lat = [r["latency_ms"]["total"] / 1000 for r in ok if r["qid"] not in warm and (r.get("latency_ms") or {}).get("total") is not None]
    warm_s = [r["latency_ms"]["total"] / 1000 for r in ok if r["qid"] in warm and (r.get("latency_ms") or {}).get("total") is not None]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(lat, bins=20, color="#ff9800", edgecolor="white")
    ax.set_xlabel("seconds per question")
    ax.set_ylabel("questions")
    ax.set_title(f"latency of {len(lat)} questions" + (f" (warm-up of {max(warm_s):.1f} s not shown)" if warm_s else ""),
                 fontsize=10)
    plots["latency"] = _png(fig)
    return plots


def notes(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Caveats a reader needs to interpret the numbers of this run."""
    out = []
    answered = [r for r in records if not r.get("error")]
    if answered and all(r.get("extractive") for r in answered):
        out.append("Answers were written by the extractive model, which quotes source sentences: groundedness and "
                   "citation precision are near 1 by construction and only check the scorer; judge the retrieval "
                   "metrics and citations matched.")
    failures = sum((r.get("scores") or {}).get("judge_failures", 0) for r in answered)
    if failures:
        out.append(f"{failures} answer sentences could not be judged (judge errors or unparseable replies); "
                   "they are left out of groundedness, not counted as failures of the system.")
    return out


def config_line(config: Mapping[str, Any]) -> str:
    ds = config.get("dataset", {})
    return (f"Dataset {ds.get('path', '?')} (sha256 {str(ds.get('sha256', ''))[:12]}), top {config.get('top')}, "
            f"strictness {config.get('strictness')}, scorer {config.get('scorer')}, "
            f"profile {config.get('settings', {}).get('profile', '?')}, commit {config.get('meta', {}).get('git_commit')}.")


def population_sizes(records: Sequence[Mapping[str, Any]], *, k: int) -> dict[str, int]:
    """How many questions each mean metric averaged (its denominator), and the latency sample sizes."""
    sizes = {template.format(k=k): len(metric_values(records, template, k=k)) for template in MEAN_METRICS}
    timed = [r for r in scored(records) if (r.get("latency_ms") or {}).get("total") is not None]
    warm = warmup_qids(timed)
    sizes["_warmup"] = sum(1 for r in timed if r["qid"] in warm)
    sizes["_latency"] = len(timed) - sizes["_warmup"]
    return sizes


def _over(key: str, sizes: Mapping[str, int], k: int) -> str:
    template = next((t for t in MEAN_METRICS if t.format(k=k) == key), None)
    if key in ("latency_p50_s", "latency_p95_s"):
        return f"{sizes['_latency']} questions after the warm-up"
    if key == "warmup_s":
        return f"{sizes['_warmup']} warm-up question(s)" if sizes["_warmup"] else ""
    if template is None:
        return ""
    return f"{sizes[key]} {POPULATIONS[MEAN_METRICS[template]]}"


# ------------------------------------------------------------------ Markdown
def _gold_text(record: Mapping[str, Any]) -> str:
    return ", ".join(g["file"] + (f"#page={g['page']}" if g.get("page") else "") for g in record.get("gold", []))


def _cited_line(record: Mapping[str, Any]) -> str:
    """Each citation at the page its claims rest on, with the cited chunk's page range when it spans pages."""
    out = []
    for c in record.get("citations", []):
        pages = c.get("pages") or ""
        out.append(c["ref"] + (f" (chunk pages {pages})" if "-" in str(pages) else ""))
    return ", ".join(out)


def _sources_line(record: Mapping[str, Any]) -> str:
    """The retrieved hits: file, page (or page range of a chunk spanning pages) and score."""
    return ", ".join(f"{h['file']}{page_range(h)} ({h['score']:.3f})" for h in record.get("hits") or [])


def render_markdown(summary: Mapping[str, Any], records: Sequence[Mapping[str, Any]], config: Mapping[str, Any]) -> str:
    k = int(summary.get("k", 5))
    metrics = summary["metrics"]
    sizes = population_sizes(records, k=k)
    lines = [f"# Evaluation report: {Path(str(summary.get('run', ''))).name or 'run'}", "", config_line(config)]
    c = summary["counts"]
    lines += ["", f"{c['questions']} questions ({c['answerable']} answerable, {c['unanswerable']} unanswerable), "
              f"{c['claims']} answer sentences judged, {metrics.get('errors', 0)} errors.", ""]
    lines += [f"> Note: {n}" for n in notes(records)] + ([""] if notes(records) else [])
    lines += ["## Headline metrics", "", "| metric | value | over | what it means |", "| --- | ---: | --- | --- |"]
    for key, (label, text, _) in headline_keys(k).items():
        lines.append(f"| {label} | {H.fmt(metrics.get(key), key)} | {_over(key, sizes, k)} | {text} |")
    lines += [""] + scorer_card.render_markdown(scorer_card.scorer_block(config, summary))
    counts = reason_counts(records)
    outcomes = {o: sum(1 for r in records if outcome(r) == o) for o in OUTCOMES}
    lines += ["## Why questions failed", "",
              ", ".join(f"{n} {OUTCOMES[o]}" for o, n in outcomes.items() if n) + ".", ""]
    if counts:
        lines += ["| reason | questions |", "| --- | ---: |"] + [f"| {REASONS[code]} | {n} |" for code, n in counts.items()]
    lines += ["", "## Recall per document", "", f"| document | questions | page recall@{k} (±1) | page recall@{k} |",
              "| --- | ---: | ---: | ---: |"]
    exact = recall_per_document(records, k=k, level="page")
    for doc, v in recall_per_document(records, k=k).items():
        lines.append(f"| {doc} | {v['questions']} | {v['recall']:.3f} | {exact.get(doc, {}).get('recall', 0.0):.3f} |")
    lines += ["", "## Worst questions", ""]
    worst = worst_questions(records, k=k)
    if not worst:
        lines += ["No question failed.", ""]
    for r in worst:
        s = r.get("scores") or {}
        lines.append(f"### line {r.get('line')}: {r['question']}")
        for reason in diagnose(r):
            lines.append(f"- **{reason['label']}**: {reason['detail']}")
        if r.get("error"):
            lines.append("")
            continue
        lines.append(f"- page recall (±1) {H.fmt(s.get(f'page1_recall@{k}'))}, citations matched "
                     f"{H.fmt(s.get('citations_matched'))}, groundedness {H.fmt(s.get('groundedness'))}")
        lines.append(f"- answer: {' '.join(str(r.get('answer', '')).split())}")
        lines.append(f"- cited: {_cited_line(r) or 'nothing'}")
        lines.append(f"- gold: {_gold_text(r) or 'none'}")
        lines.append(f"- retrieved: {_sources_line(r) or 'nothing'}")
        lines.append("")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ HTML
def _reasons_html(reasons: Sequence[Mapping[str, str]]) -> str:
    return "".join(f"<div class='reason'><b>{e(x['label'])}</b><br><span class='small muted'>{e(x['detail'])}</span></div>"
                   for x in reasons)


def _claims_html(record: Mapping[str, Any]) -> str:
    citations = record.get("citations") or []
    items = []
    for claim in record.get("claims") or []:
        pages = list(claim.get("pages") or [])
        refs = []
        for i, d in enumerate(claim.get("docs", [])):
            if not 0 < d <= len(citations):
                continue
            c = citations[d - 1]
            page = pages[i] if i < len(pages) else c.get("page")  # the page this sentence rests on
            refs.append(render_citation({"filepath": c.get("filepath") or c.get("source_id"), "title": c.get("title"),
                                         "page": page}))
        mark = ("<span class='muted'>not judged</span>" if claim.get("error")
                else "<span class='ok'>supported</span>" if claim.get("supported") else "<span class='bad'>unsupported</span>")
        items.append(f"<li>{mark}: {e(str(claim.get('text', '')))} <span class='muted small'>{e(' '.join(refs) or 'no citation')}</span></li>")
    return f"<ul class='flat'>{''.join(items)}</ul>" if items else "<p class='muted'>no answer sentences</p>"


def _hits_html(record: Mapping[str, Any]) -> str:
    gold = {(g["file"].lower(), g.get("page")) for g in record.get("gold") or []}
    rows = []
    for h in record.get("hits") or []:
        pages = page_range(h)
        state = "in prompt" if h.get("in_prompt", True) else f"dropped ({h.get('filter_reason')})"
        is_gold = any(h.get("file", "").lower() == f and (p is None or (h.get("page_start") or 0) <= p <= (h.get("page_end") or h.get("page_start") or 0))
                      for f, p in gold)
        rows.append(f"<li>{h.get('rank')}. {e(str(h.get('file')))}{e(pages)} <span class='muted small'>score {h.get('score', 0):.3f}, "
                    f"{e(state)}</span>{' <b>gold</b>' if is_gold else ''}</li>")
    return f"<ul class='flat'>{''.join(rows)}</ul>" if rows else "<p class='muted'>nothing retrieved</p>"


def _question_details(record: Mapping[str, Any]) -> str:
    if record.get("error"):
        return H.details("error", f"<p>{e(str(record['error']))}</p>")
    answer = " ".join(str(record.get("answer", "")).split())
    body = (f"<div class='cols'><div><p><b>Answer</b><br>{e(answer)}</p><p><b>Sentences</b></p>{_claims_html(record)}</div>"
            f"<div><p><b>Cited</b><br>{e(_cited_line(record) or 'nothing')}</p>"
            f"<p><b>Gold</b><br>{e(_gold_text(record) or 'none')}</p><p><b>Truth</b><br>{e(str(record.get('truth', '')) or '—')}</p></div>"
            f"<div><p><b>Retrieved</b></p>{_hits_html(record)}</div></div>")
    return H.details("answer: " + (H.snippet(answer, 150) or "(empty)"), body)


def render_questions_html(records: Sequence[Mapping[str, Any]], *, k: int, table_id: str = "questions") -> str:
    """The drill-down: one row per question (failing ones first) with its details folded under it, filters above."""
    warm = warmup_qids(records)
    metric_cols = [(f"page1_recall@{k}", "recall ±1"), ("citations_matched", "cites gold"), ("groundedness", "grounded")]
    counts = reason_counts(records)
    controls = [H.select("outcome", "outcome", {o: label for o, label in OUTCOMES.items()}),
                H.select("reasons", "reason", {"*": "any failure", **{c: f"{REASONS[c]} ({n})" for c, n in counts.items()}},
                         name="reason"),
                H.metric_filter({key: label for key, label in metric_cols})]
    columns = [("line", True, True), ("question", True, False), ("outcome", True, False), ("why", False, False),
               *[(label, True, True) for _, label in metric_cols], ("latency", True, True)]
    parts = [H.filter_form(table_id, controls),
             f"<table id='{table_id}' class='sortable grouped'>",
             H.colgroup(["5%", "25%", "11%", "27%", "8%", "8%", "8%", "8%"]),
             H.header(columns)]
    for r in drilldown_order(records, k=k):
        reasons = diagnose(r)
        out = outcome(r, reasons)
        s = r.get("scores") or {}
        latency = (r.get("latency_ms") or {}).get("total")
        latency_s = None if latency is None else latency / 1000
        warm_note = "warm-up: includes loading the models" if r["qid"] in warm else None
        codes = " ".join(dict.fromkeys(x["reason"] for x in reasons))
        parts.append(
            f"<tbody data-outcome='{out}' data-reasons='{e(codes)}'><tr>"
            f"<td class='num' data-value='{r.get('line', 0)}'>{r.get('line', '')}</td>"
            f"<td>{e(r['question'])}{'' if r.get('answerable', True) else ' <span class=muted>(unanswerable)</span>'}</td>"
            f"<td>{H.tag(out, OUTCOMES[out])}</td><td>{_reasons_html(reasons)}</td>"
            + "".join(H.num_cell(s.get(key), key, col=key, suffix=f"±1: {H.fmt(s.get('citations_matched_pm1'))}"
                                 if key == "citations_matched" and s.get("citations_matched_pm1") is not None else "")
                      for key, _ in metric_cols)
            + H.num_cell(latency_s, "latency_s", col="latency_s", title=warm_note, suffix=" (warm-up)" if warm_note else "")
            + f"</tr><tr class='more'><td colspan='{len(columns)}'>{_question_details(r)}</td></tr></tbody>")
    parts.append("</table>")
    return "\n".join(parts)


def render_html(summary: Mapping[str, Any], records: Sequence[Mapping[str, Any]], config: Mapping[str, Any],
                plots: Mapping[str, str]) -> str:
    k = int(summary.get("k", 5))
    metrics = summary["metrics"]
    sizes = population_sizes(records, k=k)
    title = f"Evaluation report: {Path(str(summary.get('run', ''))).name or 'run'}"
    c = summary["counts"]
    body = [f"<p class='muted'>{e(config_line(config))}</p>",
            f"<p>{c['questions']} questions ({c['answerable']} answerable, {c['unanswerable']} unanswerable), "
            f"{c['claims']} answer sentences judged, {metrics.get('errors', 0)} errors.</p>",
            *[f"<p><b>Note:</b> {e(n)}</p>" for n in notes(records)],
            "<h2>Headline metrics</h2><table>", H.colgroup(["20%", "9%", "26%", "45%"]),
            H.header([("metric", False, False), ("value", False, True), ("over", False, False), ("what it means", False, False)]),
            "<tbody>"]
    for key, (label, text, _) in headline_keys(k).items():
        body.append(f"<tr><td>{e(label)}</td><td class='num' data-metric='{e(key)}'>{e(H.fmt(metrics.get(key), key))}</td>"
                    f"<td class='small'>{e(_over(key, sizes, k))}</td><td>{e(text)}</td></tr>")
    body.append("</tbody></table>")
    body.append("<section id='scorer'>" + scorer_card.render_html(scorer_card.scorer_block(config, summary)) + "</section>")

    counts = reason_counts(records)
    outcomes = {o: sum(1 for r in records if outcome(r) == o) for o in OUTCOMES}
    body.append("<h2>Why questions failed</h2><p>" + ", ".join(
        f"<a href='#questions' data-set='outcome={o}'>{n} {e(label)}</a>" for o, label in OUTCOMES.items() if (n := outcomes[o]))
        + ". A question may fail for several reasons; click one to list its questions.</p>")
    if counts:
        body += ["<table style='width:auto;min-width:40%'>", H.header([("reason", False, False), ("questions", False, True)]), "<tbody>"]
        body += [f"<tr><td><a href='#questions' data-set='reason={code}'>{e(REASONS[code])}</a></td><td class='num'>{n}</td></tr>"
                 for code, n in counts.items()]
        body.append("</tbody></table>")

    if "scores" in plots:
        body.append(f"<h2>Score distributions per question</h2><img alt='Score distributions per question' "
                    f"src='data:image/png;base64,{plots['scores']}'>")
    body.append("<h2>Recall per document</h2>")
    exact = recall_per_document(records, k=k, level="page")
    per_doc = recall_per_document(records, k=k)
    body += ["<table style='width:auto;min-width:60%'>",
             H.header([("document", False, False), ("questions", False, True), (f"page recall@{k} (±1)", False, True),
                       (f"page recall@{k}", False, True)]), "<tbody>"]
    body += [f"<tr><td>{e(doc)}</td><td class='num'>{v['questions']}</td><td class='num'>{v['recall']:.3f}</td>"
             f"<td class='num'>{exact.get(doc, {}).get('recall', 0.0):.3f}</td></tr>" for doc, v in per_doc.items()]
    body.append("</tbody></table>")
    if "per_document" in plots:
        body.append(f"<img alt='Recall per document' src='data:image/png;base64,{plots['per_document']}'>")
    if "latency" in plots:
        warm = metrics.get("warmup_s")
        body.append("<h2>Latency</h2><p>" + (f"Warm-up: the first question took {warm:.2f} s, including loading the models; "
                                             "it is left out of the plot and of the p50/p95. " if warm is not None else "")
                    + f"p50 {H.fmt(metrics.get('latency_p50_s'), 'latency_p50_s')}, "
                      f"p95 {H.fmt(metrics.get('latency_p95_s'), 'latency_p95_s')}.</p>"
                    f"<img alt='Latency' src='data:image/png;base64,{plots['latency']}'>")
    body.append("<h2 id='questions-title'>Questions</h2><p class='muted'>Every question, failing ones first (worst first). "
                "Click a column header to sort; open a question's answer to see its sentences, citations and retrieved sources.</p>")
    body.append(render_questions_html(records, k=k))
    return H.page(title, body)


def write_report(run: str | Path, *, plots: bool = True) -> dict[str, Any]:
    """Write ``report.md`` and ``report.html`` into the run folder; returns the (recomputed) summary."""
    store = RunStore(run)
    config = store.read_config()
    records = store.read_results()
    k = int(config.get("top", 5))
    summary = summarize(records, k=k)
    summary["run"] = str(run)
    images = make_plots(records, k=k) if plots else {}
    (store.path / "report.md").write_text(render_markdown(summary, records, config), encoding="utf-8")
    (store.path / "report.html").write_text(render_html(summary, records, config, images), encoding="utf-8")
    log.info("wrote %s and %s", store.path / "report.md", store.path / "report.html")
    return summary


# ------------------------------------------------------------------ comparison page
def _verdict(m: Mapping[str, Any], higher_is_better: bool) -> str:
    if m.get("delta") is None:
        return "<span class='muted'>no paired values</span>"
    if not m["comparable"]:
        return f"<span class='muted'>{e(m['note'])}</span>"
    if m["significant"]:
        good = (m["delta"] > 0) == higher_is_better
        return H.tag("better" if good else "worse", "better" if good else "worse")
    return "<span class='muted'>no significant change</span>"


def shown_metrics(result: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The compared metrics a reader sees, in the report's headline order (the rest stay in the result for gates)."""
    heads = headline_keys(result["k"])
    return [(key, result["metrics"][key]) for key in heads if key in result["metrics"]]


def verdict_text(m: Mapping[str, Any], higher_is_better: bool) -> str:
    """``better`` / ``worse`` / ``no significant change`` / the non-comparability note (terminal and tests)."""
    if m.get("delta") is None:
        return "no paired values"
    if not m["comparable"]:
        return str(m["note"])
    if m["significant"]:
        return "better" if (m["delta"] > 0) == higher_is_better else "worse"
    return "no significant change"


def _change_reasons(reasons: Sequence[Mapping[str, str]], out: str) -> str:
    return H.tag(out, OUTCOMES[out]) + _reasons_html(reasons)


def render_compare_html(result: Mapping[str, Any], *, name_a: str, name_b: str, config_a: Mapping[str, Any],
                        config_b: Mapping[str, Any]) -> str:
    """The comparison of run B against run A as a self-contained page."""
    k = result["k"]
    heads = headline_keys(k)
    body = [f"<p class='muted'>A: {e(name_a)} — {e(config_line(config_a))}<br>B: {e(name_b)} — {e(config_line(config_b))}</p>",
            f"<p>{result['paired_questions']} questions answered in both runs"
            + (f"; {result['only_a']} only in A, {result['only_b']} only in B (left out)" if result["only_a"] or result["only_b"] else "")
            + ". Confidence intervals: paired bootstrap (BCa, 2,000 resamples) of B − A over the questions both runs define.</p>"]
    diff = result["differences"]
    if diff["watched"] or diff["other"]:
        shown = lambda v: "—" if v is None else str(v)  # noqa: E731
        rows = "".join(f"<tr><td>{e(d['label'])}</td><td>{e(shown(d['a']))}</td><td>{e(shown(d['b']))}</td></tr>" for d in diff["watched"])
        flagged = sorted({m["note"] for m in result["metrics"].values() if m.get("note")})
        body.append("<div class='warn' id='config-differs'><h2>The runs' configurations differ</h2>"
                    + (f"<table style='width:auto'>{H.header([('setting', False, False), ('A', False, False), ('B', False, False)])}"
                       f"<tbody>{rows}</tbody></table>" if rows else "")
                    + (f"<p class='small'>Other settings that differ: {e(', '.join(diff['other']))}.</p>" if diff["other"] else "")
                    + ("<p>Marked below: " + "; ".join(e(n) for n in flagged) + ".</p>" if flagged else
                       "<p>Every metric below stays comparable: these differences are what the comparison measures.</p>")
                    + "</div>")
    body += ["<h2>Metrics</h2><table id='metrics'>", H.colgroup(["22%", "9%", "9%", "9%", "16%", "8%", "27%"]),
             H.header([("metric", False, False), ("A", False, True), ("B", False, True), ("B − A", False, True),
                       ("95% CI of B − A", False, True), ("n", False, True), ("verdict", False, False)]), "<tbody>"]
    for key, m in shown_metrics(result):
        label = heads.get(key, (key,))[0]
        hib = heads.get(key, (None, None, True))[2]
        ci = "—" if m.get("low") is None else f"[{m['low']:+.3f}, {m['high']:+.3f}]"
        delta = "n/a" if m.get("delta") is None else f"{m['delta']:+.3f}"
        note = f"<br><span class='small muted'>{e(m['note'])}</span>" if m.get("note") and m["comparable"] else ""
        body.append(f"<tr class='{'' if m['comparable'] else 'nc'}' data-metric='{e(key)}'><td>{e(label)}{note}</td>"
                    f"<td class='num'>{H.fmt(m.get('a'))}</td><td class='num'>{H.fmt(m.get('b'))}</td><td class='num'>{delta}</td>"
                    f"<td class='num'>{ci}</td><td class='num'>{m['n']}</td><td>{_verdict(m, hib)}</td></tr>")
    for key, m in result["other"].items():
        delta = "n/a" if m["delta"] is None else f"{m['delta']:+.2f} s"
        body.append(f"<tr data-metric='{e(key)}'><td>{e(heads[key][0])}</td><td class='num'>{H.fmt(m['a'], key)}</td>"
                    f"<td class='num'>{H.fmt(m['b'], key)}</td><td class='num'>{delta}</td>"
                    f"<td class='num muted'>—</td><td class='num'></td><td class='muted'>a percentile, not a mean: no CI (warm-up excluded)</td></tr>")
    body.append("</tbody></table>")

    questions = result["questions"]
    changes = {c: sum(1 for q in questions if q["change"] == c) for c in ("broke", "fixed", "changed", "same")}
    body.append("<h2>Questions</h2><p>" + ", ".join(
        f"<a href='#changes' data-set='change={c}'>{n} {c}</a>" for c, n in changes.items() if n)
        + ". <i>broke</i>: passed in A, fails in B; <i>fixed</i>: the reverse; <i>changed</i>: fails in both for other reasons.</p>")
    reason_opts = {code: label for code, label in REASONS.items()
                   if any(code in {x["reason"] for x in q["reasons_b"]} for q in questions)}
    metric_opts = {key: heads.get(key, (key,))[0] for key in result["metrics"]}
    body.append(H.filter_form("changes", [H.select("change", "change", {c: c for c in changes}),
                                          H.select("reasons", "reason in B", {"*": "any failure", **reason_opts}, name="reason"),
                                          H.metric_filter(metric_opts).replace("at most", "change at most")]))
    columns = [("line", True, True), ("question", True, False), ("change", True, False), ("A", False, False),
               ("B", False, False), ("metric changes", False, False)]
    body += ["<table id='changes' class='sortable grouped'>", H.colgroup(["5%", "27%", "8%", "23%", "23%", "14%"]),
             H.header(columns)]
    for q in questions:
        deltas = "".join(f"<div class='small' data-col='{e(key)}' data-value='{d:.6g}'>{e(heads.get(key, (key,))[0])} {d:+.2f}</div>"
                         for key, d in q["deltas"].items() if key in heads)
        answers = H.details("answers in A and B", f"<div class='cols two'><p><b>A</b><br>{e(' '.join(str(q['answer_a']).split()))}</p>"
                                                  f"<p><b>B</b><br>{e(' '.join(str(q['answer_b']).split()))}</p></div>")
        codes = " ".join(dict.fromkeys(x["reason"] for x in q["reasons_b"]))
        body.append(f"<tbody data-change='{q['change']}' data-reasons='{e(codes)}'><tr><td class='num' data-value='{q['line'] or 0}'>{q['line']}</td>"
                    f"<td>{e(q['question'])}</td><td>{H.tag(q['change'], q['change'])}</td>"
                    f"<td>{_change_reasons(q['reasons_a'], q['outcome_a'])}</td><td>{_change_reasons(q['reasons_b'], q['outcome_b'])}</td>"
                    f"<td>{deltas or '<span class=muted>none</span>'}</td></tr>"
                    f"<tr class='more'><td colspan='{len(columns)}'>{answers}</td></tr></tbody>")
    body.append("</table>")
    return H.page(f"Comparison: {name_b} vs {name_a}", body)
