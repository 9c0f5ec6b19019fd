"""`ondata eval run --scorer both`: the local scorer and the LLM judge (through the openai SDK against the
in-repo Azure OpenAI test double) on the same claims, their agreement (Cohen's kappa) in summary and report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval.metrics.answers import scorer_agreement
from ondata.cli import app
from tests.servers.azure_openai import ChatReply, FakeAzureOpenAI

ROOT = Path(__file__).resolve().parents[1]
QA = ROOT / "data" / "samples" / "qa.jsonl"
DOCS = ROOT / "data" / "samples" / "docs"


def test_scorer_agreement_is_cohens_kappa():
    from sklearn.metrics import cohen_kappa_score

    pairs = [(True, True), (True, False), (False, False), (True, True), (False, True), (False, False)]
    result = scorer_agreement(pairs)
    assert result["kappa"] == pytest.approx(cohen_kappa_score([a for a, _ in pairs], [b for _, b in pairs]))
    assert result["agreement"] == pytest.approx(4 / 6) and result["claims"] == 6 and result["a_grounded"] == 0.5
    assert scorer_agreement([(True, True), (True, True)])["kappa"] is None  # chance explains a constant verdict
    assert scorer_agreement([])["agreement"] is None


def _judge_reply(body: dict) -> str:
    """The test double's judge: 'supported' (5) when the claim names a number, 'not supported' (1) otherwise."""
    claim = body["messages"][-1]["content"].rsplit("CLAIM:", 1)[-1]
    return "Rating: 5" if re.search(r"\d", claim) else "Rating: 1"


@pytest.mark.slow
def test_eval_run_scorer_both_reports_kappa_against_the_test_double(tmp_path, monkeypatch):
    if not QA.is_file() or not DOCS.is_dir():
        pytest.skip("the sample corpus is not there")
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(QA.read_text(encoding="utf-8").splitlines()[:4]) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    args = ["eval", "run", "--dataset", str(qa), "--profile", "local", "--embedder", "hashing",
            "--index", str(tmp_path / "index"), "--docs", str(DOCS), "--out", str(out), "--scorer", "both"]
    with FakeAzureOpenAI(api_key="judge-key") as server:
        server.default_reply = ChatReply(content=_judge_reply)
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.url)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", "judge-key")
        result = CliRunner().invoke(app, args)
        calls = len(server.chat_calls)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    claims = [c for r in records for c in r.get("claims", [])]
    assert claims and all("llm_judge" in c["others"] for c in claims)
    assert calls == sum(r["scoring"]["pairs"] for r in records)  # the judge saw every claim/source pair
    expected = scorer_agreement([(c["supported"], c["others"]["llm_judge"]["supported"]) for c in claims])
    summary = json.loads((out / "summary.json").read_text())
    agreement = summary["scorer_agreement"]["llm_judge"]
    assert agreement["claims"] == len(claims) and agreement["failures"] == 0
    assert agreement["kappa"] == pytest.approx(expected["kappa"]) if expected["kappa"] is not None else agreement["kappa"] is None
    # the judge's own verdicts are what the double said
    assert all(c["others"]["llm_judge"]["supported"] == bool(re.search(r"\d", c["text"])) for c in claims)
    config = json.loads((out / "config.json").read_text())
    assert config["scorer"] == "both" and config["scorer_card"]["beside"] == "llm_judge"
    report = (out / "report.md").read_text()
    assert "## Groundedness scorer" in report and "Agreement with llm_judge: Cohen's kappa" in report
    assert "judge-key" not in (out / "config.json").read_text() + report


def test_scorer_both_without_a_deployment_scores_locally_and_says_so(tmp_path, monkeypatch, caplog):
    from ondata.commands.evaluation import build_scorer
    from ondata.settings import Settings

    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    monkeypatch.delenv("ONDATA_AZURE_OPENAI_ENDPOINT", raising=False)
    with caplog.at_level("WARNING"):
        scorer = build_scorer("both", Settings(embedder="hashing"))
    assert scorer.name == "local" and "no agreement to report" in caplog.text
