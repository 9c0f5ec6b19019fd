"""Train the pair model of the local groundedness scorer (``eval/calibration/pair_model_v1.*``).

Synthetic pairs (``eval.pair_training``) from the SciFact corpus abstracts
(``$ONDATA_SHARED_DATASETS/scifact/corpus.jsonl.gz``), leaving out every abstract of the labelled
pairs file ``groundedness/scifact_train_pairs.jsonl`` so the scorer's cross-validation there never
sees them. About 21,000 pairs, one epoch: ~35 minutes on 2 CPU cores. Afterwards refit the
logistic calibration with ``python bench/groundedness.py --write``.

    python bench/train_pair_model.py [--out eval/calibration] [--epochs 1] [--top-layers 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

from _common import ROOT, datasets_dir, require

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from eval.datasets import file_sha256  # noqa: E402
from eval.pair_training import build_pairs, train  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "calibration")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--top-layers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=6e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N abstracts (smoke runs)")
    args = parser.parse_args()

    corpus = require(datasets_dir() / "scifact" / "corpus.jsonl.gz")
    labelled = require(datasets_dir() / "groundedness" / "scifact_train_pairs.jsonl")
    exclude = {str(json.loads(line)["doc_id"]) for line in labelled.open(encoding="utf-8") if line.strip()}
    with gzip.open(corpus, "rt", encoding="utf-8") as fh:
        documents = [json.loads(line) for line in fh]
    if args.limit:
        documents = documents[: args.limit]
    t0 = time.perf_counter()
    pairs = build_pairs(documents, exclude=exclude, seed=args.seed)
    kinds = Counter(p["kind"] for p in pairs)
    print(f"{len(pairs)} synthetic pairs from {len(documents) - len(exclude)} abstracts "
          f"({len(exclude)} labelled abstracts left out) in {time.perf_counter() - t0:.0f}s: "
          + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())), flush=True)
    manifest = train(pairs, args.out, top_layers=args.top_layers, lr=args.lr, epochs=args.epochs, seed=args.seed,
                     training_data={"corpus": "scifact/corpus.jsonl.gz", "corpus_sha256": file_sha256(corpus),
                                    "excluded": f"abstracts of {labelled.name} ({len(exclude)})",
                                    "kinds": dict(sorted(kinds.items()))},
                     log=lambda line: print(line, flush=True))
    print(f"wrote {args.out / manifest['weights']} ({(args.out / manifest['weights']).stat().st_size / 1e6:.1f} MB) "
          f"and {manifest['name']}.json; now run: python bench/groundedness.py --write")
    return 0


if __name__ == "__main__":
    sys.exit(main())
