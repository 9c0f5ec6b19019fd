"""Sync state: compare what a source lists with what the index holds, as a pure function.

The index itself is the sync state (``SearchIndex.list_sources()``: source id -> version, chunk
count, complete flag), so a fresh worker reads it from wherever the index lives (local SQLite or
Azure AI Search). A source whose stored chunks are incomplete (a run was killed mid-write) counts
as changed and is re-ingested; that is how a re-run converges after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from indexers.records import SourceRecord
from pipelines.records import SourceItem


@dataclass(frozen=True)
class SyncPlan:
    added: tuple[SourceItem, ...] = ()
    changed: tuple[SourceItem, ...] = ()
    deleted: tuple[str, ...] = ()
    unchanged: tuple[SourceItem, ...] = ()
    listed: int = field(default=0)

    @property
    def to_process(self) -> tuple[SourceItem, ...]:
        return self.added + self.changed

    def summary(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "changed": len(self.changed),
            "deleted": len(self.deleted),
            "unchanged": len(self.unchanged),
        }


def plan_sync(items: Iterable[SourceItem], records: Iterable[SourceRecord]) -> SyncPlan:
    """Diff the listed items against the index's source records.

    Duplicate item ids keep the first listed. Deleted = in the index, not listed.
    """
    stored = {r.source_id: r for r in records}
    added: list[SourceItem] = []
    changed: list[SourceItem] = []
    unchanged: list[SourceItem] = []
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            continue
        seen.add(item.id)
        rec = stored.get(item.id)
        if rec is None:
            added.append(item)
        elif rec.version != item.version or not rec.complete:
            changed.append(item)
        else:
            unchanged.append(item)
    deleted = tuple(sorted(sid for sid in stored if sid not in seen))
    return SyncPlan(tuple(added), tuple(changed), deleted, tuple(unchanged), listed=len(seen))
