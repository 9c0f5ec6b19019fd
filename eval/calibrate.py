"""Fitting and cross-validating the local groundedness scorer on labelled claim/evidence pairs.

The training data is ``groundedness/scifact_train_pairs.jsonl`` of the shared datasets: each row is
a claim, an abstract (``sentences``) and an expert label; grounded = ``SUPPORT``, not grounded =
``CONTRADICT`` or ``NOT_ENOUGH_INFO``. The claim is scored against the abstract's text.

Cross-validation is grouped: rows sharing a claim or an abstract always fall in the same fold
(connected components of the claim-abstract graph), so no fold sees its test claims or abstracts.
Each fold standardises the features and fits a class-balanced logistic regression on its training
part only; the balanced accuracy is measured on the held-out part at probability threshold 0.5.
Needs scikit-learn (a dependency of sentence-transformers), imported lazily.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from eval.datasets import file_sha256
from eval.errors import DatasetError
from eval.groundedness import FEATURES, features_for
from eval.pair_model import PairModel

log = logging.getLogger(__name__)

LABELS = ("SUPPORT", "CONTRADICT", "NOT_ENOUGH_INFO")


def load_claim_pairs(path: str | Path) -> list[dict[str, Any]]:
    """Rows ``{claim_id, claim, doc_id, sentences, label}`` of a claim/evidence JSONL file, validated."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"claim pairs file {path} does not exist")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row.get("claim"), str) or not isinstance(row.get("sentences"), list):
                raise DatasetError(f"{path}, line {number}: a pair needs a string 'claim' and a list 'sentences'")
            if row.get("label") not in LABELS:
                raise DatasetError(f"{path}, line {number}: label {row.get('label')!r} is not one of {', '.join(LABELS)}")
            rows.append(row)
    return rows


def leak_free_groups(rows: Sequence[dict[str, Any]]) -> np.ndarray:
    """A group id per row: connected components of rows linked by a shared claim_id or doc_id."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for row in rows:
        a, b = find("c:" + str(row["claim_id"])), find("d:" + str(row["doc_id"]))
        if a != b:
            parent[a] = b
    roots: dict[str, int] = {}
    return np.asarray([roots.setdefault(find("c:" + str(r["claim_id"])), len(roots)) for r in rows])


def pair_inputs(rows: Sequence[dict[str, Any]]) -> tuple[list[tuple[str, list[str]]], np.ndarray]:
    pairs = [(r["claim"], [" ".join(r["sentences"])]) for r in rows]
    y = np.asarray([1 if r["label"] == "SUPPORT" else 0 for r in rows])
    return pairs, y


def _fit(X: np.ndarray, y: np.ndarray, *, C: float = 1.0) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=1000)
    model.fit((X - mean) / scale, y)
    return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": model.coef_[0].tolist(),
            "intercept": float(model.intercept_[0])}


def _predict(params: dict[str, Any], X: np.ndarray) -> np.ndarray:
    z = ((X - np.asarray(params["mean"])) / np.asarray(params["scale"])) @ np.asarray(params["coef"]) + params["intercept"]
    return 1.0 / (1.0 + np.exp(-z))


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean of the recall of each class present in ``y_true``."""
    recalls = [float(np.mean(y_pred[y_true == c] == c)) for c in np.unique(y_true)]
    return float(np.mean(recalls))


def cross_validate(X: np.ndarray, y: np.ndarray, groups: np.ndarray, *, folds: int = 5, seed: int = 0,
                   threshold: float = 0.5) -> dict[str, Any]:
    """Grouped, stratified k-fold balanced accuracy: ``{"balanced_accuracy", "folds": [...], "pooled"}``."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    per_fold = []
    pooled = np.zeros_like(y)
    for train, test in splitter.split(X, y, groups):
        params = _fit(X[train], y[train])
        pred = (_predict(params, X[test]) >= threshold).astype(int)
        pooled[test] = pred
        per_fold.append(balanced_accuracy(y[test], pred))
    return {"balanced_accuracy": float(np.mean(per_fold)), "std": float(np.std(per_fold)), "folds": per_fold,
            "pooled": balanced_accuracy(y, pooled), "predictions": pooled.tolist()}


def fit_calibration(rows: Sequence[dict[str, Any]], *, embedder: Any, dataset_path: str | Path,
                    folds: int = 5, seed: int = 0, pair_model: Any = None) -> dict[str, Any]:
    """Cross-validate, then fit on every row: the calibration dict written to ``local_scorer.json``.

    The pair model never saw these rows (it is trained on synthetic pairs from other abstracts),
    so its probabilities are features like the others and the grouped CV stays leak-free."""
    pairs, y = pair_inputs(rows)
    pair_model = pair_model or PairModel()
    X = features_for(pairs, embedder=embedder, pair_model=pair_model)
    cv = cross_validate(X, y, leak_free_groups(rows), folds=folds, seed=seed)
    predictions = np.asarray(cv.pop("predictions"))
    labels = np.asarray([r["label"] for r in rows])
    # share of each expert label the held-out predictions got right (SUPPORT -> grounded, others -> not)
    cv["recall_by_label"] = {label: float(np.mean(predictions[labels == label] == (1 if label == "SUPPORT" else 0)))
                             for label in LABELS if np.any(labels == label)}
    params = _fit(X, y)
    return {
        "version": 2,
        "features": list(FEATURES),
        **params,
        "threshold": 0.5,
        "embedder": getattr(embedder, "model_id", ""),
        "pair_model": {k: pair_model.manifest.get(k) for k in ("name", "sha256")} if hasattr(pair_model, "manifest") else None,
        "dataset": {"name": Path(dataset_path).name, "sha256": file_sha256(dataset_path), "rows": len(rows),
                    "positives": int(y.sum())},
        "cv": {"folds": folds, "seed": seed, "grouped_by": "connected claim_id/doc_id", **cv},
        "fitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
