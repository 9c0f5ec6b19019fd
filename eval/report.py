"""Run reports for data teams: ``report.md`` and a self-contained ``report.html``.

Both show the headline metrics with one sentence each on what they mean, the groundedness scorer's
block (``eval.scorer_card``: which scorer, its measured accuracy per domain, a domain warning), recall per document and
the worst questions (answer, citations, gold and retrieved sources). The HTML adds plots (score
distributions, recall per document, latency) as inline base64 PNGs made with matplotlib, so the
file can be mailed or attached to a CI run as is. matplotlib is imported on first use.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

from eval import scorer_card
from eval.scoring import headline_keys, recall_per_document, summarize
from eval.store import RunStore

log = logging.getLogger(__name__)


def _fmt(value: Any, key: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if key.endswith("_s"):
        return f"{value:.2f} s"
    if key == "answer_words":
        return f"{value:.0f}"
    return f"{value:.3f}"


def badness(record: Mapping[str, Any], *, k: int) -> float:
    """How bad a question went (lower is worse): sum of page recall (±1), citations matched and groundedness."""
    if record.get("error"):
        return -1.0
    s = record.get("scores") or {}
    parts = [s.get(f"page1_recall@{k}"), s.get("citations_matched"), s.get("groundedness")]
    if not record.get("answerable", True):
        parts = [1.0 if record.get("abstained") else 0.0]
    return sum(0.0 if p is None else float(p) for p in parts)


def worst_questions(records: Sequence[Mapping[str, Any]], *, k: int, n: int = 10) -> list[Mapping[str, Any]]:
    return sorted(records, key=lambda r: (badness(r, k=k), r.get("line", 0)))[:n]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def make_plots(records: Sequence[Mapping[str, Any]], *, k: int) -> dict[str, str]:
    """Base64 PNGs: ``scores`` (distributions), ``per_document`` (recall), ``latency``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    ok = [r for r in records if not r.get("error") and "scores" in r]
    plots: dict[str, str] = {}
    keys = [(f"page1_recall@{k}", f"page recall@{k} (±1)"), ("citations_matched", "citations matched"),
            ("groundedness", "groundedness")]
    fig, axes = plt.subplots(1, len(keys), figsize=(11, 3))
    for ax, (key, label) in zip(axes, keys):
        values = [r["scores"][key] for r in ok if r["scores"].get(key) is not None]
        ax.hist(values, bins=[i / 10 for i in range(11)], color="#3b7dd8", edgecolor="white")
        ax.set_title(f"{label} (n={len(values)})", fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_xlabel("score per question")
    axes[0].set_ylabel("questions")
    plots["scores"] = _png(fig)

    per_doc = recall_per_document(ok, k=k)
    fig, ax = plt.subplots(figsize=(8, 0.4 * max(len(per_doc), 2) + 1))
    names = list(per_doc)
    ax.barh(names, [per_doc[n] for n in names], color="#4caf50")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel(f"page recall@{k} (±1), mean over the questions citing the document")
    plots["per_document"] = _png(fig)

    lat = [r.get("latency_ms", {}).get("total", 0) / 1000 for r in ok]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(lat, bins=20, color="#ff9800", edgecolor="white")
    ax.set_xlabel("seconds per question")
    ax.set_ylabel("questions")
    ax.set_title("latency")
    plots["latency"] = _png(fig)
    return plots


def _pages(start: Any, end: Any) -> str:
    """`` p3``, `` p3-4`` for a chunk spanning pages, ``""`` without pages."""
    if start is None:
        return ""
    return f" p{start}" if end in (None, start) else f" p{start}-{end}"


def _sources_line(record: Mapping[str, Any]) -> str:
    hits = record.get("hits") or []
    return ", ".join(f"{h['file']}{_pages(h.get('page_start'), h.get('page_end'))} ({h['score']:.3f})" for h in hits)


def _cited_line(record: Mapping[str, Any]) -> str:
    """Each citation at the page its claims rest on, with the cited chunk's page range when it spans pages."""
    out = []
    for c in record.get("citations", []):
        pages = c.get("pages") or ""
        out.append(c["ref"] + (f" (chunk pages {pages})" if "-" in pages else ""))
    return ", ".join(out)


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


def render_markdown(summary: Mapping[str, Any], records: Sequence[Mapping[str, Any]], config: Mapping[str, Any]) -> str:
    k = int(summary.get("k", 5))
    metrics = summary["metrics"]
    lines = [f"# Evaluation report: {Path(str(summary.get('run', ''))).name or 'run'}", ""]
    ds = config.get("dataset", {})
    lines.append(f"Dataset `{ds.get('path', '?')}` (sha256 {str(ds.get('sha256', ''))[:12]}), top {config.get('top')}, "
                 f"strictness {config.get('strictness')}, scorer `{config.get('scorer')}`, "
                 f"profile `{config.get('settings', {}).get('profile', '?')}`, commit `{config.get('meta', {}).get('git_commit')}`.")
    c = summary["counts"]
    lines += ["", f"{c['questions']} questions ({c['answerable']} answerable, {c['unanswerable']} unanswerable), "
              f"{c['claims']} answer sentences judged, {metrics.get('errors', 0)} errors.", ""]
    lines += [f"> Note: {n}" for n in notes(records)] + ([""] if notes(records) else [])
    lines += ["## Headline metrics", "", "| metric | value | what it means |", "| --- | ---: | --- |"]
    for key, (label, text, _) in headline_keys(k).items():
        lines.append(f"| {label} | {_fmt(metrics.get(key), key)} | {text} |")
    lines += [""] + scorer_card.render_markdown(scorer_card.scorer_block(config, summary))
    lines += ["## Recall per document", "", f"| document | page recall@{k} (±1) |", "| --- | ---: |"]
    for doc, value in recall_per_document(records, k=k).items():
        lines.append(f"| {doc} | {value:.3f} |")
    lines += ["", "## Worst questions", ""]
    for r in worst_questions(records, k=k):
        s = r.get("scores") or {}
        lines.append(f"### line {r.get('line')}: {r['question']}")
        if r.get("error"):
            lines += [f"- error: {r['error']}", ""]
            continue
        lines.append(f"- page recall (±1) {_fmt(s.get(f'page1_recall@{k}'))}, citations matched "
                     f"{_fmt(s.get('citations_matched'))}, groundedness {_fmt(s.get('groundedness'))}")
        lines.append(f"- answer: {' '.join(str(r.get('answer', '')).split())}")
        lines.append(f"- cited: {_cited_line(r) or 'nothing'}")
        gold = ", ".join(g["file"] + (f"#page={g['page']}" if g.get("page") else "") for g in r.get("gold", []))
        lines.append(f"- gold: {gold or 'none'}")
        lines.append(f"- retrieved: {_sources_line(r) or 'nothing'}")
        lines.append("")
    return "\n".join(lines) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#666;font-size:90%}
img{max-width:100%}.warning{background:#fff3cd;padding:6px 10px;border-left:4px solid #e0a800}"""


def render_html(summary: Mapping[str, Any], records: Sequence[Mapping[str, Any]], config: Mapping[str, Any],
                plots: Mapping[str, str]) -> str:
    k = int(summary.get("k", 5))
    metrics = summary["metrics"]
    e = html.escape
    title = f"Evaluation report: {Path(str(summary.get('run', ''))).name or 'run'}"
    ds = config.get("dataset", {})
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{e(title)}</h1>",
             f"<p class='muted'>Dataset {e(str(ds.get('path', '?')))} (sha256 {e(str(ds.get('sha256', ''))[:12])}), "
             f"top {e(str(config.get('top')))}, strictness {e(str(config.get('strictness')))}, scorer {e(str(config.get('scorer')))}, "
             f"profile {e(str(config.get('settings', {}).get('profile', '?')))}, commit {e(str(config.get('meta', {}).get('git_commit')))}.</p>",
             *[f"<p><b>Note:</b> {e(n)}</p>" for n in notes(records)],
             "<h2>Headline metrics</h2><table><tr><th>metric</th><th>value</th><th>what it means</th></tr>"]
    for key, (label, text, _) in headline_keys(k).items():
        parts.append(f"<tr><td>{e(label)}</td><td class='num' data-metric='{e(key)}'>{e(_fmt(metrics.get(key), key))}</td><td>{e(text)}</td></tr>")
    parts.append("</table>")
    parts.append(scorer_card.render_html(scorer_card.scorer_block(config, summary)))
    captions = {"scores": "Score distributions per question", "per_document": "Recall per document", "latency": "Latency"}
    for key, caption in captions.items():
        if key in plots:
            parts.append(f"<h2>{e(caption)}</h2><img alt='{e(caption)}' src='data:image/png;base64,{plots[key]}'>")
    parts.append("<h2>Worst questions</h2><table><tr><th>#</th><th>question</th><th>scores</th><th>answer</th>"
                 "<th>cited</th><th>gold</th><th>retrieved</th></tr>")
    for r in worst_questions(records, k=k):
        s = r.get("scores") or {}
        if r.get("error"):
            parts.append(f"<tr><td>{r.get('line')}</td><td>{e(r['question'])}</td><td colspan='5'>error: {e(r['error'])}</td></tr>")
            continue
        score_text = (f"recall±1 {_fmt(s.get(f'page1_recall@{k}'))}<br>matched {_fmt(s.get('citations_matched'))}"
                      f" (±1 {_fmt(s.get('citations_matched_pm1'))})"
                      f"<br>grounded {_fmt(s.get('groundedness'))}")
        gold = ", ".join(g["file"] + (f"#page={g['page']}" if g.get("page") else "") for g in r.get("gold", []))
        parts.append(f"<tr><td>{r.get('line')}</td><td>{e(r['question'])}</td><td>{score_text}</td>"
                     f"<td>{e(str(r.get('answer', '')))}</td><td>{e(_cited_line(r))}</td>"
                     f"<td>{e(gold)}</td><td class='muted'>{e(_sources_line(r))}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


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
