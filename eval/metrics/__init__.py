"""Pure metric functions over plain dicts and lists; none of them mutates its inputs.

- ``eval.metrics.retrieval``: recall@k, MRR and nDCG@k of retrieved hits against gold citations
  at document and page level (exact page and a ±1 page tolerance), computed with ir_measures.
- ``eval.metrics.citations``: ``any_citation`` and ``citations_matched`` as the Azure reference
  app computes them, and citation precision/recall from per-citation support judgements.
- ``eval.metrics.answers``: groundedness from per-claim judgements, answer length, latency (abstention
  rates are means of per-question values, ``eval.scoring.MEAN_METRICS``).
"""
