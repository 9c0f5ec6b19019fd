"""Prefect flow: evaluate, then report — thin wrappers over ``eval.runner`` and ``eval.report``.

The flow takes already-built objects (the answer function over a retriever and chat model, and a
groundedness scorer), so it can be scheduled after an ingestion flow by the composition root
(``ondata``), which builds them from settings. Tasks do not cache (their inputs are live objects).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from eval.datasets import load_qa
from eval.report import write_report
from eval.runner import run_evaluation

log = logging.getLogger(__name__)


@task(name="load-qa-set", cache_policy=NO_CACHE)
def load_dataset_task(dataset: str) -> list:
    return load_qa(dataset)


@task(name="run-evaluation", cache_policy=NO_CACHE)
def run_task(items: list, *, answer_fn: Any, scorer: Any, out: str, config: Mapping[str, Any], k: int) -> dict:
    return run_evaluation(items, answer_fn=answer_fn, scorer=scorer, out=out, config=config, k=k)


@task(name="write-report", cache_policy=NO_CACHE)
def report_task(out: str, *, plots: bool = True) -> dict:
    write_report(out, plots=plots)
    return {"markdown": str(Path(out) / "report.md"), "html": str(Path(out) / "report.html")}


@flow(name="ondata-evaluation", validate_parameters=False)
def evaluation_flow(dataset: str, out: str, *, answer_fn: Any, scorer: Any, config: Mapping[str, Any], k: int = 5,
                    report: bool = True, plots: bool = True) -> dict:
    """Answer and score every question of ``dataset`` into ``out``; then write the report. Returns the summary."""
    items = load_dataset_task(str(dataset))
    summary = run_task(items, answer_fn=answer_fn, scorer=scorer, out=str(out), config=config, k=k)
    if report:
        summary = dict(summary, report=report_task(str(out), plots=plots))
    return summary
