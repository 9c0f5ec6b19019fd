"""Benchmark of the local groundedness scorer: 5-fold grouped cross-validated balanced accuracy.

Data: ``$ONDATA_SHARED_DATASETS/groundedness/scifact_train_pairs.jsonl`` (grounded = SUPPORT).
Prints the balanced accuracy (mean over folds, per fold, and pooled). With ``--write`` it also fits
the logistic regression on all rows and writes ``eval/calibration/local_scorer.json``.

    python bench/groundedness.py [--write] [--folds 5] [--seed 0] [--embedder local|hashing]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from eval.calibrate import fit_calibration, load_claim_pairs  # noqa: E402
from eval.groundedness import CALIBRATION_PATH, _default_embedder  # noqa: E402
from ondata.settings import shared_datasets_dir  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write eval/calibration/local_scorer.json")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embedder", choices=("local", "hashing"), default="local")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "ondata" / "bench_embeddings.sqlite",
                        help="SQLite embedding cache (content-keyed), so re-runs skip the model")
    args = parser.parse_args()

    path = shared_datasets_dir() / "groundedness" / "scifact_train_pairs.jsonl"
    if not path.is_file():
        print(f"skipped: {path} is absent (set ONDATA_SHARED_DATASETS)")
        return 0
    rows = load_claim_pairs(path)
    if args.embedder == "hashing":
        from indexers.embedders.hashing import HashingEmbedder

        embedder = HashingEmbedder(dimensions=512)
    else:
        from indexers.embedders.cache import CachedEmbedder, EmbeddingCache

        args.cache.parent.mkdir(parents=True, exist_ok=True)
        embedder = CachedEmbedder(_default_embedder(), EmbeddingCache(args.cache))
    t0 = time.perf_counter()
    calibration = fit_calibration(rows, embedder=embedder, dataset_path=path, folds=args.folds, seed=args.seed)
    cv = calibration["cv"]
    print(f"dataset: {path.name} ({len(rows)} pairs, {calibration['dataset']['positives']} SUPPORT), embedder {calibration['embedder']}")
    print(f"{args.folds}-fold grouped CV balanced accuracy: {cv['balanced_accuracy']:.3f} ± {cv['std']:.3f} "
          f"(folds: {', '.join(f'{x:.3f}' for x in cv['folds'])}; pooled {cv['pooled']:.3f})")
    print("held-out recall by expert label: " + ", ".join(f"{k} {v:.3f}" for k, v in cv["recall_by_label"].items()))
    if calibration.get("pair_model"):
        print(f"pair model: {calibration['pair_model']['name']} (sha256 {calibration['pair_model']['sha256'][:12]}...)")
    print("coefficients (standardised): " + ", ".join(f"{n}={c:+.2f}" for n, c in zip(calibration["features"], calibration["coef"])))
    print(f"took {time.perf_counter() - t0:.0f}s")
    if args.write:
        CALIBRATION_PATH.parent.mkdir(parents=True, exist_ok=True)
        CALIBRATION_PATH.write_text(json.dumps(calibration, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {CALIBRATION_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
