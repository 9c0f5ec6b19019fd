"""The HTML report and the comparison page in headless Chromium at 1280 px, as a reader sees them.

Each test fails on horizontal overflow, an image that did not load or a script error, drives the
sort and filter controls, and writes screenshots to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from eval.compare import compare_runs
from eval.diagnosis import diagnose, outcome
from eval.report import render_compare_html, write_report
from eval.store import RunStore
from tests.browser import broken_images, horizontal_overflow, screenshot, visible_rows

DATA = Path(__file__).resolve().parent / "data" / "eval"
LONG = "https://intranet.example/" + "very-long-path-segment-" * 20 + "end.pdf"


@pytest.fixture()
def runs(tmp_path):
    for name in ("run_a", "run_b"):
        shutil.copytree(DATA / name, tmp_path / name)
    # a question with long unbreakable text (a URL, a long file name) must not widen the page
    store = RunStore(tmp_path / "run_a")
    records = store.read_results()
    records[0] = {**records[0], "answer": records[0]["answer"] + " " + LONG,
                  "hits": [{**records[0]["hits"][0], "file": LONG}] + records[0]["hits"][1:]}
    store.write_results(records)
    return tmp_path / "run_a", tmp_path / "run_b"


def _lines(page, table_id):
    """The line numbers of the visible questions, in display order."""
    return page.evaluate(f"() => Array.from(document.querySelectorAll('#{table_id} > tbody'))"
                         ".filter(b => !b.hidden).map(b => parseInt(b.rows[0].cells[0].textContent))")


def test_report_fits_1280_loads_its_plots_and_sorts_and_filters(runs, browser_page):
    run_a, _ = runs
    write_report(run_a)
    records = RunStore(run_a).read_results()
    page = browser_page
    page.goto((run_a / "report.html").as_uri())
    assert horizontal_overflow(page) == []
    assert page.evaluate("() => document.images.length") == 3 and broken_images(page) == []
    screenshot(page, "report")
    assert visible_rows(page, "questions") == len(records)

    # sort by line: ascending, then descending
    header = page.locator("#questions th", has_text="line")
    header.click()
    assert _lines(page, "questions") == sorted(r["line"] for r in records)
    header.click()
    assert _lines(page, "questions") == sorted((r["line"] for r in records), reverse=True)

    # filter by failure reason (the select and the link in "Why questions failed")
    wanted = sorted(r["line"] for r in records if any(x["reason"] == "abstained_with_gold" for x in diagnose(r)))
    page.select_option("form[data-filters=questions] select[name=reason]", "abstained_with_gold")
    assert sorted(_lines(page, "questions")) == wanted
    assert page.locator("form[data-filters=questions] .count").inner_text() == f"showing {len(wanted)} of {len(records)}"
    page.select_option("form[data-filters=questions] select[name=reason]", "")
    page.click("a[data-set='outcome=correct_abstention']")
    assert sorted(_lines(page, "questions")) == sorted(r["line"] for r in records if outcome(r) == "correct_abstention")
    page.select_option("form[data-filters=questions] select[name=outcome]", "")

    # filter by metric: questions whose page recall@5 (±1) is at most 0.5
    page.select_option("form[data-filters=questions] select[name=metric]", "page1_recall@5")
    page.fill("form[data-filters=questions] input[name=max]", "0.5")
    low = sorted(r["line"] for r in records if (r.get("scores") or {}).get("page1_recall@5") is not None
                 and r["scores"]["page1_recall@5"] <= 0.5)
    assert sorted(_lines(page, "questions")) == low
    page.fill("form[data-filters=questions] input[name=max]", "")

    # open the long row: its details stay inside the page
    page.locator("#questions tbody details summary").first.click()
    assert horizontal_overflow(page) == []
    page.locator("#questions").scroll_into_view_if_needed()
    screenshot(page, "report-questions", full_page=False)
    assert page.console_errors == []


def test_compare_page_shows_differences_first_and_filters_changes(runs, browser_page, tmp_path):
    run_a, run_b = runs
    a, b = RunStore(run_a), RunStore(run_b)
    config_b = {**b.read_config(), "top": 3, "scorer": "llm", "scorer_version": "llm:v1"}
    result = compare_runs(a.read_results(), b.read_results(), config_a=a.read_config(), config_b=config_b)
    out = tmp_path / "compare.html"
    out.write_text(render_compare_html(result, name_a="run_a", name_b="run_b", config_a=a.read_config(), config_b=config_b),
                   encoding="utf-8")
    page = browser_page
    page.goto(out.as_uri())
    assert horizontal_overflow(page) == [] and broken_images(page) == []
    block, metrics = page.locator("#config-differs"), page.locator("#metrics")
    assert block.is_visible() and block.bounding_box()["y"] < metrics.bounding_box()["y"]
    assert "judged by different groundedness scorers" in block.inner_text()
    assert page.locator("#metrics tr.nc").count() == 4  # the judged metrics, marked, still listed
    screenshot(page, "compare")

    broke = sorted(q["line"] for q in result["questions"] if q["change"] == "broke")
    assert broke
    page.select_option("form[data-filters=changes] select[name=change]", "broke")
    assert sorted(_lines(page, "changes")) == broke
    page.select_option("form[data-filters=changes] select[name=change]", "")
    page.locator("#changes th", has_text="line").click()
    assert _lines(page, "changes") == sorted(q["line"] for q in result["questions"])
    page.locator("#changes").scroll_into_view_if_needed()
    screenshot(page, "compare-questions", full_page=False)
    assert page.console_errors == []
    json.dumps(result)  # the comparison is plain data
