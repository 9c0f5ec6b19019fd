"""The pair model of the local groundedness scorer: evidence selection, synthetic pairs, shipped weights."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest

from eval.errors import EvalError
from eval.pair_model import CALIBRATION_DIR, LABELS, MODEL_NAME, PairModel, select_evidence, weighted_recall
from eval.pair_training import build_pairs, load_spacy, swap_antonym, toggle_negation


@pytest.fixture(scope="module")
def nlp():
    return load_spacy()


@pytest.fixture(scope="module")
def pair_model():
    return PairModel()


def test_weighted_recall_counts_rare_words_more():
    claim = "Osteoclasts regulate bone growth."
    # "osteoclasts" is rare, "growth" common: covering the rare word covers most of the claim
    assert weighted_recall(claim, "Osteoclasts were counted.") > weighted_recall(claim, "Growth was measured.")
    assert weighted_recall(claim, "Osteoclasts regulate bone growth in mice.") == pytest.approx(1.0)
    assert weighted_recall("", "anything") == 0.0


def test_select_evidence_keeps_the_best_sentences_in_source_order():
    sentences = ["Mice were housed in cages.", "Osteoclasts secrete PDGF-BB.", "Weather was mild.",
                 "PDGF-BB induces angiogenesis in bone."]
    evidence = select_evidence("Osteoclast PDGF-BB induces angiogenesis.", sentences, k=2)
    assert evidence == "Osteoclasts secrete PDGF-BB. PDGF-BB induces angiogenesis in bone."
    assert select_evidence("claim", []) == ""


@pytest.mark.parametrize("text, negated", [
    ("Aspirin increases bleeding.", "Aspirin does not increase bleeding."),
    ("The drug reduced mortality.", "The drug did not reduce mortality."),
    ("Lamins are required for nuclear integrity.", "Lamins are not required for nuclear integrity."),
    ("Exercise does not improve memory.", "Exercise does improve memory."),
    ("Statins can prevent stroke.", "Statins can not prevent stroke."),
])
def test_toggle_negation(nlp, text, negated):
    assert toggle_negation(nlp(text)) == negated


def test_swap_antonym(nlp):
    assert swap_antonym(nlp("Birth weight is positively associated with risk."), random.Random(0)) == \
        "Birth weight is negatively associated with risk."
    assert swap_antonym(nlp("Higher doses work."), random.Random(0)) == "Lower doses work."
    assert swap_antonym(nlp("Cells divide."), random.Random(0)) is None


def test_build_pairs_labels_kinds_and_exclusion(nlp):
    topics = ["insulin", "dopamine", "collagen", "ferritin", "melatonin", "keratin"]
    docs = [{"_id": str(i), "title": f"{t.capitalize()} increases cell growth in mice",
             "text": f"We studied {t} in mice. {t.capitalize()} levels were measured in 40 animals over two weeks. "
                     f"Mice given {t} showed increased growth of liver cells compared to controls. "
                     f"These results show that {t} promotes cell growth in vivo."}
            for i, t in enumerate(topics)]
    pairs = build_pairs(docs, exclude={"5"}, seed=0, nlp=nlp)
    assert {p["doc"] for p in pairs} <= {"0", "1", "2", "3", "4"}
    kinds = {p["kind"]: p["label"] for p in pairs}
    assert kinds["title"] == "SUPPORT" and kinds["title_perturbed"] == "CONTRADICT"
    assert kinds["title_other_abstract"] == "NOT_ENOUGH_INFO" and kinds["sentence"] == "SUPPORT"
    for p in pairs:
        assert p["evidence"] and p["label"] in LABELS
        if p["kind"] == "title_other_abstract":
            topic = p["claim"].split()[0].lower()
            assert topic not in p["evidence"].lower()  # evidence comes from another abstract
    perturbed = [p["claim"] for p in pairs if p["kind"] == "title_perturbed"]
    assert any("not" in c.split() or "decreases" in c for c in perturbed)


def test_shipped_pair_model_tells_support_from_contradiction_and_other_topics(pair_model):
    evidence = ("Patients given the drug had lower blood pressure after 12 weeks than patients given placebo. "
                "The drug lowers blood pressure in adults with hypertension.")
    probs = pair_model.probabilities([
        ("The drug lowers blood pressure in adults with hypertension.", evidence),
        ("The drug does not lower blood pressure in adults with hypertension.", evidence),
        ("Vitamin D prevents hip fractures in older women.", evidence),
    ])
    assert probs.shape == (3, 3) and np.allclose(probs.sum(axis=1), 1.0)
    support, contra, nei = (LABELS.index(x) for x in LABELS)
    assert probs[0].argmax() == support
    assert probs[1, contra] > probs[0, contra] and probs[1, support] < probs[0, support]
    assert probs[2, nei] > probs[0, nei] and probs[2, support] < probs[0, support]
    assert pair_model.probabilities([]).shape == (0, 3)


def test_pair_model_refuses_weights_that_do_not_match_the_manifest(tmp_path):
    for suffix in (".json", ".safetensors"):
        shutil.copy(CALIBRATION_DIR / f"{MODEL_NAME}{suffix}", tmp_path / f"{MODEL_NAME}{suffix}")
    manifest = json.loads((tmp_path / f"{MODEL_NAME}.json").read_text())
    manifest["sha256"] = "0" * 64
    (tmp_path / f"{MODEL_NAME}.json").write_text(json.dumps(manifest))
    with pytest.raises(EvalError, match="sha256"):
        PairModel(directory=tmp_path).probabilities([("a", "b")])
    (tmp_path / f"{MODEL_NAME}.json").unlink()
    with pytest.raises(EvalError, match="manifest"):
        PairModel(directory=tmp_path)
