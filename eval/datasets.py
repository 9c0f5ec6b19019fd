"""Evaluation datasets: QA sets with inline gold citations, and BEIR corpora/queries/qrels.

A QA set is JSON Lines, one object per line::

    {"question": "...", "truth": "... [Benefit_Options.pdf#page=3] ...",
     "answerable": true, "groups": ["hr"]}

``truth`` cites its sources inline as ``[file#page=N]`` (pages 1-based) or ``[file]``; these are
parsed into ``GoldCitation(file, page)`` in order of appearance, without duplicates.
``answerable`` (default true) and ``groups`` (the ACL groups of the user asking; a row without
``groups`` asks with the run's groups, public-only unless ``ondata eval run --group/--all-groups``)
are optional;
other keys (``evidence``...) are kept in ``extra``. An unanswerable row needs no citation; a row
marked ``"answerable": true`` without any citation is allowed (it just has no retrieval gold). A
row with neither a citation nor an ``answerable`` flag is an error (it would be scored as an
answerable question and every abstention as a failure) unless ``allow_ungraded=True``, which loads
it with ``ungraded=True`` (``ondata eval run --allow-ungraded`` prints how many and their lines). A malformed row raises
``DatasetError`` naming the file, the line and what is wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from eval.errors import DatasetError
from indexers.records import check_groups

# A citation: "[" name "." ext ("#page=" N)? "]" -- the same shape the reference app's evals match.
CITATION_RE = re.compile(r"\[([^\[\]]+?\.[A-Za-z0-9]{2,5})(?:#page=(\d+))?\]")


@dataclass(frozen=True)
class GoldCitation:
    """A gold source: a file name (as cited) and a 1-based page, or None for a whole document."""

    file: str
    page: int | None = None

    def render(self) -> str:
        return f"[{self.file}#page={self.page}]" if self.page is not None else f"[{self.file}]"


@dataclass(frozen=True)
class QAItem:
    question: str
    truth: str
    gold: tuple[GoldCitation, ...] = ()
    answerable: bool = True
    groups: tuple[str, ...] | None = None  # None: the row names none, the run's groups apply
    line: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    ungraded: bool = False  # no gold citation and no ``answerable`` flag (loaded with allow_ungraded)

    @property
    def qid(self) -> str:
        """A stable key: sha256 of the question text (first 16 hex digits)."""
        return question_hash(self.question)


def question_hash(question: str) -> str:
    return hashlib.sha256(question.strip().encode("utf-8")).hexdigest()[:16]


def parse_citations(text: str) -> tuple[GoldCitation, ...]:
    """Inline ``[file#page=N]`` / ``[file]`` citations of ``text``, in order, without duplicates."""
    seen: dict[GoldCitation, None] = {}
    for match in CITATION_RE.finditer(text):
        name = match.group(1).strip()
        page = int(match.group(2)) if match.group(2) else None
        seen.setdefault(GoldCitation(name, page), None)
    return tuple(seen)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def iter_json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of each non-blank line of a JSONL file (``.gz`` read compressed);
    a missing file or a line that is not JSON is a ``DatasetError`` naming the file and line."""
    if not path.is_file():
        raise DatasetError(f"dataset file {path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                yield number, json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}, line {number}: not valid JSON ({exc.msg} at column {exc.colno})") from None


def _parse_qa_row(path: Path, number: int, row: Any, *, allow_ungraded: bool = False) -> QAItem:
    where = f"{path}, line {number}"
    if not isinstance(row, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(row).__name__}")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise DatasetError(f"{where}: 'question' must be a non-empty string")
    truth = row.get("truth", "")
    if not isinstance(truth, str):
        raise DatasetError(f"{where}: 'truth' must be a string")
    answerable = row.get("answerable", True)
    if not isinstance(answerable, bool):
        raise DatasetError(f"{where}: 'answerable' must be true or false, got {answerable!r}")
    if answerable and not truth.strip():
        raise DatasetError(f"{where}: an answerable question needs a non-empty 'truth'")
    groups = row.get("groups")
    if "groups" in row:  # null is an error too: it must never read as "no groups given"
        if not isinstance(groups, list) or not all(isinstance(g, str) and g.strip() for g in groups):
            raise DatasetError(f"{where}: 'groups' must be a list of non-empty strings, got {json.dumps(groups)[:80]}")
        groups = check_groups(groups)
    for match in re.finditer(r"#page=([^\]\s]*)\]", truth):
        if not match.group(1).isdigit() or int(match.group(1)) < 1:
            raise DatasetError(f"{where}: citation page {match.group(1)!r} is not a positive integer")
    gold = parse_citations(truth)
    ungraded = not gold and "answerable" not in row
    if ungraded and not allow_ungraded:
        raise DatasetError(
            f"{where}: the row has no gold citation ([file#page=N] in 'truth') and no 'answerable' flag; cite its "
            "sources, or set \"answerable\": false if the documents cannot answer it "
            "(`ondata eval run --allow-ungraded` scores such rows without retrieval gold)"
        )
    extra = {k: v for k, v in row.items() if k not in {"question", "truth", "answerable", "groups"}}
    return QAItem(
        question=question.strip(),
        truth=truth,
        gold=gold,
        answerable=answerable,
        groups=groups,
        line=number,
        extra=extra,
        ungraded=ungraded,
    )


def load_qa(path: str | Path, *, allow_ungraded: bool = False) -> list[QAItem]:
    """Every row of a QA JSONL file; raises ``DatasetError`` on the first malformed row or a duplicate question.

    ``allow_ungraded``: load rows without gold citation and ``answerable`` flag (marked
    ``QAItem.ungraded``, for the caller to count and warn about) instead of refusing them.
    """
    path = Path(path)
    items: list[QAItem] = []
    seen: dict[str, int] = {}
    for number, row in iter_json_lines(path):
        item = _parse_qa_row(path, number, row, allow_ungraded=allow_ungraded)
        if item.qid in seen:
            raise DatasetError(f"{path}, line {number}: duplicate question (first seen on line {seen[item.qid]})")
        seen[item.qid] = number
        items.append(item)
    if not items:
        raise DatasetError(f"{path}: the dataset has no rows")
    return items


def describe_lines(lines: list[int], *, limit: int = 10) -> str:
    """``line 3`` / ``lines 3, 7, 9`` / ``lines 3, 7, ... (+12 more)``."""
    shown = ", ".join(str(n) for n in lines[:limit])
    more = f", ... (+{len(lines) - limit} more)" if len(lines) > limit else ""
    return f"line{'s' if len(lines) > 1 else ''} {shown}{more}"


# --------------------------------------------------------------------------- BEIR


@dataclass(frozen=True)
class BeirDoc:
    id: str
    title: str
    text: str


def load_beir_corpus(path: str | Path) -> dict[str, BeirDoc]:
    """A BEIR ``corpus.jsonl[.gz]``: ``{"_id","title","text"}`` per line -> {id: BeirDoc}."""
    path = Path(path)
    corpus: dict[str, BeirDoc] = {}
    for number, row in iter_json_lines(path):
        if not isinstance(row, dict) or "_id" not in row or not isinstance(row.get("text"), str):
            raise DatasetError(f"{path}, line {number}: a corpus row needs '_id' and a string 'text'")
        corpus[str(row["_id"])] = BeirDoc(str(row["_id"]), str(row.get("title") or ""), row["text"])
    return corpus


def load_beir_queries(path: str | Path) -> dict[str, str]:
    """A BEIR ``queries.jsonl``: ``{"_id","text"}`` per line -> {id: text}."""
    path = Path(path)
    queries: dict[str, str] = {}
    for number, row in iter_json_lines(path):
        if not isinstance(row, dict) or "_id" not in row or not isinstance(row.get("text"), str):
            raise DatasetError(f"{path}, line {number}: a query row needs '_id' and a string 'text'")
        queries[str(row["_id"])] = row["text"]
    return queries


def load_beir_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """A BEIR qrels TSV (``query-id corpus-id score``, header row optional) -> {qid: {doc_id: relevance}}."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"qrels file {path} does not exist")
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            parts = raw.strip().split("\t") if "\t" in raw else raw.split()
            if not parts or not raw.strip():
                continue
            if number == 1 and parts[0] in ("query-id", "query_id", "qid"):
                continue
            if len(parts) != 3:
                raise DatasetError(f"{path}, line {number}: expected 3 columns (query-id corpus-id score), got {len(parts)}")
            try:
                score = int(parts[2])
            except ValueError:
                raise DatasetError(f"{path}, line {number}: score {parts[2]!r} is not an integer") from None
            qrels.setdefault(parts[0], {})[parts[1]] = score
    return qrels
