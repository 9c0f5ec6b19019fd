"""The evaluation runner: records and scores, resumability, refusal on a changed config, error rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.datasets import load_qa
from eval.errors import RunStoreError
from eval.groundedness import ScoreResult
from eval.runner import make_config, run_evaluation
from eval.store import RunStore
from indexers.records import Chunk, SearchHit
from retrieval.chat_answerer import is_abstention
from retrieval.citations import parse_citations
from retrieval.errors import RetrievalError
from retrieval.prompt import NOT_AVAILABLE
from retrieval.records import Answer, Citation, RetrievedDocument


class OverlapScorer:
    """Test double: a claim is supported when all its words longer than 3 letters appear in the sources."""

    name = "overlap"

    def __init__(self):
        self.calls = 0

    def score_many(self, pairs):
        out = []
        for claim, sources in pairs:
            self.calls += 1
            words = {w.strip(".,").lower() for w in claim.split() if len(w.strip(".,")) > 3}
            text = " ".join(sources).lower()
            ok = all(w in text for w in words)
            out.append(ScoreResult(score=1.0 if ok else 0.0, supported=ok))
        return out

    def score(self, claim, sources):
        return self.score_many([(claim, sources)])[0]


def chunk(file, page, content):
    return Chunk(id=f"{file}-{page}", source_id=file, content=content, chunk_index=page, filepath=file,
                 page_start=page, page_end=page)


def make_answer(content, chunks, *, total_ms=100.0):
    """The Answer a chat model's reply ``content`` over ``chunks`` (as [doc1]..[docN]) gives."""
    hits = [SearchHit(chunk=c, score=1.0 / (i + 1)) for i, c in enumerate(chunks)]
    parsed = parse_citations(content, [Citation.from_hit(h) for h in hits])
    return Answer(
        content=parsed.text,
        citations=parsed.citations,
        claims=parsed.claims,
        abstained=is_abstention(content),
        search_query="q",
        retrieved=tuple(RetrievedDocument(h, rank=i, search_query="q") for i, h in enumerate(hits)),
        latency_ms={"total": total_ms},
    )


LEAVE = chunk("handbook.pdf", 4, "Staff get 28 days of annual leave. Leave requests go to the line manager.")
BIKES = chunk("fleet.pdf", 2, "The fleet has 6,800 electric bikes.")


def answers():
    return {
        "How much leave?": make_answer("Staff get 28 days of annual leave [doc1]. Unicorns approve requests [doc1].", [LEAVE, BIKES], total_ms=200),
        "How many bikes?": make_answer("The fleet has 6,800 electric bikes [doc2].", [LEAVE, BIKES], total_ms=400),
        "Who is the CEO?": make_answer(NOT_AVAILABLE, [BIKES], total_ms=300),
    }


@pytest.fixture()
def dataset(tmp_path):
    path = tmp_path / "qa.jsonl"
    rows = [
        {"question": "How much leave?", "truth": "28 days [handbook.pdf#page=4]"},
        {"question": "How many bikes?", "truth": "6,800 [fleet.pdf#page=2] [handbook.pdf#page=9]"},
        {"question": "Who is the CEO?", "truth": "", "answerable": False},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def config_for(dataset, **over):
    base = dict(dataset=dataset, top=5, strictness=3, scorer="overlap", settings={"profile": "local"})
    base.update(over)
    return make_config(**base)


def test_run_scores_and_summary(tmp_path, dataset):
    table = answers()
    out = tmp_path / "run"
    summary = run_evaluation(load_qa(dataset), answer_fn=lambda item: table[item.question], scorer=OverlapScorer(),
                             out=out, config=config_for(dataset), k=5)
    records = {r["question"]: r for r in RunStore(out).read_results()}
    leave = records["How much leave?"]["scores"]
    assert leave["groundedness"] == 0.5 and leave["citation_recall"] == 0.5 and leave["citation_precision"] == 0.5
    assert leave["citations_matched"] == 1.0 and leave["any_citation"] is True and leave["page_recall@5"] == 1.0
    bikes = records["How many bikes?"]["scores"]
    assert bikes["citations_matched"] == 0.5 and bikes["page_recall@5"] == 0.5 and bikes["page_mrr"] == 0.5
    assert bikes["citations_matched_pm1"] == 0.5
    # the claims and their pages are the Answer's, stored and judged
    claims = records["How much leave?"]["claims"]
    assert [(c["text"], c["docs"], c["pages"], c["supported"]) for c in claims] == [
        ("Staff get 28 days of annual leave.", [1], [4], True), ("Unicorns approve requests.", [1], [4], False)]
    assert records["Who is the CEO?"]["abstained"] is True and records["Who is the CEO?"]["claims"] == []
    m = summary["metrics"]
    assert m["groundedness"] == pytest.approx(0.75)
    assert m["page_recall@5"] == pytest.approx(0.75)
    assert m["citations_matched"] == pytest.approx(0.75) and m["citations_matched_pm1"] == pytest.approx(0.75)
    assert m["abstention_rate"] == 1.0 and m["false_abstention_rate"] == 0.0
    # the first question answered (200 ms) carried the model load: reported apart, not in the percentiles
    assert m["warmup_s"] == pytest.approx(0.2) and m["latency_p50_s"] == pytest.approx(0.35)
    assert [r["question"] for r in records.values() if r.get("warmup")] == ["How much leave?"]
    assert json.loads((out / "summary.json").read_text())["metrics"]["groundedness"] == pytest.approx(0.75)
    assert "sha256" in json.loads((out / "config.json").read_text())["dataset"]


def test_resume_skips_done_and_retries_errors(tmp_path, dataset):
    table = answers()
    calls = []

    def flaky(item):
        calls.append(item.question)
        if item.question == "How many bikes?" and calls.count(item.question) == 1:
            raise RetrievalError("search service unavailable")
        return table[item.question]

    out = tmp_path / "run"
    items = load_qa(dataset)
    first = run_evaluation(items[:2], answer_fn=flaky, scorer=OverlapScorer(), out=out, config=config_for(dataset))
    assert first["metrics"]["errors"] == 1
    second = run_evaluation(items, answer_fn=flaky, scorer=OverlapScorer(), out=out, config=config_for(dataset))
    assert calls == ["How much leave?", "How many bikes?", "How many bikes?", "Who is the CEO?"]
    assert second["metrics"]["errors"] == 0 and second["counts"]["questions"] == 3
    assert len(RunStore(out).read_results()) == 3


def test_resume_refuses_a_different_config(tmp_path, dataset):
    table = answers()
    out = tmp_path / "run"
    run_evaluation(load_qa(dataset), answer_fn=lambda i: table[i.question], scorer=OverlapScorer(), out=out,
                   config=config_for(dataset))
    with pytest.raises(RunStoreError, match=r"different configuration \(top\)"):
        run_evaluation(load_qa(dataset), answer_fn=lambda i: table[i.question], scorer=OverlapScorer(), out=out,
                       config=config_for(dataset, top=3))


def test_each_question_asks_with_its_rows_groups_else_the_runs(tmp_path):
    from test_retrieval_corpus import build_index

    from eval.datasets import QAItem
    from eval.runner import make_answer_fn
    from indexers.records import ALL_GROUPS
    from retrieval.extractive import ExtractiveAnswerer
    from retrieval.retriever import Retriever

    index, embedder = build_index(tmp_path / "ix")
    retriever = Retriever(index, embedder)
    question = "What is the salary band L3 range?"  # answered by salaries.xlsx, groups ("hr",)
    anyone = QAItem(question=question, truth="t [salaries.xlsx]")  # the row names no groups
    member = QAItem(question=question, truth="t [salaries.xlsx]", groups=("hr",))
    outsider = QAItem(question=question, truth="t [salaries.xlsx]", groups=("it",))

    def seen(item, **kw):
        fn = make_answer_fn(retriever=retriever, answerer=ExtractiveAnswerer(), top=10, strictness=1, **kw)
        return {d.hit.chunk.source_id for d in fn(item).retrieved}

    assert "salaries.xlsx" not in seen(anyone)  # the run's default: public-only
    assert "salaries.xlsx" in seen(anyone, groups=ALL_GROUPS)
    assert "salaries.xlsx" in seen(anyone, groups=("hr",))
    assert "salaries.xlsx" in seen(member)
    assert "salaries.xlsx" not in seen(outsider, groups=ALL_GROUPS)  # the row's groups win over the run's
    with pytest.raises(TypeError, match="the run's groups"):
        make_answer_fn(retriever=retriever, answerer=ExtractiveAnswerer(), top=5, strictness=1, groups=None)
    index.close()
