"""Evaluation harness: QA datasets with gold citations, per-question scoring of retrieval,
citations and groundedness, resumable run folders, reports for data teams and run comparison.

Modules: ``datasets`` (QA / BEIR loaders), ``metrics`` (pure metric functions), ``groundedness``
(local and LLM-judge scorers), ``calibrate`` (fitting the local scorer), ``scoring`` (records,
claims, summary), ``store`` (run folders), ``runner`` (run / resume / rescore), ``report``,
``compare``, ``gates`` (``--fail-under``) and ``flows`` (Prefect).
"""
