"""The local index's per-document manifest: table ``sources``, what ``LocalIndex.list_sources()`` reads.

One row per document (``scope``, ``source_id``) with what a ``GROUP BY`` over its chunks gives:
the number of chunks, how many distinct ``source_version`` values they carry and the largest,
the smallest and largest ``source_chunks``, the latest ``ingested_at``, the distinct ``groups``
values (a JSON array of the chunks' JSON group lists) and the latest ``source_stat`` (the change
token the source listed it with, see ``pipelines.records.SourceItem.stat``). The rows of the
documents a write touches are recomputed from their chunks in the write's own transaction
(``refresh``), so the manifest always equals the ``GROUP BY`` (a property test checks it) while
listing costs O(documents), not O(chunks). ``stat`` alone may also be set by ``set_stats`` (a file
touched but unchanged: its chunks get the new token too, so the equality holds).

``stamps`` reads what a re-run compares (id, version, groups, stat, complete) in one pass without
building a record per row; ``get`` reads the record of one document.

Schema 3 added the table; ``MIGRATION_2_TO_3`` builds it in place from the chunks.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from functools import lru_cache
from typing import Iterable, Mapping, Sequence

from indexers.records import SourceRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    scope TEXT NOT NULL,
    source_id TEXT NOT NULL,
    chunk_count INTEGER NOT NULL,
    versions INTEGER NOT NULL,
    version TEXT NOT NULL,
    min_chunks INTEGER NOT NULL,
    max_chunks INTEGER NOT NULL,
    ingested_at TEXT NOT NULL,
    groups TEXT NOT NULL,
    stat TEXT NOT NULL,
    PRIMARY KEY (scope, source_id)
) WITHOUT ROWID;
"""

_AGGREGATE = (
    "SELECT scope, source_id, count(*), count(DISTINCT source_version), max(source_version), min(source_chunks), "
    "max(source_chunks), max(ingested_at), json_group_array(DISTINCT groups), max(source_stat) FROM chunks"
)
_INSERT = ("INSERT OR REPLACE INTO sources (scope, source_id, chunk_count, versions, version, min_chunks, max_chunks, "
           "ingested_at, groups, stat) ")

MIGRATION_2_TO_3: tuple[str, ...] = (
    "ALTER TABLE chunks ADD COLUMN source_stat TEXT NOT NULL DEFAULT ''",
    SCHEMA.strip().rstrip(";"),
    _INSERT + _AGGREGATE + " GROUP BY scope, source_id",
)

_BATCH = 400  # keys per statement (2 bound parameters each)

Key = tuple[str, str]


def keys_of_rows(con: sqlite3.Connection, where: str, values: Sequence, *, prefix: tuple = ()) -> set[Key]:
    """The (scope, source_id) of the chunks ``WHERE <where>`` with ``{}`` standing for the ``values`` list."""
    out: set[Key] = set()
    for start in range(0, len(values), _BATCH):
        part = list(values[start:start + _BATCH])
        sql = f"SELECT DISTINCT scope, source_id FROM chunks WHERE {where.format(', '.join('?' * len(part)))}"
        out.update(con.execute(sql, [*prefix, *part]))
    return out


def refresh(con: sqlite3.Connection, keys: Iterable[Key]) -> None:
    """Recompute the manifest rows of ``keys`` from their chunks (in the caller's transaction); a document
    without chunks any more loses its row."""
    keys = list(dict.fromkeys(keys))
    if not keys:
        return
    con.executemany("DELETE FROM sources WHERE scope = ? AND source_id = ?", keys)
    con.executemany(_INSERT + _AGGREGATE + " WHERE scope = ? AND source_id = ? GROUP BY scope, source_id", keys)


def set_stats(con: sqlite3.Connection, scope: str, stats: Mapping[str, str]) -> None:
    """Record new change tokens for documents of ``scope`` whose content did not change (on their chunks too)."""
    rows = [(stat, scope, source_id) for source_id, stat in stats.items()]
    con.executemany("UPDATE chunks SET source_stat = ? WHERE scope = ? AND source_id = ?", rows)
    con.executemany("UPDATE sources SET stat = ? WHERE scope = ? AND source_id = ?", rows)


def read(con: sqlite3.Connection, scope: str | None) -> list[SourceRecord]:
    """The manifest of ``scope`` (None: every scope) as records sorted by scope then source id."""
    where, params = ("WHERE scope = ? ", [scope]) if scope is not None else ("", [])
    rows = con.execute(f"SELECT {_COLUMNS} FROM sources {where}ORDER BY scope, source_id", params)
    return [record(row) for row in rows]


_COLUMNS = "scope, source_id, chunk_count, versions, version, min_chunks, max_chunks, ingested_at, groups, stat"
_COMPLETE = "(versions = 1 AND min_chunks = max_chunks AND (max_chunks = 0 OR max_chunks = chunk_count))"


def stamps(con: sqlite3.Connection, scope: str) -> sqlite3.Cursor:
    """Rows ``(source_id, version, groups, stat, complete)`` of every document of ``scope``, in no particular
    order (``groups`` as stored: ``groups_of`` reads it; ``complete`` 1 or 0): one pass over the table
    building no record (what a re-run compares its listing with)."""
    return con.execute(f"SELECT source_id, version, groups, stat, {_COMPLETE} FROM sources WHERE scope = ?", (scope,))


def get(con: sqlite3.Connection, scope: str, source_id: str) -> SourceRecord | None:
    """The record of one document (None when the index does not hold it)."""
    row = con.execute(f"SELECT {_COLUMNS} FROM sources WHERE scope = ? AND source_id = ?", (scope, source_id)).fetchone()
    return None if row is None else record(row)


def record(row: Sequence) -> SourceRecord:
    """A ``SourceRecord`` of one manifest (or aggregate) row."""
    scope, source_id, n, n_versions, version, min_sc, max_sc, ingested_at, groups, stat = row
    complete = n_versions == 1 and min_sc == max_sc and (max_sc == 0 or max_sc == n)
    return SourceRecord(source_id=source_id, version=version, chunk_count=n, complete=complete,
                        scope=sys.intern(scope), groups=groups_of(groups), ingested_at=ingested_at, stat=stat)


@lru_cache(maxsize=8192)
def groups_of(groups: str) -> tuple[str, ...]:
    """The groups of a manifest row's ``groups`` column (a JSON array of the chunks' JSON group lists;
    few distinct values: each parsed once)."""
    return tuple(dict.fromkeys(g for gs in json.loads(groups) for g in json.loads(gs)))


def aggregate(con: sqlite3.Connection) -> list[SourceRecord]:
    """What the manifest must hold, computed over every chunk (for tests and checks)."""
    return [record(r) for r in con.execute(_AGGREGATE + " GROUP BY scope, source_id ORDER BY scope, source_id")]
