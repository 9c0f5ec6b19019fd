"""The second-stage re-ranking of search candidates by their best sentence (retrieval.rerank)."""

from __future__ import annotations

import pytest
from test_retrieval_corpus import build_index, hit

from retrieval.answer import prepare_grounded_request
from retrieval.rerank import rerank
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
    candidates = retriever.search(q, top=20)
    assert [d.hit.chunk.id for d in on.retrieved()] == [h.chunk.id for h in rerank(q, candidates)[:2]]
    assert [d.hit.chunk.id for d in off.retrieved()] == [h.chunk.id for h in candidates[:2]]
    with pytest.raises(ValueError):
        prepare_grounded_request(q, retriever=retriever, rerank_candidates=-1)
    index.close()
