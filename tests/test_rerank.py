"""The second-stage re-ranking of search candidates by their best sentence (retrieval.rerank)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_retrieval_corpus import build_index, hit

from retrieval.answer import prepare_grounded_request
from retrieval.rerank import RERANK_CANDIDATES, heading_scores, named_sources, rerank, spread
from retrieval.retriever import Retriever

FILLER = "The office is open on weekdays. Staff may park in the north lot."


def _hits():
    return [
        hit(FILLER + " Vision care is mentioned in passing here.", n=0),
        hit(FILLER + " Coffee is free in the kitchen.", n=1),
        hit("Hearing aids are covered once every three years, including fitting and batteries.", n=2,
            section="Covered services > Hearing care"),
        hit(FILLER, n=3),
    ]


def test_a_chunk_whose_sentence_answers_moves_up_and_nothing_is_dropped():
    hits = _hits()
    q = "Are hearing aids and batteries covered?"
    out = rerank(q, hits)
    assert out.index(hits[2]) < 2  # above at least one chunk without evidence that the search ranked higher
    assert sorted(map(id, out)) == sorted(map(id, hits))
    assert rerank(q, hits, weight=2.0)[0] is hits[2]  # evidence weighted over the search rank


def test_no_evidence_keeps_the_search_order_and_weight_zero_is_the_search_order():
    hits = _hits()
    assert rerank("zebra quantum xylophone?", hits) == hits
    assert rerank("Are hearing aids and batteries covered?", hits, weight=0.0) == hits
    assert rerank("anything", hits[:1]) == hits[:1]
    with pytest.raises(ValueError):
        rerank("anything", hits, k=0)


def test_the_section_heading_counts_as_evidence():
    # the same sentence in two chunks; only one chunk's heading names what the question asks about
    plain = hit("Up to two visits a year are covered.", n=0, section="General")
    headed = hit("Up to two visits a year are covered.", n=1, section="Dental cleanings")
    out = rerank("How many dental cleanings are covered?", [plain, headed], weight=2.0)
    assert out[0] is headed


def test_prepare_grounded_request_reranks_the_candidates_and_keeps_top(tmp_path):
    index, embedder = build_index(tmp_path)
    retriever = Retriever(index, embedder)
    q = "How many days of paid vacation do employees get?"
    on = prepare_grounded_request(q, retriever=retriever, top=2, top_n_documents=2, strictness=1)
    off = prepare_grounded_request(q, retriever=retriever, top=2, top_n_documents=2, strictness=1,
                                   rerank_candidates=0)
    assert len(on.retrieved()) <= 2 and len(off.retrieved()) <= 2
    candidates = retriever.search(q, top=RERANK_CANDIDATES)
    assert [d.hit.chunk.id for d in on.retrieved()] == [h.chunk.id for h in rerank(q, candidates, top=2)[:2]]
    assert [d.hit.chunk.id for d in off.retrieved()] == [h.chunk.id for h in candidates[:2]]
    with pytest.raises(ValueError):
        prepare_grounded_request(q, retriever=retriever, rerank_candidates=-1)
    index.close()


PLAN = "The deductible is $500 per year and applies before coinsurance."


def _two_plans():
    # the same sentence in two documents: the search ranks the Basic plan's chunk first
    basic = hit(PLAN, n=0, source_id="Acme_Basic_Plan_Details.pdf", title="Acme Basic Plan")
    gold = hit(PLAN, n=1, source_id="Acme_Gold_Plan_Details.pdf", title="Acme Gold Plan")
    return basic, gold


def test_a_question_naming_a_document_by_file_name_or_title_prefers_its_chunks():
    basic, gold = _two_plans()
    assert rerank("What is the deductible?", [basic, gold]) == [basic, gold]
    for q in ("What is the deductible according to the Acme_Gold_Plan_Details.pdf?",
              "What is the deductible in the Acme Gold Plan Details?",
              "Under the acme gold plan, what is the deductible?"):
        assert rerank(q, [basic, gold]) == [gold, basic], q
        assert named_sources(q, [basic, gold]) == {"Acme_Gold_Plan_Details.pdf"}


def test_a_document_is_named_only_by_its_whole_name_of_two_words_or_more():
    basic, gold = _two_plans()
    # "Gold" alone, or the plan's words out of order, name no document
    assert named_sources("What is the gold standard of care?", [basic, gold]) == set()
    assert named_sources("Is the plan from Acme gold?", [basic, gold]) == set()
    one_word = hit(PLAN, n=2, source_id="policy.pdf", title="Policy")
    assert named_sources("What does the policy say about the deductible?", [one_word]) == set()


def _paged(n: int, source: str, first: int, last: int):
    h = hit(f"Chunk {n} of {source}.", n=n, source_id=source)
    chunk = replace(h.chunk, page_start=first, page_end=last)
    return replace(h, chunk=chunk)


def test_a_hit_whose_pages_a_better_hit_of_its_document_covers_leaves_the_top():
    a12 = _paged(0, "a.pdf", 1, 2)
    a2 = _paged(1, "a.pdf", 2, 2)       # inside a12's pages: moved after the top 2
    a23 = _paged(2, "a.pdf", 2, 3)      # adds page 3: stays
    b2 = _paged(3, "b.pdf", 2, 2)       # another document's page 2: stays
    assert spread([a12, a2, a23, b2], 2) == [a12, a23, a2, b2]
    assert spread([a12, a2, b2], 3) == [a12, b2, a2]
    assert spread([a12, a2, a23, b2], 1) == [a12, a2, a23, b2]  # beyond the top nothing moves
    # through rerank (no evidence: the search order but for the covered hit)
    assert rerank("zebra quantum xylophone?", [a12, a2, a23, b2], top=2) == [a12, a23, a2, b2]


def test_the_chunks_own_heading_counts_in_its_own_ranking():
    general = hit("Up to two visits a year are covered.", n=0, section="Dental cleanings > General")
    headed = hit("Up to two visits a year are covered.", n=1, section="Benefits > Dental cleanings")
    filler = hit(FILLER, n=2, section="Office")
    q = "How many dental cleanings are covered?"
    scores = heading_scores(q, [general, headed, filler])
    assert scores[1] > 0 and scores[0] == 0 == scores[2]  # the last heading only, not the path above it
    assert rerank(q, [general, headed, filler], heading_weight=0) == [general, headed, filler]
    assert rerank(q, [general, headed, filler], heading_weight=2.0) == [headed, general, filler]


def test_each_part_of_a_two_part_question_ranks_the_candidates_too():
    q = "What is the dental deductible for members, and which vision benefits cover glasses frames?"
    both = hit("Members with dental and vision benefits get a yearly deductible statement and may cover frames.", n=0)
    first = hit("The dental deductible for members is $50 per year.", n=1)
    second = hit(FILLER + " Vision benefits cover glasses frames once every two years.", n=2)
    filler = hit(FILLER + " Coffee is free in the kitchen.", n=3)
    hits = [both, first, second, filler]
    assert rerank(q, hits, part_weight=0) == [both, first, second, filler]
    assert rerank(q, hits) == [both, second, first, filler]  # the second part's best chunk joins the top 2
