"""Cross-validating the local groundedness scorer on labelled claim/evidence pairs of several domains.

``DOMAINS`` lists the labelled sets of the shared datasets: ``groundedness/scifact_train_pairs.jsonl``
(a claim, an abstract split in ``sentences``, an expert label) and
``groundedness/climate_fever_dev_pairs.jsonl`` (a climate claim against one Wikipedia sentence). Both
load into one row shape; grounded = ``SUPPORT``, not grounded = ``CONTRADICT`` or ``NOT_ENOUGH_INFO``.

Cross-validation is grouped per domain: SciFact rows sharing a claim or an abstract (connected
components) and Climate-FEVER rows of one claim always fall in the same fold. ``grouped_domain_cv``
runs any ``fit_predict`` (fit on the training parts of all domains, score the test parts) and reports
balanced accuracy and AUC per domain; ``domain_weights`` makes each domain, and each class inside it,
weigh the same in training; ``robust_threshold`` picks the threshold that maximises the worse
domain. ``logistic_fit_predict`` is such a ``fit_predict`` over feature matrices (used to screen
feature sets and calibrations over both domains; see bench/groundedness.py for what ships).

The shipped calibration (``fit_calibration``) is still the SciFact-only logistic regression over the
scorer's ``FEATURES`` (class-balanced, threshold 0.5, grouped CV on SciFact); ``transfer_scores``
measures such a fitted calibration on another domain it never saw (Climate-FEVER), per fold.
Needs scikit-learn (a dependency of sentence-transformers), imported lazily.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from eval.datasets import file_sha256, iter_json_lines
from eval.errors import DatasetError
from eval.groundedness import FEATURES, features_for
from eval.pair_model import PairModel

log = logging.getLogger(__name__)

LABELS = ("SUPPORT", "CONTRADICT", "NOT_ENOUGH_INFO")


def load_claim_pairs(path: str | Path) -> list[dict[str, Any]]:
    """Rows ``{claim_id, claim, doc_id, sentences, label}`` of a claim/evidence JSONL file, validated."""
    path = _pairs_file(path)
    rows = []
    for number, row in iter_json_lines(path):
        if not isinstance(row, dict) or not isinstance(row.get("claim"), str) \
                or not isinstance(row.get("sentences"), list):
            raise DatasetError(f"{path}, line {number}: a pair needs a string 'claim' and a list 'sentences'")
        if row.get("label") not in LABELS:
            raise DatasetError(f"{path}, line {number}: label {row.get('label')!r} is not one of {', '.join(LABELS)}")
        rows.append(row)
    return rows


def _pairs_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"claim pairs file {path} does not exist")
    return path


_CLIMATE_FEVER_LABELS = {"SUPPORTS": "SUPPORT", "REFUTES": "CONTRADICT", "NOT_ENOUGH_INFO": "NOT_ENOUGH_INFO"}


def load_climate_fever_pairs(path: str | Path) -> list[dict[str, Any]]:
    """Climate-FEVER evidence pairs (``{claim_id, claim, evidence_id, evidence, label}``, label SUPPORTS / REFUTES /
    NOT_ENOUGH_INFO) as rows of ``load_claim_pairs``' shape: the evidence sentence is the one source sentence,
    SUPPORTS -> SUPPORT, REFUTES -> CONTRADICT."""
    path = _pairs_file(path)
    rows = []
    for number, row in iter_json_lines(path):
        if not isinstance(row, dict) or not isinstance(row.get("claim"), str) \
                or not isinstance(row.get("evidence"), str):
            raise DatasetError(f"{path}, line {number}: a pair needs a string 'claim' and a string 'evidence'")
        if row.get("label") not in _CLIMATE_FEVER_LABELS:
            raise DatasetError(f"{path}, line {number}: label {row.get('label')!r} is not one of "
                               f"{', '.join(_CLIMATE_FEVER_LABELS)}")
        rows.append({"claim_id": row.get("claim_id", number), "claim": row["claim"],
                     "doc_id": row.get("evidence_id", number), "sentences": [row["evidence"]],
                     "label": _CLIMATE_FEVER_LABELS[row["label"]]})
    return rows


def claim_groups(rows: Sequence[dict[str, Any]]) -> np.ndarray:
    """A group id per row: rows of one claim share it."""
    ids: dict[str, int] = {}
    return np.asarray([ids.setdefault(str(r["claim_id"]), len(ids)) for r in rows])


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


def _fit(X: np.ndarray, y: np.ndarray, *, C: float = 1.0, sample_weight: np.ndarray | None = None) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=C, class_weight=None if sample_weight is not None else "balanced", max_iter=3000)
    model.fit((X - mean) / scale, y, sample_weight=sample_weight)
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
    per_fold, aucs = [], []
    pooled = np.zeros_like(y)
    for train, test in splitter.split(X, y, groups):
        params = _fit(X[train], y[train])
        p = _predict(params, X[test])
        pred = (p >= threshold).astype(int)
        pooled[test] = pred
        per_fold.append(balanced_accuracy(y[test], pred))
        aucs.append(_auc(y[test], p))
    return {"balanced_accuracy": float(np.mean(per_fold)), "std": float(np.std(per_fold)), "folds": per_fold,
            "pooled": balanced_accuracy(y, pooled), "auc": float(np.mean([a for a in aucs if a is not None])),
            "auc_folds": aucs, "predictions": pooled.tolist()}


# --------------------------------------------------------------------------- several labelled domains


@dataclass(frozen=True)
class LabelledDomain:
    """A labelled claim/evidence set the scorer is tuned and measured on (a file of the shared datasets)."""

    key: str
    label: str
    relpath: str
    loader: Callable[[str | Path], list[dict[str, Any]]]
    groups: Callable[[Sequence[dict[str, Any]]], np.ndarray]
    grouped_by: str


DOMAINS: tuple[LabelledDomain, ...] = (
    LabelledDomain("scifact", "biomedical abstracts (SciFact)", "groundedness/scifact_train_pairs.jsonl",
                   load_claim_pairs, leak_free_groups, "connected claim_id/doc_id"),
    LabelledDomain("climate_fever", "climate claims vs Wikipedia sentences (Climate-FEVER dev)",
                   "groundedness/climate_fever_dev_pairs.jsonl", load_climate_fever_pairs, claim_groups, "claim_id"),
)


def domain_weights(y: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """Sample weights under which every domain weighs the same and, inside it, grounded and not grounded too
    (so a classifier fitted with them aims at the balanced accuracy of each domain, not of the larger one)."""
    w = np.zeros(len(y), dtype=np.float64)
    cells = [(d, c) for d in np.unique(domain) for c in np.unique(y[domain == d])]
    for d, c in cells:
        mask = (domain == d) & (y == c)
        w[mask] = 1.0 / mask.sum()
    return w * len(y) / w.sum()


def robust_threshold(p: np.ndarray, y: np.ndarray, domain: np.ndarray, grid: np.ndarray | None = None) -> float:
    """The threshold maximising the *worse* domain's balanced accuracy of probabilities ``p`` (ties: nearest 0.5)."""
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2) if grid is None else grid
    best, best_t = -1.0, 0.5
    for t in sorted(grid, key=lambda t: abs(t - 0.5)):
        worst = min(balanced_accuracy(y[domain == d], (p[domain == d] >= t).astype(int)) for d in np.unique(domain))
        if worst > best + 1e-12:
            best, best_t = worst, float(t)
    return best_t


def domain_folds(y: np.ndarray, groups: np.ndarray, *, folds: int, seed: int) -> list[np.ndarray]:
    """Test indices of each of ``folds`` stratified, grouped folds of one domain."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [test for _, test in splitter.split(np.zeros(len(y)), y, groups)]


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None


FitPredict = Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], tuple[Mapping[str, np.ndarray], float]]


def grouped_domain_cv(data: Mapping[str, Mapping[str, Any]], fit_predict: FitPredict, *, folds: int = 5,
                      seed: int = 0, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Grouped k-fold CV over several labelled domains at once; ``data[key]`` holds ``y``, ``groups``, ``labels``.

    Each domain is split into ``folds`` grouped, stratified folds on its own (``domain_folds``); fold i of the
    whole is fold i of every domain. ``fit_predict(train, test)`` gets the row indices of each domain's
    training and test parts, fits on the training parts of *all* domains only, and returns the grounded
    probability of each domain's test rows and the threshold it decides at. Returns per domain the balanced
    accuracy (mean, std, per fold, pooled), the AUC (mean, per fold) and the held-out recall per expert label.
    """
    keys = list(data)
    split = {k: domain_folds(np.asarray(data[k]["y"]), np.asarray(data[k]["groups"]), folds=folds, seed=seed) for k in keys}
    oof = {k: np.zeros(len(data[k]["y"])) for k in keys}
    decided = {k: np.zeros(len(data[k]["y"]), dtype=int) for k in keys}
    thresholds = []
    for i in range(folds):
        train = {k: np.setdiff1d(np.arange(len(data[k]["y"])), split[k][i]) for k in keys}
        test = {k: split[k][i] for k in keys}
        probabilities, threshold = fit_predict(train, test)
        thresholds.append(float(threshold))
        for k in keys:
            oof[k][test[k]] = probabilities[k]
            decided[k][test[k]] = (np.asarray(probabilities[k]) >= threshold).astype(int)
        if log:
            log(f"fold {i}: " + ", ".join(
                f"{k} {balanced_accuracy(np.asarray(data[k]['y'])[test[k]], decided[k][test[k]]):.3f}" for k in keys))
    out: dict[str, Any] = {"folds": folds, "seed": seed, "fold_thresholds": thresholds, "domains": {}}
    for k in keys:
        y, pred, labels = np.asarray(data[k]["y"]), decided[k], np.asarray(data[k]["labels"])
        ba = [balanced_accuracy(y[t], pred[t]) for t in split[k]]
        au = [_auc(y[t], oof[k][t]) for t in split[k]]
        out["domains"][k] = {
            "pairs": int(len(y)), "positives": int(y.sum()),
            "balanced_accuracy": float(np.mean(ba)), "std": float(np.std(ba)), "folds": ba,
            "pooled": balanced_accuracy(y, pred), "auc": float(np.mean([a for a in au if a is not None])), "auc_folds": au,
            "recall_by_label": {label: float(np.mean(pred[labels == label] == (1 if label == "SUPPORT" else 0)))
                                for label in LABELS if np.any(labels == label)},
        }
    all_p = np.concatenate([oof[k] for k in keys])
    all_y = np.concatenate([np.asarray(data[k]["y"]) for k in keys])
    all_d = np.concatenate([np.full(len(data[k]["y"]), k) for k in keys])
    out["oof_robust_threshold"] = robust_threshold(all_p, all_y, all_d)
    return out


def logistic_fit_predict(data: Mapping[str, Mapping[str, Any]], *, C: float = 1.0, inner_folds: int = 3,
                         seed: int = 0) -> FitPredict:
    """``fit_predict`` of a logistic regression over ``data[key]["X"]``: fitted with ``domain_weights``, its threshold
    the ``robust_threshold`` of out-of-fold probabilities of an inner grouped CV of the same training part."""
    keys = list(data)

    def fit_predict(train: Mapping[str, np.ndarray], test: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float]:
        X = np.vstack([data[k]["X"][train[k]] for k in keys])
        y = np.concatenate([np.asarray(data[k]["y"])[train[k]] for k in keys])
        d = np.concatenate([np.full(len(train[k]), k) for k in keys])
        inner = np.zeros(len(y))
        offsets = np.cumsum([0] + [len(train[k]) for k in keys])[:-1]
        inner_split = {k: domain_folds(np.asarray(data[k]["y"])[train[k]], np.asarray(data[k]["groups"])[train[k]],
                                       folds=inner_folds, seed=seed) for k in keys}
        for j in range(inner_folds):
            rows = np.concatenate([off + inner_split[k][j] for k, off in zip(keys, offsets)])
            rest = np.setdiff1d(np.arange(len(y)), rows)
            params = _fit(X[rest], y[rest], C=C, sample_weight=domain_weights(y[rest], d[rest]))
            inner[rows] = _predict(params, X[rows])
        params = _fit(X, y, C=C, sample_weight=domain_weights(y, d))
        return {k: _predict(params, data[k]["X"][test[k]]) for k in keys}, robust_threshold(inner, y, d)

    return fit_predict


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
    cv["domains"] = {"scifact": {"pairs": len(rows), "positives": int(y.sum()), "measured_by": "grouped CV (fitted per fold)",
                                 **{k: cv[k] for k in ("balanced_accuracy", "std", "folds", "pooled", "auc", "auc_folds",
                                                       "recall_by_label")}}}
    return {
        "version": 2,
        "features": list(FEATURES),
        **params,
        "threshold": 0.5,
        "embedder": getattr(embedder, "model_id", ""),
        "pair_model": {k: pair_model.manifest.get(k) for k in ("name", "sha256")} if hasattr(pair_model, "manifest") else None,
        "dataset": {"name": Path(dataset_path).name, "sha256": file_sha256(dataset_path), "rows": len(rows),
                    "positives": int(y.sum())},
        "cv": {"k": folds, "seed": seed, "grouped_by": "connected claim_id/doc_id", **cv},
        "fitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def transfer_scores(p: np.ndarray, y: np.ndarray, groups: np.ndarray, labels: Sequence[str], *, threshold: float,
                    folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Balanced accuracy and AUC of fixed scores ``p`` (a calibration fitted elsewhere) on a domain it never saw,
    on that domain's grouped folds (the same folds as ``grouped_domain_cv``): nothing is fitted here."""
    data = {"d": {"y": y, "groups": groups, "labels": labels}}
    return grouped_domain_cv(data, lambda train, test: ({"d": p[test["d"]]}, threshold), folds=folds, seed=seed)["domains"]["d"]


def add_transfer_domain(calibration: dict[str, Any], key: str, rows: Sequence[dict[str, Any]], X: np.ndarray,
                        *, groups: np.ndarray, dataset_path: str | Path) -> dict[str, Any]:
    """Measure the fitted ``calibration`` on a domain it never saw (features ``X`` of ``rows``), per grouped fold,
    and record it in ``calibration["cv"]["domains"][key]``; returns that entry."""
    p = _predict(calibration, X)
    y = np.asarray([1 if r["label"] == "SUPPORT" else 0 for r in rows])
    cv = calibration["cv"]
    entry = {"sha256": file_sha256(dataset_path),
             "measured_by": "the SciFact-fitted calibration, not refitted (out of domain)",
             **transfer_scores(p, y, groups, [r["label"] for r in rows], threshold=float(calibration.get("threshold", 0.5)),
                               folds=int(cv.get("k", 5)), seed=int(cv.get("seed", 0)))}
    cv.setdefault("domains", {})[key] = entry
    return entry
