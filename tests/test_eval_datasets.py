"""QA set and BEIR loaders: gold-citation parsing and one-sentence errors naming file and line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from eval.datasets import GoldCitation, describe_lines, load_beir_corpus, load_beir_qrels, load_beir_queries, load_qa, parse_citations
from eval.errors import DatasetError
from ondata.settings import shared_datasets_dir


def write(tmp_path: Path, lines: list, name: str = "qa.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines), encoding="utf-8")
    return path


def test_parse_citations_pages_files_and_duplicates():
    text = "A [x.pdf#page=3]. B [y.docx] and again [x.pdf#page=3], C [x.pdf#page=12] but not [doc1] or [note]."
    assert parse_citations(text) == (GoldCitation("x.pdf", 3), GoldCitation("y.docx", None), GoldCitation("x.pdf", 12))


def test_load_qa_fields(tmp_path):
    path = write(tmp_path, [
        {"question": "Q1?", "truth": "T [a.pdf#page=2]", "evidence": "e"},
        "",
        {"question": "Q2?", "truth": "", "answerable": False, "groups": ["hr"]},
    ])
    items = load_qa(path)
    assert [i.line for i in items] == [1, 3]
    assert items[0].gold == (GoldCitation("a.pdf", 2),) and items[0].answerable and items[0].extra == {"evidence": "e"}
    assert items[1].answerable is False and items[1].groups == ("hr",) and items[1].gold == ()
    assert items[0].qid != items[1].qid and len(items[0].qid) == 16


@pytest.mark.parametrize(
    "row, problem",
    [
        ("{not json", "line 2: not valid JSON"),
        ({"truth": "x"}, "line 2: 'question' must be a non-empty string"),
        ({"question": "Q?", "truth": 3}, "line 2: 'truth' must be a string"),
        ({"question": "Q?", "truth": "x", "answerable": "no"}, "line 2: 'answerable' must be true or false"),
        ({"question": "Q?", "truth": ""}, "line 2: an answerable question needs a non-empty 'truth'"),
        ({"question": "Q?", "truth": "t", "groups": "hr"}, "line 2: 'groups' must be a list of non-empty strings, got \"hr\""),
        ({"question": "Q?", "truth": "t", "groups": None}, "line 2: 'groups' must be a list of non-empty strings, got null"),
        ({"question": "Q?", "truth": "t", "groups": ["hr", ""]}, "line 2: 'groups' must be a list of non-empty strings"),
        ({"question": "Q?", "truth": "t", "groups": [1]}, "line 2: 'groups' must be a list of non-empty strings, got [1]"),
        ({"question": "Q?", "truth": "t [a.pdf#page=x]"}, "line 2: citation page 'x' is not a positive integer"),
        ({"question": "Q1?", "truth": "again [a.pdf]"}, "line 2: duplicate question (first seen on line 1)"),
        ({"question": "Q?", "truth": "an answer without citation"},
         "line 2: the row has no gold citation ([file#page=N] in 'truth') and no 'answerable' flag"),
        ([1, 2], "line 2: expected a JSON object, got list"),
    ],
)
def test_malformed_rows_name_file_line_and_problem(tmp_path, row, problem):
    path = write(tmp_path, [{"question": "Q1?", "truth": "fine [a.pdf]"}, row])
    with pytest.raises(DatasetError) as info:
        load_qa(path)
    assert str(path) in str(info.value) and problem in str(info.value)


def test_ungraded_rows_are_refused_or_counted(tmp_path):
    rows = [{"question": "Q1?", "truth": "T [a.pdf#page=2]"},
            {"question": "Q2?", "truth": "no citation here"},
            {"question": "Q3?", "truth": "explicitly answerable, no gold", "answerable": True},
            {"question": "Q4?", "truth": "neither"}]
    path = write(tmp_path, rows)
    with pytest.raises(DatasetError, match=r"line 2: the row has no gold citation .*--allow-ungraded"):
        load_qa(path)
    items = load_qa(path, allow_ungraded=True)
    assert [i.ungraded for i in items] == [False, True, False, True]
    assert all(i.answerable and i.gold == () for i in items[1:])
    assert describe_lines([i.line for i in items if i.ungraded]) == "lines 2, 4"
    assert describe_lines(list(range(1, 14)), limit=3) == "lines 1, 2, 3, ... (+10 more)"
    # the CLI refuses such a dataset before loading any model, naming the line
    from typer.testing import CliRunner

    from ondata.cli import app

    result = CliRunner().invoke(app, ["eval", "run", "--dataset", str(path), "--out", str(tmp_path / "run"),
                                      "--index", str(tmp_path / "none")])
    assert result.exit_code != 0 and isinstance(result.exception, DatasetError)
    assert f"{path}, line 2: the row has no gold citation" in str(result.exception)



def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_qa(tmp_path / "nope.jsonl")
    with pytest.raises(DatasetError, match="no rows"):
        load_qa(write(tmp_path, [""]))


def test_beir_loaders(tmp_path):
    corpus = write(tmp_path, [{"_id": "d1", "title": "T", "text": "body"}, {"_id": 2, "text": "b2"}], "corpus.jsonl")
    queries = write(tmp_path, [{"_id": "q1", "text": "claim"}], "queries.jsonl")
    qrels = tmp_path / "test.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\t2\t2\n", encoding="utf-8")
    docs = load_beir_corpus(corpus)
    assert docs["d1"].title == "T" and docs["2"].text == "b2"
    assert load_beir_queries(queries) == {"q1": "claim"}
    assert load_beir_qrels(qrels) == {"q1": {"d1": 1, "2": 2}}
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"line 2: expected 3 columns"):
        load_beir_qrels(qrels)
    bad = write(tmp_path, [{"text": "no id"}], "bad.jsonl")
    with pytest.raises(DatasetError, match=r"line 1: a corpus row needs '_id'"):
        load_beir_corpus(bad)


def test_contoso_ground_truth_parses():
    path = shared_datasets_dir() / "contoso" / "ground_truth.jsonl"
    if not path.is_file():
        pytest.skip(f"shared datasets absent at {path} (set ONDATA_SHARED_DATASETS)")
    items = load_qa(path)
    assert len(items) == 50
    assert all(1 <= len(i.gold) <= 2 and all(g.page for g in i.gold) for i in items)


def test_sample_qa_set_parses():
    path = Path(__file__).resolve().parents[1] / "data" / "samples" / "qa.jsonl"
    if not path.is_file():
        pytest.skip("data/samples/qa.jsonl not written yet")
    items = load_qa(path)
    assert any(not i.answerable for i in items) and any(i.gold for i in items)
