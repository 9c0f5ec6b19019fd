"""Running an evaluation: every question of a QA set through an answer function, scored, stored.

``run_evaluation`` is independent of how answers are produced: it takes ``answer_fn(item) ->
Answer`` (``make_answer_fn`` builds one from a retriever and a chat model with
``retrieval.answer.answer_question``). Records are appended to the run folder as they are made,
so an interrupted run resumes where it stopped; a failing question is recorded with its error and
retried on the next run, and never stops the run. The first question a run process answers is
flagged ``"warmup": true`` (it carries the model load): latency percentiles leave it out and the
report shows it separately.
"""

from __future__ import annotations

import logging
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from eval.datasets import QAItem, file_sha256
from eval.errors import EvalError
from eval.scoring import answer_record, error_record, score_record, summarize
from eval.store import RunStore
from indexers.errors import OndataError
from indexers.records import Groups, check_groups

log = logging.getLogger(__name__)

AnswerFn = Callable[[QAItem], Any]
ProgressFn = Callable[[int, int, QAItem | None], None]


def git_commit(path: str | Path = ".") -> str | None:
    """The current git commit of ``path`` (with ``-dirty`` when there are uncommitted changes), or None."""
    try:
        head = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def make_config(*, dataset: str | Path, top: int, strictness: int, scorer: str, settings: Mapping[str, Any],
                extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The run's configuration: what must match to resume, plus ``meta`` (not compared)."""
    return {
        "dataset": {"path": str(dataset), "sha256": file_sha256(dataset)},
        "top": top,
        "strictness": strictness,
        "scorer": scorer,
        "settings": dict(settings),
        **dict(extra or {}),
        "meta": {"created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "git_commit": git_commit(Path(__file__).resolve().parents[1])},
    }


def make_answer_fn(*, retriever: Any, answerer: Any, top: int, strictness: int, in_scope: bool = True,
                   groups: Groups = ()) -> AnswerFn:
    """``answer_fn`` over ``retrieval.answer.answer_question``.

    Each question asks with its QA row's ``groups``; a row without ``groups`` asks with ``groups``
    (the run's: ``()`` public-only by default, ``ALL_GROUPS`` to see everything).
    """
    from retrieval.answer import answer_question

    run_groups = check_groups(groups, what="the run's groups")

    def answer_fn(item: QAItem) -> Any:
        return answer_question(item.question, retriever=retriever, answerer=answerer, top=top,
                               top_n_documents=top, strictness=strictness, in_scope=in_scope,
                               groups=run_groups if item.groups is None else item.groups)

    return answer_fn


def run_evaluation(
    items: Sequence[QAItem],
    *,
    answer_fn: AnswerFn,
    scorer: Any,
    out: str | Path,
    config: Mapping[str, Any],
    k: int = 5,
    on_progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Answer and score every question not yet in ``out``; write ``summary.json``; return the summary."""
    store = RunStore(out)
    done = store.start(config)
    todo = [item for item in items if item.qid not in done]
    total = len(items)
    completed = total - len(todo)
    if on_progress:
        on_progress(completed, total, None)
    warmup = True  # the first question this process answers also loads the models
    for item in todo:
        try:
            answer = answer_fn(item)
            record = score_record(answer_record(item, answer, k=k), scorer=scorer, k=k)
            if warmup:
                record["warmup"] = True
                warmup = False
        except (OndataError, OSError, ValueError) as exc:
            log.warning("question on line %d failed: %s", item.line, exc)
            record = error_record(item, exc)
        store.append(record)
        completed += 1
        if on_progress:
            on_progress(completed, total, item)
    wanted = {item.qid for item in items}
    records = [r for r in store.read_results() if r["qid"] in wanted]
    summary = summarize(records, k=k)
    summary["run"] = str(out)
    summary["scorer"] = getattr(scorer, "name", type(scorer).__name__)
    if hasattr(scorer, "failures"):
        summary["judge"] = {"calls": getattr(scorer, "calls", None), "failures": scorer.failures}
    store.write_summary(summary)
    return summary


def rescore(out: str | Path, *, scorer: Any, k: int | None = None,
            config_updates: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Recompute scores and summary of an existing run (e.g. with another scorer) from its stored answers.

    ``config_updates`` (e.g. the new scorer's name and version) are written into ``config.json`` so
    that a later resume compares against the scorer that made the stored scores.
    """
    store = RunStore(out)
    config = store.read_config()
    if config_updates:
        config.update(config_updates)
        store.write_config(config)
    k = k or int(config.get("top", 5))
    records = [score_record(r, scorer=scorer, k=k) if not r.get("error") else r for r in store.read_results()]
    if not records:
        raise EvalError(f"{out} has no results to score")
    store.write_results(records)
    summary = summarize(records, k=k)
    summary["run"] = str(out)
    summary["scorer"] = getattr(scorer, "name", type(scorer).__name__)
    store.write_summary(summary)
    return summary
