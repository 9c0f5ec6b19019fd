"""indexers.fusion.reciprocal_rank_fusion: scores, ordering, weights, ties, duplicates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexers.fusion import reciprocal_rank_fusion


def test_scores_are_sums_of_reciprocal_ranks():
    fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["b", "d"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["c"] == pytest.approx(1 / 63)
    assert fused["d"] == pytest.approx(1 / 62)
    assert [d for d, _ in reciprocal_rank_fusion([["a", "b", "c"], ["b", "d"]])] == ["b", "a", "d", "c"]


def test_weights_and_validation():
    fused = reciprocal_rank_fusion([["a"], ["b"]], k=0, weights=[1.0, 3.0])
    assert fused == [("b", 3.0), ("a", 1.0)]
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"]], weights=[1.0, 2.0])
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"]], k=-1)


def test_ties_break_by_best_rank_then_id_and_duplicates_count_once():
    # x and y both score 1/61 + 1/62 and both reached rank 1: the id decides
    fused = reciprocal_rank_fusion([["x", "y"], ["y", "x"]])
    assert [d for d, _ in fused] == ["x", "y"]
    assert fused[0][1] == pytest.approx(fused[1][1])
    assert dict(reciprocal_rank_fusion([["a", "a", "b"]]))["a"] == pytest.approx(1 / 61)
    assert reciprocal_rank_fusion([]) == [] and reciprocal_rank_fusion([[], []]) == []


def test_ties_first_keep_the_order_of_the_first_ranking():
    # k=0: a scores 1/2 + 0.5/1 = 1.0 and b 1/1 = 1.0 exactly; by best rank then id a wins, "first" keeps b
    rankings, weights = [["b", "a"], ["a"]], [1.0, 0.5]
    assert [d for d, _ in reciprocal_rank_fusion(rankings, k=0, weights=weights)] == ["a", "b"]
    assert [d for d, _ in reciprocal_rank_fusion(rankings, k=0, weights=weights, ties="first")] == ["b", "a"]
    # an id absent from the first ranking comes after the tied ids of it
    assert [d for d, _ in reciprocal_rank_fusion([["b"], ["a"]], k=0, ties="first")] == ["b", "a"]
    assert [d for d, _ in reciprocal_rank_fusion([["b"], ["a"]], k=0)] == ["a", "b"]
    # ints work as ids (the re-ranking fuses hit positions)
    assert reciprocal_rank_fusion([range(3), [2, 1, 0]], k=60, ties="first")[0][0] == 0
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"]], ties="last")  # type: ignore[arg-type]


@given(st.lists(st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=8), max_size=4))
def test_property_sorted_and_covers_every_id(rankings):
    fused = reciprocal_rank_fusion(rankings)
    assert {d for d, _ in fused} == {d for r in rankings for d in r}
    scores = [s for _, s in fused]
    assert scores == sorted(scores, reverse=True)
    assert reciprocal_rank_fusion(rankings) == fused  # deterministic
