"""Reports, run comparison and CI gates on small fixed runs checked into tests/data/eval/."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval.compare import compare_runs, paired_bootstrap
from eval.diagnosis import diagnose, outcome
from eval.errors import GateError
from eval.gates import check_gates, parse_gate, validate_gates
from eval.metrics.retrieval import retrieval_scores
from eval.report import write_report
from eval.scoring import summarize
from eval.store import RunStore
from ondata.cli import app

DATA = Path(__file__).resolve().parent / "data" / "eval"


@pytest.fixture()
def runs(tmp_path):
    for name in ("run_a", "run_b"):
        shutil.copytree(DATA / name, tmp_path / name)
    return tmp_path / "run_a", tmp_path / "run_b"


def test_report_html_is_self_contained_with_metrics_and_plots(runs):
    run_a, _ = runs
    summary = write_report(run_a)
    html = (run_a / "report.html").read_text(encoding="utf-8")
    md = (run_a / "report.md").read_text(encoding="utf-8")
    images = re.findall(r'src=.data:image/png;base64,([A-Za-z0-9+/=]+)', html)
    assert len(images) == 3
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert "http://" not in html and "https://" not in html  # nothing to fetch
    m = summary["metrics"]
    for key in ("page_recall@5", "page1_recall@5", "citations_matched", "groundedness", "any_citation"):
        cell = re.search(rf"data-metric='{re.escape(key)}'>([^<]+)<", html).group(1)
        assert cell == f"{m[key]:.3f}"
        assert f"{m[key]:.3f}" in md
    assert "Share of the gold cited pages" in html and "Worst questions" in md
    worst = [r for r in RunStore(run_a).read_results()]
    assert any(r["question"] in md for r in worst)


def test_paired_bootstrap_is_deterministic_and_brackets_the_delta():
    a = [0.0, 0.5, 1.0, 1.0, 0.0, 0.5]
    b = [1.0, 0.5, 1.0, 1.0, 0.5, 1.0]
    first, second = paired_bootstrap(a, b, seed=3), paired_bootstrap(a, b, seed=3)
    assert first == second
    assert first["delta"] == pytest.approx(2.0 / 6)
    assert first["low"] <= first["delta"] <= first["high"] and first["low"] >= 0.0
    same = paired_bootstrap(a, a)
    assert same == {"delta": 0.0, "low": 0.0, "high": 0.0}


def test_compare_runs_lists_questions_that_got_worse(runs):
    run_a, run_b = runs
    ra, rb = RunStore(run_a).read_results(), RunStore(run_b).read_results()
    result = compare_runs(ra, rb, k=5)
    assert result["paired_questions"] == len(ra)
    by_q_a = {r["qid"]: r["scores"]["page1_recall@5"] for r in ra if "page1_recall@5" in r.get("scores", {})}
    by_q_b = {r["qid"]: r["scores"]["page1_recall@5"] for r in rb if "page1_recall@5" in r.get("scores", {})}
    dropped = {q for q in by_q_a if by_q_b[q] < by_q_a[q]}
    listed = {w["qid"] for w in result["worse"] if "page1_recall@5" in w["drops"]}
    assert listed == dropped
    m = result["metrics"]["page1_recall@5"]
    assert m["delta"] == pytest.approx(sum(by_q_b.values()) / len(by_q_b) - sum(by_q_a.values()) / len(by_q_a))


def test_gates_parse_and_check():
    assert parse_gate("groundedness=0.8").metric == "groundedness"
    assert parse_gate("delta:page1_recall@5=-0.05").delta
    with pytest.raises(GateError, match="METRIC=VALUE"):
        parse_gate("groundedness")
    with pytest.raises(GateError, match="not a number"):
        parse_gate("groundedness=high")
    metrics = {"groundedness": 0.7, "latency_p95_s": 2.5, "abstention_rate": None}
    assert check_gates([parse_gate("groundedness=0.6")], metrics) == []
    assert check_gates([parse_gate("groundedness=0.8")], metrics) == ["groundedness = 0.7 is below 0.8"]
    assert check_gates([parse_gate("latency_p95_s=2")], metrics) == ["latency_p95_s = 2.5 is above 2"]
    assert "undefined" in check_gates([parse_gate("abstention_rate=0.5")], metrics)[0]
    with pytest.raises(GateError, match="unknown metric 'nope'"):
        check_gates([parse_gate("nope=1")], metrics)
    validate_gates([parse_gate("page1_recall@3=0.5"), parse_gate("groundedness=0.9")], k=3)
    with pytest.raises(GateError, match="unknown metric 'page1_recall@5'"):
        validate_gates([parse_gate("page1_recall@5=0.5")], k=3)
    with pytest.raises(GateError, match="only applies to `ondata eval compare`"):
        validate_gates([parse_gate("delta:groundedness=0")], k=5)
    validate_gates([parse_gate("delta:groundedness=0")], k=5, allow_delta=True)


def test_cli_report_and_compare_exit_codes(runs):
    run_a, run_b = runs
    runner = CliRunner()
    ok = runner.invoke(app, ["eval", "report", str(run_a), "--fail-under", "any_citation=0"])
    assert ok.exit_code == 0, ok.output
    assert (run_a / "report.html").is_file()
    failed = runner.invoke(app, ["eval", "report", str(run_a), "--fail-under", "groundedness=1.01"])
    assert failed.exit_code == 1
    assert "fail-under: groundedness =" in failed.output and "is below 1.01" in failed.output

    cmp_ok = runner.invoke(app, ["eval", "compare", str(run_a), str(run_b), "--fail-under", "delta:page1_recall@5=-1"])
    assert cmp_ok.exit_code == 0, cmp_ok.output
    assert "95% CI" in cmp_ok.output and "page1_recall@5" in cmp_ok.output
    cmp_fail = runner.invoke(app, ["eval", "compare", str(run_a), str(run_a), "--fail-under", "delta:groundedness=0.01"])
    assert cmp_fail.exit_code == 1 and "delta of groundedness = 0 is below 0.01" in cmp_fail.output
    bad = runner.invoke(app, ["eval", "report", str(run_a), "--fail-under", "bogus=1"])
    assert bad.exit_code != 0 and isinstance(bad.exception, (GateError, SystemExit))


def test_report_lines_show_page_ranges_of_chunks_spanning_pages():
    from eval.report import _cited_line, _sources_line

    record = {"citations": [{"ref": "[h.pdf#page=10]", "pages": "9-10"}, {"ref": "[t.docx]", "pages": ""}],
              "hits": [{"file": "h.pdf", "page_start": 9, "page_end": 10, "score": 0.5},
                       {"file": "t.docx", "page_start": None, "page_end": None, "score": 0.25}]}
    assert _cited_line(record) == "[h.pdf#page=10] (chunk pages 9-10), [t.docx]"
    assert _sources_line(record) == "h.pdf p9-10 (0.500), t.docx (0.250)"


def test_scorer_block_names_the_scorer_its_measured_domains_and_warns_outside_them():
    from eval import scorer_card

    config = {"scorer": "local", "scorer_card": {
        "name": "local", "version": "local:v9", "threshold": 0.5,
        "measured": {"scifact": {"label": "biomedical abstracts", "balanced_accuracy": 0.694, "std": 0.02, "auc": 0.778,
                                 "pairs": 919, "folds": 5, "how": "grouped CV"}}}}
    inside = scorer_card.scorer_block(config, {"scoring": {"pairs": 10, "seconds": 2.0, "pairs_per_s": 5.0, "in_domain": 0.8}})
    outside = scorer_card.scorer_block(config, {"scoring": {"pairs": 10, "seconds": 2.0, "pairs_per_s": 5.0, "in_domain": 0.2}})
    assert inside["warnings"] == [] and len(outside["warnings"]) == 1 and "20%" in outside["warnings"][0]
    md = "\n".join(scorer_card.render_markdown(outside))
    assert "`local:v9`" in md and "| biomedical abstracts | 0.694 ± 0.020 | 0.778 |" in md and "5.0 pairs/s" in md
    assert "Warning: Only 20%" in md and "Warning" in scorer_card.render_html(outside)


def test_report_lists_every_question_with_its_reason_and_never_a_correct_abstention_as_worst(runs):
    run_a, _ = runs
    write_report(run_a)
    html = (run_a / "report.html").read_text(encoding="utf-8")
    md = (run_a / "report.md").read_text(encoding="utf-8")
    records = RunStore(run_a).read_results()
    rows = re.findall(r"<tbody data-outcome='(\w+)' data-reasons='([\w ]*)'>", html)
    assert len(rows) == len(records)  # the drill-down has every question
    expected = sorted((outcome(r), " ".join(x["reason"] for x in diagnose(r))) for r in records)
    assert sorted(rows) == expected
    assert all(reasons for out, reasons in rows if out == "failed")
    # failing rows come first, correct abstentions last
    assert [out for out, _ in rows][:5] == ["failed"] * 5 and rows[-1][0] == "correct_abstention"
    declined = next(r for r in records if outcome(r) == "correct_abstention")
    worst = md.split("## Worst questions", 1)[1]
    assert declined["question"] not in worst
    assert "**abstained though the gold page was retrieved**" in worst and "**answered an unanswerable question**" in worst
    assert "<details>" in html and "<script>" in html and "<script src" not in html


def test_report_labels_recall_per_document_with_question_counts(runs):
    run_a, _ = runs
    write_report(run_a, plots=False)
    md = (run_a / "report.md").read_text(encoding="utf-8")
    records = RunStore(run_a).read_results()
    handbook = [r for r in records if any(g["file"] == "employee_handbook.pdf" for g in r["gold"])
                and "page1_recall@5" in r["scores"]]
    assert handbook
    mean = sum(r["scores"]["page1_recall@5"] for r in handbook) / len(handbook)
    assert f"| employee_handbook.pdf | {len(handbook)} | {mean:.3f} |" in md


def test_latency_leaves_the_warm_up_out(runs):
    run_a, _ = runs
    records = RunStore(run_a).read_results()
    first = records[0]["latency_ms"]["total"] / 1000  # a run stored before the flag: the first answered question
    rest = sorted(r["latency_ms"]["total"] / 1000 for r in records[1:])
    summary = write_report(run_a)
    assert summary["metrics"]["warmup_s"] == pytest.approx(first)
    assert len(rest) == 7 and summary["metrics"]["latency_p50_s"] == pytest.approx(rest[3])
    flagged = [dict(r, warmup=(i == 3)) for i, r in enumerate(records)]
    assert summarize(flagged, k=5)["metrics"]["warmup_s"] == pytest.approx(records[3]["latency_ms"]["total"] / 1000)
    assert "Warm-up: the first question took" in (run_a / "report.html").read_text(encoding="utf-8")


def test_compare_uses_the_reports_denominators(runs):
    run_a, run_b = runs
    ra, rb = RunStore(run_a).read_results(), RunStore(run_b).read_results()
    result = compare_runs(ra, rb, k=5)
    report_a, report_b = summarize(ra, k=5)["metrics"], summarize(rb, k=5)["metrics"]
    for key in ("any_citation", "citations_matched", "page1_recall@5", "groundedness", "abstention_rate",
                "false_abstention_rate"):
        assert result["metrics"][key]["a"] == pytest.approx(report_a[key]), key
        assert result["metrics"][key]["b"] == pytest.approx(report_b[key]), key
    # any_citation counts answerable questions only, in both
    answerable = [r for r in ra if r["answerable"]]
    assert result["metrics"]["any_citation"]["n"] == len(answerable)


def test_compare_lists_per_question_changes_with_reasons(runs):
    run_a, run_b = runs
    result = compare_runs(RunStore(run_a).read_results(), RunStore(run_b).read_results(), k=5)
    by_line = {q["line"]: q for q in result["questions"]}
    assert by_line[5]["change"] == "broke" and [x["reason"] for x in by_line[5]["reasons_b"]] == ["not_retrieved"]
    assert by_line[7]["change"] == "fixed" and by_line[7]["outcome_b"] == "correct_abstention"
    assert by_line[1]["change"] == "changed"  # fails in both: not cited in A, not retrieved in B
    assert by_line[6]["change"] == "same" and by_line[6]["reasons_a"] == by_line[6]["reasons_b"] == []
    assert [q["change"] for q in result["questions"]][0] == "broke"


def test_compare_marks_metrics_when_configurations_differ(runs):
    run_a, run_b = runs
    ra, rb = RunStore(run_a).read_results(), RunStore(run_b).read_results()
    ca = RunStore(run_a).read_config()
    same = compare_runs(ra, rb, config_a=ca, config_b=ca)
    assert same["differences"] == {"watched": [], "other": []}
    assert all(m["comparable"] and m["note"] is None for m in same["metrics"].values())

    # B retrieved 3: retrieval is recomputed at k=3 from A's stored hits, nothing dropped
    top3 = compare_runs(ra, rb, config_a=ca, config_b={**ca, "top": 3})
    assert top3["k"] == 3 and [d["key"] for d in top3["differences"]["watched"]] == ["top"]
    recall = top3["metrics"]["page1_recall@3"]
    assert recall["comparable"] and "recomputed at k=3" in recall["note"]
    expected = [retrieval_scores(r["gold"], r["hits"][:3], k=3)["page1_recall@3"] for r in ra if r["answerable"] and r["gold"]]
    assert recall["a"] == pytest.approx(sum(expected) / len(expected))
    assert top3["metrics"]["citations_matched"]["note"] is None

    scorer = compare_runs(ra, rb, config_a=ca, config_b={**ca, "scorer": "llm", "scorer_version": "llm:v1:gpt"})
    flagged = {key for key, m in scorer["metrics"].items() if not m["comparable"]}
    assert flagged == {"groundedness", "groundedness_pass_rate", "citation_recall", "citation_precision"}
    assert not any(m["significant"] for key, m in scorer["metrics"].items() if key in flagged)

    data = compare_runs(ra, rb, config_a=ca, config_b={**ca, "dataset": {"path": "other.jsonl", "sha256": "f" * 64}})
    assert all(not m["comparable"] for m in data["metrics"].values())
    assert data["metrics"]["any_citation"]["a"] is not None  # marked, not dropped


def test_cli_compare_html_and_json(runs, tmp_path):
    run_a, run_b = runs
    config = json.loads((run_b / "config.json").read_text())
    (run_b / "config.json").write_text(json.dumps({**config, "top": 3}))
    out = tmp_path / "cmp" / "compare.html"
    result = CliRunner().invoke(app, ["eval", "compare", str(run_a), str(run_b), "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.index("the runs' configurations differ") < result.output.index("95% CI")
    assert "top (k): A 5 -> B 3" in result.output and "page1_recall@3" in result.output
    page = out.read_text(encoding="utf-8")
    assert "id='config-differs'" in page and "recomputed at k=3" in page and "http" not in page
    assert len(re.findall(r"<tbody data-change='(\w+)'", page)) == 8
    as_json = CliRunner().invoke(app, ["eval", "compare", str(run_a), str(run_b), "--json"])
    parsed = json.loads(as_json.stdout)
    assert parsed["k"] == 3 and parsed["metrics"]["any_citation"]["n"] == 6
