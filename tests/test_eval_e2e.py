"""The whole harness through the CLI on the sample corpus: ingest, answer, score, report, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ondata.cli import app

ROOT = Path(__file__).resolve().parents[1]
QA = ROOT / "data" / "samples" / "qa.jsonl"
DOCS = ROOT / "data" / "samples" / "docs"


@pytest.mark.slow
def test_eval_run_on_samples_local_profile(tmp_path):
    if not QA.is_file() or not DOCS.is_dir():
        pytest.skip("the sample corpus is not there")
    out = tmp_path / "run"
    args = ["eval", "run", "--dataset", str(QA), "--profile", "local", "--index", str(tmp_path / "index"),
            "--docs", str(DOCS), "--out", str(out), "--fail-under", "doc_recall@5=0.5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    docs = sum(1 for p in DOCS.iterdir() if p.is_file() and not p.name.endswith(".meta.json"))
    assert f"{docs} documents listed: {docs} new" in result.output and "ingesting" in result.output  # --docs progress
    n = sum(1 for line in QA.read_text().splitlines() if line.strip())
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == n and all(not r.get("error") for r in records)
    assert [r["line"] for r in records if r.get("warmup")] == [records[0]["line"]]  # the model load, reported apart
    summary = json.loads((out / "summary.json").read_text())
    m = summary["metrics"]
    assert m["doc_recall@5"] >= 0.5 and 0 <= m["groundedness"] <= 1 and m["abstention_rate"] is not None
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["profile"] == "local" and "azure_openai_api_key" not in config["settings"]
    assert config["groups"] == []  # rows without groups ask public-only (no --group / --all-groups)
    assert "data:image/png;base64," in (out / "report.html").read_text()
    # a re-run resumes: nothing left to answer, same summary
    again = CliRunner().invoke(app, args[:-2] + ["--no-report"])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "summary.json").read_text())["metrics"]["doc_recall@5"] == m["doc_recall@5"]
    assert len((out / "results.jsonl").read_text().splitlines()) == n
