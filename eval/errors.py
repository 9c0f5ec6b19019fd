"""Typed errors of the evaluation harness (all subclasses of ``indexers.errors.OndataError``)."""

from __future__ import annotations

from indexers.errors import OndataError


class EvalError(OndataError):
    """Base class of evaluation errors."""


class DatasetError(EvalError):
    """A dataset file is missing or one of its rows is malformed (the message names file and line)."""


class RunStoreError(EvalError):
    """A run folder cannot be used: missing files, or a resumed run whose configuration differs."""


class GateError(EvalError):
    """A ``--fail-under METRIC=VALUE`` gate is malformed or names an unknown metric."""


class JudgeError(EvalError):
    """An LLM judge failed or returned a reply that cannot be parsed."""
