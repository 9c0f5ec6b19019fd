"""Benchmark of the local groundedness scorer on two labelled domains, and its throughput.

Data (``$ONDATA_SHARED_DATASETS/groundedness/``, grounded = SUPPORT(S)):
- ``scifact_train_pairs.jsonl``: 5-fold grouped (connected claim/abstract) cross-validation of the
  logistic calibration, fitted per fold on the training folds;
- ``climate_fever_dev_pairs.jsonl`` (skipped when absent): the calibration fitted on SciFact, measured as is
  on Climate-FEVER's 5 folds grouped by claim (an out-of-domain figure: nothing is fitted on it).
Prints, per domain, balanced accuracy (mean ± std, folds, pooled), AUC (mean, folds) and held-out recall per
expert label. ``--write`` fits on all SciFact rows and writes ``eval/calibration/local_scorer.json`` with both
domains' figures and their MiniLM profiles (for the report's domain warning). ``--speed N`` times the scorer
on N SciFact claims against their abstracts (claims/s).

    nice -n 19 python bench/groundedness.py [--write] [--folds 5] [--seed 0] [--speed 200] [--embedder local|hashing]
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

from eval.calibrate import (  # noqa: E402
    DOMAINS,
    add_transfer_domain,
    claim_groups,
    fit_calibration,
    load_claim_pairs,
    load_climate_fever_pairs,
    pair_inputs,
)
from eval.groundedness import CALIBRATION_PATH, LocalGroundednessScorer, _default_embedder, domain_profile  # noqa: E402
from ondata.settings import shared_datasets_dir  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write eval/calibration/local_scorer.json")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embedder", choices=("local", "hashing"), default="local")
    parser.add_argument("--speed", type=int, default=0, help="time the scorer on N SciFact claims with their abstracts")
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
    print(f"scifact: {path.name} ({len(rows)} pairs, {calibration['dataset']['positives']} SUPPORT), embedder {calibration['embedder']}")
    cf_path = path.parent / "climate_fever_dev_pairs.jsonl"
    if cf_path.is_file():
        from eval.pair_model import PairModel

        cf_rows = load_climate_fever_pairs(cf_path)
        scorer = LocalGroundednessScorer(embedder=embedder, calibration=calibration, pair_model=PairModel())
        X = scorer.features_many(pair_inputs(cf_rows)[0])
        add_transfer_domain(calibration, "climate_fever", cf_rows, X, groups=claim_groups(cf_rows), dataset_path=cf_path)
        print(f"climate_fever: {cf_path.name} ({len(cf_rows)} pairs), scored with the SciFact-fitted calibration")
    else:
        print(f"skipped climate_fever: {cf_path} is absent")
    for key, m in calibration["cv"]["domains"].items():
        print(f"{key:14s} balanced accuracy {m['balanced_accuracy']:.3f} ± {m['std']:.3f} "
              f"(folds: {', '.join(f'{x:.3f}' for x in m['folds'])}; pooled {m['pooled']:.3f})  "
              f"AUC {m['auc']:.3f} (folds: {', '.join(f'{x:.3f}' for x in m['auc_folds'])})  [{m['measured_by']}]")
        print(f"{'':14s} held-out recall by expert label: " + ", ".join(f"{k} {v:.3f}" for k, v in m["recall_by_label"].items()))
    if calibration.get("pair_model"):
        print(f"pair model: {calibration['pair_model']['name']} (sha256 {calibration['pair_model']['sha256'][:12]}...)")
    print("coefficients (standardised): " + ", ".join(f"{n}={c:+.2f}" for n, c in zip(calibration["features"], calibration["coef"])))
    print(f"took {time.perf_counter() - t0:.0f}s")
    calibration["domains"] = {}
    for domain in DOMAINS:
        source = shared_datasets_dir() / domain.relpath
        if source.is_file():
            texts = [" ".join(r["sentences"]) for r in domain.loader(source)]
            calibration["domains"][domain.key] = domain_profile(embedder.embed_documents(texts), label=domain.label)
    if args.write:
        CALIBRATION_PATH.parent.mkdir(parents=True, exist_ok=True)
        CALIBRATION_PATH.write_text(json.dumps(calibration, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {CALIBRATION_PATH}")
    if args.speed:
        pairs = pair_inputs(rows[: args.speed])[0]
        scorer = LocalGroundednessScorer(embedder=_default_embedder(), calibration=calibration)  # no embedding cache
        scorer.score_many(pairs[:2])  # load the models
        t1 = time.perf_counter()
        scorer.score_many(pairs)
        seconds = time.perf_counter() - t1
        words = sum(len(p[1][0].split()) for p in pairs) / len(pairs)
        print(f"throughput: {len(pairs)} claims against their abstracts (~{words:.0f} words each) in {seconds:.1f}s = "
              f"{len(pairs) / seconds:.2f} claims/s (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
