"""Allowed sets of the local index: which row ids a search may return, from cached bitmaps.

A search with security trimming or a filter restricts both arms to the rows its caller may see
*before* their top-k cut. Computing that set with SQL for every query costs a scan of the index
(3 s per query at 1M chunks); here it is a few numpy operations on cached masks:

- ``AllowedSet`` is what a search gets: a boolean mask indexed by row id (``.mask``), its size
  (``.count``), its sorted row ids (``.ids()``), and the packed bitmap that
  ``faiss.IDSelectorBitmap(len(b), faiss.swig_ptr(b))`` takes for ``b = s.bitmap()`` (bit ``i & 7`` of byte ``i >> 3``).
- ``AllowedCache`` keeps, per SQLite *generation*, one mask of the live rows, one of the public
  rows (``has_groups = 0``), one per ACL group, and one per recently used filter (keyed by its SQL
  and parameters). It is derived from SQLite, the authority, and brought to a new generation
  incrementally: row ids only grow and chunk rows are never updated in place (a write deletes and
  inserts), so the rows added since the last generation seen are ``rid > watermark`` and the rows
  removed are logged in ``chunk_tombstones`` (an ``AFTER DELETE`` trigger). A 1% change costs 1%;
  when the log does not reach back far enough (pruned, or an index older than the log), the masks
  are rebuilt from SQLite in one pass.

It is an accelerator only: ``LocalIndex.search`` still fetches its final rows with the filter and
the trimming in SQL, so a stale mask could drop a row but never return one the caller may not see.
Memory: one byte per row id for each mask (1 MB per group at 1M chunks).
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

#: Filters whose masks are kept (least recently used dropped first).
MAX_CACHED_FILTERS = 32


class AllowedSet:
    """The row ids a search may return: a boolean mask over row ids ``0 .. len(self) - 1``.

    ``mask[rid]`` is True when the row is allowed; row ids at or past ``len(self)`` are not.
    Treat ``mask`` as read-only (it may be shared with the cache).
    """

    __slots__ = ("mask", "_count", "_bitmap")

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask
        self._count: int | None = None
        self._bitmap: np.ndarray | None = None

    def __len__(self) -> int:
        """The bound of the mask (one past the highest row id it can hold)."""
        return int(self.mask.shape[0])

    @property
    def count(self) -> int:
        """How many row ids are allowed."""
        if self._count is None:
            self._count = int(np.count_nonzero(self.mask))
        return self._count

    def ids(self) -> np.ndarray:
        """The allowed row ids, sorted ascending (int64)."""
        return np.flatnonzero(self.mask).astype(np.int64, copy=False)

    def bitmap(self) -> np.ndarray:
        """The mask packed 8 ids per byte, little-endian bit order (``faiss.IDSelectorBitmap``)."""
        if self._bitmap is None:
            self._bitmap = np.packbits(self.mask, bitorder="little")
        return self._bitmap

    def __contains__(self, rid: object) -> bool:
        i = int(rid)  # type: ignore[call-overload]
        return 0 <= i < self.mask.shape[0] and bool(self.mask[i])

    def take(self, rids: np.ndarray) -> np.ndarray:
        """A boolean array: which of ``rids`` (int array) are allowed."""
        rids = np.asarray(rids, dtype=np.int64)
        inside = rids < self.mask.shape[0]
        out = np.zeros(rids.shape[0], dtype=bool)
        out[inside] = self.mask[rids[inside]]
        return out


class AllowedCache:
    """Per-generation masks of the local index (see the module docstring). Not thread-safe: the
    index calls it under its lock, inside the read snapshot of the search."""

    def __init__(self) -> None:
        self.generation: int | None = None
        self.watermark = 0  # every row id <= watermark has been seen
        self._size = 0
        self._live = np.zeros(0, dtype=bool)
        self._public = np.zeros(0, dtype=bool)
        self._groups: dict[str, np.ndarray] = {}
        self._filters: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.full_builds = 0  # how many times the masks were rebuilt from scratch (tests, logs)

    # ---------------------------------------------------------------- maintenance

    def refresh(self, con: sqlite3.Connection, generation: int) -> None:
        """Bring the masks to ``generation`` (the caller's read snapshot): incrementally from the
        tombstone log and the rows above the watermark, or rebuilt when the log does not reach back."""
        if self.generation == generation:
            return
        if self.generation is not None and self.generation < generation and log_reaches(con, self.generation):
            self._catch_up(con, self.generation)
        else:
            self._build(con)
        self.generation = generation

    def _grow(self, bound: int) -> None:
        if bound <= self._size:
            return
        size = max(bound, 1024, self._size + self._size // 2)

        def grown(mask: np.ndarray) -> np.ndarray:
            out = np.zeros(size, dtype=bool)
            out[: mask.shape[0]] = mask
            return out

        self._live, self._public = grown(self._live), grown(self._public)
        self._groups = {g: grown(m) for g, m in self._groups.items()}
        self._filters = OrderedDict((k, grown(m)) for k, m in self._filters.items())
        self._size = size

    def _build(self, con: sqlite3.Connection) -> None:
        self.full_builds += 1
        self._size = 0
        self._live = np.zeros(0, dtype=bool)
        self._public = np.zeros(0, dtype=bool)
        self._groups = {}
        self._filters = OrderedDict()
        top = int(con.execute("SELECT coalesce(max(rid), 0) FROM chunks").fetchone()[0])
        self._grow(top + 1)
        self._add_rows(con, above=0)
        self.watermark = top

    def _catch_up(self, con: sqlite3.Connection, since: int) -> None:
        dead = sql_ints(con, "SELECT group_concat(rid) FROM chunk_tombstones WHERE gen >= ?", [since])
        dead = dead[dead < self._size]
        if dead.size:
            for mask in (self._live, self._public, *self._groups.values(), *self._filters.values()):
                mask[dead] = False
        top = int(con.execute("SELECT coalesce(max(rid), 0) FROM chunks").fetchone()[0])
        if top > self.watermark:
            self._grow(top + 1)
            self._add_rows(con, above=self.watermark)
            for (sql, params), mask in self._filters.items():
                mask[sql_ints(con, f"SELECT group_concat(c.rid) FROM chunks c WHERE c.rid > ? AND ({sql})",
                           [self.watermark, *params])] = True
            self.watermark = top

    def _add_rows(self, con: sqlite3.Connection, *, above: int) -> None:
        """Set the live, public and group bits of the rows with ``rid > above``."""
        self._live[sql_ints(con, "SELECT group_concat(rid) FROM chunks WHERE rid > ?", [above])] = True
        self._public[sql_ints(con, "SELECT group_concat(rid) FROM chunks WHERE rid > ? AND has_groups = 0", [above])] = True
        for grp, joined in con.execute(
            "SELECT grp, group_concat(rid) FROM chunk_groups WHERE rid > ? GROUP BY grp", [above]
        ):
            mask = self._groups.get(grp)
            if mask is None:
                mask = self._groups[grp] = np.zeros(self._size, dtype=bool)
            mask[_split(joined)] = True

    # ---------------------------------------------------------------- queries

    def allowed(
        self,
        con: sqlite3.Connection,
        *,
        groups: Sequence[str] | None,
        public_when_no_groups: bool,
        filter_sql: tuple[str, Sequence[Any]] | None,
    ) -> AllowedSet | None:
        """The allowed set of one request at the refreshed generation; None when nothing restricts it.

        ``groups``: the caller's groups, or None for no trimming (``ALL_GROUPS``). ``filter_sql``:
        the request filter as ``(sql, params)`` over the chunk row ``c`` (``indexers.filters.to_sql``).
        """
        if groups is None and filter_sql is None:
            return None
        mask = self._live.copy()
        if groups is not None:
            seen = np.zeros(self._size, dtype=bool)
            if public_when_no_groups:
                seen |= self._public
            for g in dict.fromkeys(groups):
                m = self._groups.get(g)
                if m is not None:
                    seen |= m
            mask &= seen
        if filter_sql is not None:
            mask &= self._filter_mask(con, filter_sql)
        return AllowedSet(mask)

    def _filter_mask(self, con: sqlite3.Connection, filter_sql: tuple[str, Sequence[Any]]) -> np.ndarray:
        key = (filter_sql[0], tuple(filter_sql[1]))
        mask = self._filters.get(key)
        if mask is not None:
            self._filters.move_to_end(key)
            return mask
        mask = np.zeros(self._size, dtype=bool)
        mask[sql_ints(con, f"SELECT group_concat(c.rid) FROM chunks c WHERE c.rid <= ? AND ({key[0]})",
                   [self.watermark, *key[1]])] = True
        self._filters[key] = mask
        while len(self._filters) > MAX_CACHED_FILTERS:
            self._filters.popitem(last=False)
        return mask


def _split(joined: str | None) -> np.ndarray:
    if not joined:
        return np.empty(0, dtype=np.int64)
    return np.array(joined.split(","), dtype=np.int64)


def log_reaches(con: sqlite3.Connection, generation: int) -> bool:
    """Whether ``chunk_tombstones`` holds every delete after ``generation`` (so a structure at that
    generation can catch up from it)."""
    row = con.execute("SELECT value FROM index_meta WHERE key = 'tombstones_since'").fetchone()
    return row is not None and int(row[0]) <= generation


def sql_ints(con: sqlite3.Connection, sql: str, params: Sequence[Any]) -> np.ndarray:
    """The integers of a ``SELECT group_concat(x) ...`` (one string: ~10x less overhead than rows)."""
    (joined,) = con.execute(sql, list(params)).fetchone()
    return _split(joined)
