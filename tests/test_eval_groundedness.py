"""Groundedness scorers: the LLM judge (parsing, failures counted, never NaN) and the local scorer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from eval.groundedness import (
    ALIGNMENT_FEATURES,
    CALIBRATION_PATH,
    FEATURES,
    LLMJudgeScorer,
    LocalGroundednessScorer,
    compute_features,
    domain_profile,
    parse_rating,
    quoted_verbatim,
)
from indexers.embedders.hashing import HashingEmbedder
from indexers.retry import RetryPolicy
from retrieval.chat import ChatResult
from retrieval.errors import ChatModelError


class ScriptedJudge:
    extractive = False

    def __init__(self, replies):
        self.replies = list(replies)
        self.seen = []

    def complete(self, messages, **opts):
        self.seen.append(messages)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return ChatResult(content=reply)


@pytest.mark.parametrize("reply, rating", [("Rating: 5", 5), ("rating=2\nbecause", 2), ("**Rating:** 4", 4), ("3", 3),
                                           ("I think it is fine", None), ("Rating: 7", None)])
def test_parse_rating(reply, rating):
    assert parse_rating(reply) == rating


def test_llm_judge_scores_and_counts_failures():
    judge = ScriptedJudge(["Rating: 5", "Rating: 2", "no idea", ChatModelError("429 after retries", status=429)])
    scorer = LLMJudgeScorer(judge, threshold=4)
    results = [scorer.score("The plan covers eye exams.", ["Eye exams are covered."]) for _ in range(4)]
    assert [r.supported for r in results] == [True, False, False, False]
    assert results[0].score == 1.0 and results[1].score == 0.25
    assert results[2].error.startswith("unparseable judge reply") and results[3].error.startswith("judge failed: ChatModelError")
    assert all(not math.isnan(r.score) for r in results)
    assert scorer.failures == 2 and scorer.calls == 4
    system, user = judge.seen[0]
    assert system["role"] == "system" and "Rating: N" in system["content"]
    assert "[source 1]\nEye exams are covered." in user["content"] and "The plan covers eye exams." in user["content"]


def test_features_catch_number_negation_and_direction_mismatch():
    emb = HashingEmbedder(dimensions=256)
    claim = "Aspirin does not increase bleeding in 40% of patients."
    windows = ["Aspirin increases bleeding in 30% of patients."]
    f = dict(zip(ALIGNMENT_FEATURES, compute_features(claim, windows, emb.embed_query(claim), emb.embed_documents(windows))))
    assert f["num_missing"] == 1.0 and f["neg_mismatch"] == 1.0
    assert f["dir_mismatch"] == 1.0  # "does not increase" points down, "increases" up
    same = "Aspirin increases bleeding in 30% of patients."
    g = dict(zip(ALIGNMENT_FEATURES, compute_features(same, windows, emb.embed_query(same), emb.embed_documents(windows))))
    assert g["num_missing"] == 0.0 and g["neg_mismatch"] == 0.0 and g["dir_mismatch"] == 0.0
    assert g["lex_max"] == 1.0 and g["cos_max"] == pytest.approx(1.0, abs=1e-5)


def test_calibration_file_records_its_data():
    data = json.loads(CALIBRATION_PATH.read_text())
    assert tuple(data["features"]) == FEATURES
    assert len(data["coef"]) == len(FEATURES) == len(data["mean"]) == len(data["scale"])
    assert len(data["dataset"]["sha256"]) == 64 and data["dataset"]["rows"] > 0
    assert 0.5 < data["cv"]["balanced_accuracy"] <= 1.0
    # measured on both domains (SciFact: grouped CV; Climate-FEVER: the same calibration, out of domain), with profiles
    assert set(data["cv"]["domains"]) == {"scifact", "climate_fever"} == set(data["domains"])
    for m in data["cv"]["domains"].values():
        assert len(m["folds"]) == len(m["auc_folds"]) == 5 and 0.5 <= m["balanced_accuracy"] <= 1.0 and 0.5 < m["auc"] <= 1.0
    assert all(len(p["centroid"]) == 384 and -1 < p["cutoff"] < 1 for p in data["domains"].values())


def test_domain_share_tells_the_measured_domains_from_others():
    rng = np.random.default_rng(0)
    centre = rng.normal(size=16)
    near = centre + rng.normal(scale=0.3, size=(50, 16))

    class Fixed:  # an embedder that maps each text to a fixed vector
        table = {f"in{i}": v for i, v in enumerate(near)} | {"out": -centre, "centre": centre}

        def embed_documents(self, texts):
            return np.asarray([self.table[t] for t in texts])

    calibration = {**json.loads(CALIBRATION_PATH.read_text()), "domains": {"d": domain_profile(near, label="d")}}
    scorer = LocalGroundednessScorer(embedder=Fixed(), calibration=calibration)
    assert scorer.domain_share([f"in{i}" for i in range(50)]) >= 0.9
    assert scorer.domain_share(["out", "centre", "centre", "centre"]) == 0.75
    assert scorer.card()["measured"]["scifact"]["balanced_accuracy"] == calibration["cv"]["domains"]["scifact"]["balanced_accuracy"]


def test_local_scorer_separates_support_from_unrelated_and_contradiction():
    scorer = LocalGroundednessScorer(embedder=HashingEmbedder(dimensions=512))
    sources = ["Employees get 28 days of annual leave per year. Leave requests are approved by the line manager.",
               "The depot opens at 6 am."]
    supported = scorer.score("Employees get 28 days of annual leave per year.", sources)
    unrelated = scorer.score("The company pays for gym memberships in Paris.", sources)
    wrong_number = scorer.score("Employees get 35 days of annual leave per year.", sources)
    assert supported.supported and not unrelated.supported
    assert supported.score > wrong_number.score > 0 and supported.score > unrelated.score
    assert "28 days" in supported.evidence
    empty = scorer.score("Anything at all.", [])
    assert empty.supported is False and empty.error is None and 0.0 <= empty.score <= 1.0


def test_llm_judge_through_azure_openai_sdk_against_the_test_double():
    from retrieval.azure_openai_chat import AzureOpenAIChatModel
    from tests.servers.azure_openai import FakeAzureOpenAI, content_filter_error

    with FakeAzureOpenAI(api_key="k") as server:
        server.script_chat("Rating: 4", "The claim seems fine.", content_filter_error())
        judge = AzureOpenAIChatModel(endpoint=server.url, deployment="gpt-4o", api_key="k", retry=RetryPolicy.off())
        scorer = LLMJudgeScorer(judge)
        results = [scorer.score("Dental cleanings are covered twice a year.", ["Cleanings: two per year."]) for _ in range(3)]
        assert results[0].supported and results[0].score == 0.75 and results[0].error is None
        assert results[1].error.startswith("unparseable") and results[2].error.startswith("judge failed: ContentFilteredError")
        assert scorer.failures == 2
        sent = server.chat_calls[0]["messages"]
        assert "Cleanings: two per year." in sent[1]["content"]


def test_cross_validation_keeps_linked_claims_and_abstracts_in_one_fold():
    from sklearn.model_selection import StratifiedGroupKFold

    from eval.calibrate import cross_validate, leak_free_groups

    rows = [{"claim_id": "c1", "doc_id": "d1"}, {"claim_id": "c1", "doc_id": "d2"}, {"claim_id": "c2", "doc_id": "d2"},
            {"claim_id": "c3", "doc_id": "d3"}, {"claim_id": "c4", "doc_id": "d3"}, {"claim_id": "c5", "doc_id": "d5"}]
    groups = leak_free_groups(rows)
    assert groups[0] == groups[1] == groups[2] and groups[3] == groups[4] and len(set(groups)) == 3
    rng = np.random.default_rng(0)
    y = np.array([1, 0] * 50)
    X = np.column_stack([y + rng.normal(0, 0.3, 100), rng.normal(size=100)])
    g = np.repeat(np.arange(25), 4)
    for train, test in StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0).split(X, y, g):
        assert not set(g[train]) & set(g[test])
    cv = cross_validate(X, y, g, folds=5)
    assert cv["balanced_accuracy"] > 0.9 and len(cv["folds"]) == 5 and len(cv["predictions"]) == 100
    shuffled = cross_validate(X[:, [1]], y, g, folds=5)  # a feature unrelated to the label: chance level
    assert shuffled["balanced_accuracy"] < 0.7


def test_cross_validation_over_domains_keeps_groups_apart_and_weighs_domains_alike():
    from eval.calibrate import domain_folds, domain_weights, grouped_domain_cv, leak_free_groups, logistic_fit_predict, robust_threshold

    rows = [{"claim_id": "c1", "doc_id": "d1"}, {"claim_id": "c1", "doc_id": "d2"}, {"claim_id": "c2", "doc_id": "d2"},
            {"claim_id": "c3", "doc_id": "d3"}, {"claim_id": "c4", "doc_id": "d3"}, {"claim_id": "c5", "doc_id": "d5"}]
    groups = leak_free_groups(rows)
    assert groups[0] == groups[1] == groups[2] and groups[3] == groups[4] and len(set(groups)) == 3
    rng = np.random.default_rng(0)
    data = {}
    for key, n, shift in (("a", 100, 0.0), ("b", 300, 0.5)):  # domain b is larger and its scores sit higher
        y = np.array([1, 0, 0, 0] * (n // 4))
        informative = y + shift + rng.normal(0, 0.3, n)
        data[key] = {"X": np.column_stack([informative, rng.normal(size=n)]), "y": y, "groups": np.repeat(np.arange(n // 4), 4),
                     "labels": np.where(y == 1, "SUPPORT", "NOT_ENOUGH_INFO")}
        for test in domain_folds(y, data[key]["groups"], folds=5, seed=0):
            train = np.setdiff1d(np.arange(n), test)
            assert not set(data[key]["groups"][train]) & set(data[key]["groups"][test])
    w = domain_weights(np.concatenate([data["a"]["y"], data["b"]["y"]]), np.array(["a"] * 100 + ["b"] * 300))
    assert w[:100][data["a"]["y"] == 1].sum() == pytest.approx(w[100:][data["b"]["y"] == 0].sum())
    cv = grouped_domain_cv(data, logistic_fit_predict({k: {**v, "X": v["X"]} for k, v in data.items()}), folds=5)
    assert all(cv["domains"][k]["balanced_accuracy"] > 0.7 and len(cv["domains"][k]["folds"]) == 5 for k in data)
    chance = {k: {**v, "X": v["X"][:, [1]]} for k, v in data.items()}  # a feature unrelated to the label
    assert max(m["balanced_accuracy"] for m in grouped_domain_cv(chance, logistic_fit_predict(chance))["domains"].values()) < 0.7
    p = np.array([0.2, 0.4, 0.6, 0.8]); y = np.array([0, 0, 1, 1])
    assert 0.4 <= robust_threshold(p, y, np.array(["a"] * 4)) <= 0.6


def test_a_claim_quoted_word_for_word_is_supported_even_with_a_negation():
    scorer = LocalGroundednessScorer(embedder=HashingEmbedder(dimensions=512))
    source = "Coverage. This plan does not cover fertility services, such as egg and sperm banking. Call us."
    quoted = scorer.score("This plan does NOT cover fertility services, such as egg and sperm banking!", [source])
    assert quoted.supported and quoted.score == 1.0
    assert quoted.evidence == "This plan does not cover fertility services, such as egg and sperm banking."
    flipped = scorer.score("This plan does cover fertility services, such as egg and sperm banking.", [source])
    assert flipped.score < 1.0  # one word removed: no longer a quote, the model decides
    assert quoted_verbatim("does not cover", [source]) == ""  # too short to prove anything
