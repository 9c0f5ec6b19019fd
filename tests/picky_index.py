"""A SearchIndex wrapper for tests: refuses to write the chunks of one source, as a backend rejecting a document."""

from __future__ import annotations

from indexers.errors import IndexError_


class PickyIndex:
    """Wraps an index; refuses to write chunks of one source (a document the backend rejects)."""

    def __init__(self, inner, refuse):
        self.inner, self.refuse = inner, refuse

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def upsert(self, chunks, *, vectors, **kw):
        if any(c.source_id == self.refuse for c in chunks):
            raise IndexError_("the index rejected this document", doc_id=self.refuse)
        return self.inner.upsert(chunks, vectors=vectors, **kw)
