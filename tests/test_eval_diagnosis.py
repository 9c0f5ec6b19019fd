"""Failure reasons of stored run records (eval.diagnosis): one test per reason, on hand-built records."""

from __future__ import annotations

import copy

from eval.diagnosis import REASONS, diagnose, outcome, reason_counts


def record(**over):
    """An answerable question whose gold page (a.pdf p3) was retrieved, cited and supported."""
    base = {
        "qid": "q1", "line": 1, "question": "Q?", "truth": "T [a.pdf#page=3]", "answerable": True,
        "gold": [{"file": "a.pdf", "page": 3}],
        "hits": [{"rank": 1, "file": "a.pdf", "page_start": 3, "page_end": 3, "score": 0.9, "in_prompt": True,
                  "filter_reason": None},
                 {"rank": 2, "file": "b.pdf", "page_start": 1, "page_end": 1, "score": 0.5, "in_prompt": True,
                  "filter_reason": None}],
        "citations": [{"ref": "[a.pdf#page=3]", "filepath": "a.pdf", "page": 3}],
        "claims": [{"text": "The answer is 42.", "docs": [1], "supported": True, "error": None}],
        "answer": "The answer is 42. [doc1]", "abstained": False, "error": None,
    }
    base.update(over)
    return base


def codes(rec):
    return [r["reason"] for r in diagnose(rec)]


def test_a_good_answer_has_no_reason_and_passes():
    rec = record()
    before = copy.deepcopy(rec)
    assert diagnose(rec) == [] and outcome(rec) == "passed"
    assert rec == before  # pure: the record is not modified


def test_gold_page_not_retrieved_names_the_nearest_page_of_the_document():
    rec = record(hits=[{"rank": 1, "file": "a.pdf", "page_start": 7, "page_end": 8, "in_prompt": True}],
                 citations=[{"ref": "[a.pdf#page=7]", "filepath": "a.pdf", "page": 7}])
    (reason,) = diagnose(rec)
    assert reason["reason"] == "not_retrieved" and reason["label"] == "gold page not retrieved"
    assert "a.pdf p3 is not among the 1 retrieved hits" in reason["detail"] and "rank 1 p7-8" in reason["detail"]
    assert outcome(rec) == "failed"


def test_retrieved_but_not_cited_says_why_it_was_left_out_of_the_prompt():
    rec = record(citations=[{"ref": "[b.pdf#page=1]", "filepath": "b.pdf", "page": 1}])
    (reason,) = diagnose(rec)
    assert reason["reason"] == "not_cited" and "rank 1 and given to the model" in reason["detail"]
    filtered = record(citations=[{"ref": "[b.pdf#page=1]", "filepath": "b.pdf", "page": 1}],
                      hits=[{**record()["hits"][0], "in_prompt": False, "filter_reason": "score"}])
    assert "below the strictness threshold" in diagnose(filtered)[0]["detail"]


def test_cited_the_neighbouring_page():
    rec = record(citations=[{"ref": "[a.pdf#page=4]", "filepath": "docs/A.pdf", "page": 4}])
    (reason,) = diagnose(rec)
    assert reason["reason"] == "neighbour_page" and "cites [a.pdf#page=4] instead of a.pdf p3" in reason["detail"]
    two_away = record(citations=[{"ref": "[a.pdf#page=5]", "filepath": "a.pdf", "page": 5}])
    assert codes(two_away) == ["not_cited"]  # two pages away is not a neighbour


def test_abstained_though_the_gold_page_was_retrieved():
    rec = record(abstained=True, citations=[], claims=[], answer="The requested information is not available.")
    assert codes(rec) == ["abstained_with_gold"]
    # without the gold page among the hits the root cause is retrieval
    assert codes({**rec, "hits": rec["hits"][1:]}) == ["not_retrieved"]
    # without gold there is nothing to check retrieval against
    assert codes({**rec, "gold": []}) == ["abstained"]


def test_answered_an_unanswerable_question_and_correct_abstention():
    rec = record(answerable=False, gold=[], truth="")
    assert codes(rec) == ["answered_unanswerable"] and "[a.pdf#page=3]" in diagnose(rec)[0]["detail"]
    declined = record(answerable=False, gold=[], truth="", abstained=True, citations=[], claims=[])
    assert diagnose(declined) == [] and outcome(declined) == "correct_abstention"


def test_unsupported_claim_counts_judged_sentences_only():
    claims = [{"text": "The answer is 42.", "supported": True},
              {"text": "It was founded on the moon.", "supported": False, "error": None},
              {"text": "Judge broke.", "supported": False, "error": "timeout"}]
    (reason,) = diagnose(record(claims=claims))
    assert reason["reason"] == "unsupported_claim"
    assert reason["detail"].startswith("1 of 2 sentences unsupported") and "founded on the moon" in reason["detail"]


def test_whole_document_gold_and_several_reasons_in_order():
    rec = record(gold=[{"file": "a.pdf", "page": 3}, {"file": "c.docx", "page": None}],
                 citations=[{"ref": "[b.pdf#page=1]", "filepath": "b.pdf", "page": 1}],
                 claims=[{"text": "Nope nope.", "supported": False}])
    assert codes(rec) == ["not_cited", "not_retrieved", "unsupported_claim"]
    cited_doc = record(gold=[{"file": "c.docx", "page": None}],
                       hits=[{"rank": 1, "file": "c.docx", "page_start": None, "page_end": None, "in_prompt": True}],
                       citations=[{"ref": "[c.docx]", "filepath": "c.docx", "page": None}])
    assert diagnose(cited_doc) == []


def test_errors_and_counts():
    err = {"qid": "e", "question": "Q?", "answerable": True, "gold": [], "error": "EmbeddingError: boom"}
    assert codes(err) == ["error"] and outcome(err) == "error"
    counts = reason_counts([record(), err, record(answerable=False, gold=[]), record(answerable=False, gold=[])])
    assert counts == {"error": 1, "answered_unanswerable": 2}
    assert list(counts) == [c for c in REASONS if c in counts]

