"""The Prefect evaluation flow (run, then report) under a temporary Prefect server."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from eval.flows import evaluation_flow  # noqa: E402
from eval.runner import make_config  # noqa: E402
from tests.test_eval_runner import OverlapScorer, answers  # noqa: E402


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_flow_runs_then_reports(harness, tmp_path):
    dataset = tmp_path / "qa.jsonl"
    dataset.write_text(
        json.dumps({"question": "How much leave?", "truth": "28 days [handbook.pdf#page=4]"}) + "\n"
        + json.dumps({"question": "Who is the CEO?", "truth": "", "answerable": False}) + "\n",
        encoding="utf-8",
    )
    table = answers()
    out = tmp_path / "run"
    config = make_config(dataset=dataset, top=5, strictness=3, scorer="overlap", settings={})
    summary = evaluation_flow(str(dataset), str(out), answer_fn=lambda item: table[item.question],
                              scorer=OverlapScorer(), config=config, k=5, plots=False)
    assert summary["counts"]["questions"] == 2
    assert summary["metrics"]["page_recall@5"] == 1.0 and summary["metrics"]["abstention_rate"] == 1.0
    assert (out / "report.html").is_file() and "Headline metrics" in (out / "report.md").read_text()
