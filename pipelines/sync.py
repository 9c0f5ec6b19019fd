"""Sync state: compare what a source lists with what the index holds, as a pure function.

The index itself is the sync state (``SearchIndex.list_sources()``: source id -> version, chunk
count, complete flag), so a fresh worker reads it from wherever the index lives (local SQLite or
Azure AI Search). A source whose stored chunks are incomplete (a run was killed mid-write) counts
as changed and is re-ingested; that is how a re-run converges after a crash.

Listing problems (``ItemProblem``, see ``pipelines.records``) travel in ``SyncPlan.problems``. A
``failed`` problem's id counts as listed: its stored document is kept (never deleted as gone) until
the user fixes it; a ``failed`` id ending with ``/`` stands for a folder and keeps every stored id
under it. A ``skipped`` entry (a link not followed, a special file, an unsupported type) is
deliberately not part of the source, so a stored document with its id is deleted like a gone one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from indexers.records import SourceRecord
from pipelines.records import ItemProblem, SourceItem


@dataclass(frozen=True)
class SyncPlan:
    added: tuple[SourceItem, ...] = ()
    changed: tuple[SourceItem, ...] = ()
    deleted: tuple[str, ...] = ()
    unchanged: tuple[SourceItem, ...] = ()
    listed: int = field(default=0)
    problems: tuple[ItemProblem, ...] = ()

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


def plan_sync(items: Iterable[SourceItem | ItemProblem], records: Iterable[SourceRecord]) -> SyncPlan:
    """Diff the listed items against the index's source records.

    Duplicate item ids keep the first listed. Deleted = in the index, neither listed nor kept by a
    ``failed`` problem (see the module docstring).
    """
    stored = {r.source_id: r for r in records}
    added: list[SourceItem] = []
    changed: list[SourceItem] = []
    unchanged: list[SourceItem] = []
    problems: list[ItemProblem] = []
    seen: set[str] = set()
    kept: set[str] = set()
    kept_folders: list[str] = []
    for item in items:
        if item.id in seen:
            continue
        seen.add(item.id)
        if isinstance(item, ItemProblem):
            problems.append(item)
            if item.status == "failed":
                (kept_folders.append if item.id.endswith("/") else kept.add)(item.id)
            continue
        rec = stored.get(item.id)
        if rec is None:
            added.append(item)
        elif rec.version != item.version or not rec.complete:
            changed.append(item)
        else:
            unchanged.append(item)
    listed = {i.id for i in (*added, *changed, *unchanged)}
    deleted = tuple(sorted(
        sid for sid in stored
        if sid not in listed and sid not in kept and not any(sid.startswith(f) for f in kept_folders)
    ))
    return SyncPlan(tuple(added), tuple(changed), deleted, tuple(unchanged), listed=len(listed),
                    problems=tuple(problems))
