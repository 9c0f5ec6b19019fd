"""The sources index of the Azure AI Search backend: one document per source, what ``list_sources()`` reads.

``AzureSearchIndex`` keeps a second index, ``<index name>-sources``, beside its chunk index: one
document per (scope, source id) with the source's record (version, chunk count, complete, groups,
last write, change token) and its chunks' state (``chunks``: each chunk id with its version,
declared ``source_chunks`` and groups, as compact JSON, never searched). The record is the
aggregate of that state, computed exactly as the local index's manifest computes it from its
chunks (``indexers.local_manifest``), so ``list_sources()`` pages through documents (1,000 a
request), not through every chunk.

Maintained by the writes (``AzureSearchIndex.upsert`` / ``delete_sources``), crash-safe in this
order: before chunks are written, the touched sources' documents are marked ``pending`` (a pending
source is incomplete, so a run killed after it re-ingests the source; a new source's chunks always
have a document that names them); then the chunks; then the final documents. A delete removes the
chunks first, then the documents. An index whose chunk index predates the sources index gets it
built from its chunks by ``ensure()`` (once; the index description says ``building`` until done).

Limits: Azure AI Search has no transactions and its reads trail writes by about a second, so two
writes of the same source within that second may merge with a stale state (the engine writes each
source once per run, whole); a chunk id that moves from one source to another is not removed from
the first source's state (chunk ids name their source, ``indexers.records.chunk_id_for``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Mapping, Sequence

from indexers.records import Chunk, SourceRecord

SUFFIX = "-sources"
MAX_BASE_NAME = 128 - len(SUFFIX)
DESCRIPTION_READY = "ondata sources 1"
DESCRIPTION_BUILDING = "ondata sources building"
RECORD_FIELDS = ("id", "scope", "source_id", "version", "chunk_count", "complete", "pending", "groups",
                 "ingested_at", "stat")

#: chunk id -> (source_version, source_chunks, groups)
State = dict[str, tuple[str, int, tuple[str, ...]]]


def name_for(index_name: str) -> str:
    return index_name + SUFFIX


def key(scope: str, source_id: str) -> str:
    """The document key of a source: a hash (keys allow letters, digits, ``_-=`` only)."""
    return hashlib.sha256(f"{scope}\x00{source_id}".encode("utf-8")).hexdigest()


def fields() -> list[Any]:
    from azure.search.documents.indexes.models import SearchField, SearchFieldDataType as T_

    def f(name: str, type_: str, **kw: Any) -> Any:
        base = dict(searchable=False, filterable=False, sortable=False, facetable=False, retrievable=True)
        base.update(kw)
        return SearchField(name=name, type=type_, **base)

    s = T_.STRING
    return [
        f("id", s, key=True, filterable=True, sortable=True),
        f("scope", s, filterable=True, sortable=True),
        f("source_id", s, filterable=True, sortable=True),
        f("version", s),
        f("chunk_count", T_.INT32),
        f("complete", T_.BOOLEAN, filterable=True),
        f("pending", T_.BOOLEAN, filterable=True),
        f("groups", "Collection(Edm.String)"),
        f("ingested_at", s),
        f("stat", s),
        f("chunks", s),
    ]


def encode_state(state: State) -> str:
    """``chunks`` of a document: ``{"k": [[version, declared, groups], ...], "c": [[chunk id, k], ...]}``."""
    kinds: dict[tuple[str, int, tuple[str, ...]], int] = {}
    rows = [[cid, kinds.setdefault(kind, len(kinds))] for cid, kind in sorted(state.items())]
    return json.dumps({"k": [[v, d, list(g)] for v, d, g in kinds], "c": rows}, ensure_ascii=False,
                      separators=(",", ":"))


def decode_state(text: str | None) -> State:
    if not text:
        return {}
    data = json.loads(text)
    kinds = [(str(v), int(d), tuple(g)) for v, d, g in data.get("k", [])]
    return {str(cid): kinds[k] for cid, k in data.get("c", [])}


def state_of(chunks: Iterable[Chunk]) -> dict[tuple[str, str], State]:
    """The chunks' state per (scope, source id); a chunk id repeated keeps the last."""
    out: dict[tuple[str, str], State] = {}
    for c in chunks:
        out.setdefault((c.scope, c.source_id), {})[c.id] = (c.source_version, int(c.source_chunks), tuple(c.groups))
    return out


def document(scope: str, source_id: str, state: State, *, ingested_at: str, stat: str) -> dict[str, Any]:
    """The sources-index document of a source whose chunks are ``state`` (non-empty)."""
    versions = {v for v, _, _ in state.values()}
    declared = {d for _, d, _ in state.values()}
    n = len(state)
    top = max(declared)
    groups = dict.fromkeys(g for _, _, gs in state.values() for g in gs)
    return {"id": key(scope, source_id), "scope": scope, "source_id": source_id, "version": max(versions),
            "chunk_count": n, "complete": len(versions) == 1 and len(declared) == 1 and (top == 0 or top == n),
            "pending": False, "groups": list(groups), "ingested_at": ingested_at, "stat": stat,
            "chunks": encode_state(state)}


def pending(scope: str, source_id: str) -> dict[str, Any]:
    """A ``mergeOrUpload`` that marks a source as being written (incomplete until its final document)."""
    return {"@search.action": "mergeOrUpload", "id": key(scope, source_id), "scope": scope,
            "source_id": source_id, "pending": True}


def record(doc: Mapping[str, Any]) -> SourceRecord:
    """The ``SourceRecord`` of a sources-index document."""
    complete = bool(doc.get("complete")) and not doc.get("pending") and doc.get("version") is not None
    return SourceRecord(source_id=str(doc.get("source_id") or ""), version=str(doc.get("version") or ""),
                        chunk_count=int(doc.get("chunk_count") or 0), complete=complete,
                        scope=str(doc.get("scope") or ""), groups=tuple(doc.get("groups") or ()),
                        ingested_at=str(doc.get("ingested_at") or ""), stat=str(doc.get("stat") or ""))


def merged(stored: State, written: State) -> State:
    out = dict(stored)
    out.update(written)
    return out


def max_stat(chunks: Sequence[Chunk]) -> str:
    return max((c.source_stat for c in chunks), default="")
