"""The Embedder and SearchIndex ports. Backends live in their own modules and are built by `ondata/`."""

from __future__ import annotations

from typing import Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from indexers.records import Chunk, Groups, IndexStats, ScopeRecord, SearchHit, SearchRequest, SourceRecord


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of ``dimensions`` components.

    ``model_id`` names the model (and anything that changes its vectors); together with
    ``dimensions`` it keys the embedding cache.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Shape (len(texts), dimensions), float32, rows L2-normalised."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """Shape (dimensions,), float32, L2-normalised."""
        ...


@runtime_checkable
class SearchIndex(Protocol):
    """Where chunks live.

    - ``ensure()`` creates the index if missing and checks it fits (dimensions); idempotent.
    - ``upsert(chunks, vectors=..., replace_sources=..., scope=...)`` adds or replaces chunks by id;
      ``vectors[i]`` belongs to ``chunks[i]``. Every other chunk of the ``replace_sources`` of that scope
      (default: the chunks' scopes) and of the scope ``''`` (stored before scopes) is deleted by the same
      call (re-ingesting a document): in one transaction where the backend has them (local index).
    - ``delete_sources(ids, scope=...)`` removes every chunk of those sources of that scope (``None``:
      of every scope); deleting a missing source succeeds. A document is named by (scope, source id).
    - ``search(request)`` returns at most ``request.top`` hits, best first, honouring filter and groups.
    - ``get_chunks(ids, groups=..., public_when_no_groups=...)`` returns the chunks with those ids
      that the caller may see, under the same security trimming as ``search`` (an id the caller may
      not see is left out exactly like a missing one), in the order asked.
      ``groups`` as in ``SearchRequest``: the default ``()`` sees public chunks only,
      ``ALL_GROUPS`` everything; anything else than names or ``ALL_GROUPS`` is a ``TypeError``.
    - ``count()`` is the number of chunks; ``list_sources(scope=...)`` what the index holds per
      document of that scope (``None``: every scope), sorted by scope then source id (empty when empty).
      ``stats()`` the model, dimensions, chunks and sources (backends add fields of their own).
    - ``record_scope(record)`` / ``list_scopes()``: where each scope was ingested from (written by every
      ingest run that writes, read by ``ondata index rebuild``).
    - ``flush()`` makes every write so far durable and searchable (the end of an ingestion run);
      ``close()`` releases files and clients (idempotent). An index is a context manager that
      closes on exit (entering may create it, as ``ensure()``).
    """

    def ensure(self) -> None: ...

    def upsert(self, chunks: Sequence[Chunk], *, vectors: np.ndarray, replace_sources: Iterable[str] = (),
               scope: str | None = None) -> None: ...

    def delete_sources(self, source_ids: Iterable[str], *, scope: str | None = None) -> None: ...

    def search(self, request: SearchRequest) -> list[SearchHit]: ...

    def get_chunks(self, ids: Iterable[str], *, groups: Groups = (),
                   public_when_no_groups: bool = True) -> list[Chunk]: ...

    def count(self) -> int: ...

    def list_sources(self, *, scope: str | None = None) -> list[SourceRecord]: ...

    def record_source_stats(self, scope: str, stats: dict[str, str]) -> None:
        """Store the change tokens (``SourceItem.stat``) of documents of ``scope`` listed unchanged; a
        backend that keeps no tokens does nothing (its sources are then re-read every run)."""
        ...

    def record_scope(self, record: ScopeRecord) -> None:
        """Record where a scope's documents come from (source kind, root or container + prefix, settings;
        never a credential), replacing the record of the same key (``ScopeRecord.key``)."""
        ...

    def list_scopes(self) -> list[ScopeRecord]:
        """The recorded scopes, sorted by key (empty when none): what ``ondata index rebuild`` re-reads."""
        ...

    def stats(self) -> IndexStats: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> "SearchIndex": ...

    def __exit__(self, *exc: object) -> None: ...
