"""Builds a local index exactly as ondata wrote it at schema version 2 (scopes, no manifest), for migration tests.

The DDL and the row layout are copied from ``indexers/local_index.py`` at schema 2 (commit 1c4801c):
chunks with ``scope`` / ``ingested_at`` but no ``source_stat``, no ``sources`` table (``list_sources``
grouped over the chunks). A generator, not a binary fixture, so the test shows what an old index holds.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Sequence

import numpy as np

from indexers.embedders.hashing import HashingEmbedder
from indexers.records import chunk_id_for

SCHEMA_V2 = """
CREATE TABLE index_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE chunks (
    rid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    source_id TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    title TEXT NOT NULL,
    url TEXT NOT NULL,
    filepath TEXT NOT NULL,
    page_start INTEGER,
    page_end INTEGER,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    section TEXT NOT NULL,
    groups TEXT NOT NULL,
    has_groups INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    source_version TEXT NOT NULL,
    source_chunks INTEGER NOT NULL,
    scope TEXT NOT NULL DEFAULT '',
    ingested_at TEXT NOT NULL DEFAULT '',
    content TEXT NOT NULL
);
CREATE INDEX chunks_source ON chunks(source_id, source_version, source_chunks);
CREATE INDEX chunks_documents ON chunks(
    scope, source_id, source_version, source_chunks, ingested_at, groups
);
CREATE INDEX chunks_filter ON chunks(
    has_groups, source_id, filepath, title, url, section, page_start, page_end, metadata
);
CREATE TABLE chunk_groups (
    grp TEXT NOT NULL,
    rid INTEGER NOT NULL,
    PRIMARY KEY (grp, rid)
) WITHOUT ROWID;
CREATE INDEX chunk_groups_rid ON chunk_groups(rid);
CREATE TABLE chunk_vectors (rid INTEGER PRIMARY KEY, vector BLOB NOT NULL);
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    title, section, content,
    content='chunks', content_rowid='rid',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER chunks_after_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, title, section, content)
    VALUES (new.rid, new.title, new.section, new.content);
END;
CREATE TRIGGER chunks_after_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, title, section, content)
    VALUES ('delete', old.rid, old.title, old.section, old.content);
    DELETE FROM chunk_groups WHERE rid = old.rid;
    DELETE FROM chunk_vectors WHERE rid = old.rid;
END;
CREATE TABLE chunk_tombstones (
    gen INTEGER NOT NULL,
    rid INTEGER NOT NULL,
    PRIMARY KEY (gen, rid)
) WITHOUT ROWID;
CREATE TRIGGER chunks_tombstone AFTER DELETE ON chunks BEGIN
    INSERT OR IGNORE INTO chunk_tombstones(gen, rid)
    VALUES ((SELECT CAST(value AS INTEGER) FROM index_meta WHERE key = 'generation'), old.rid);
END;
"""

#: (scope, source_id, version, chunk texts, groups) per document
Document = tuple[str, str, str, Sequence[str], Sequence[str]]


def build_v2_index(directory: Path, documents: Sequence[Document], *, dimensions: int) -> None:
    """A schema-2 index at ``directory`` holding ``documents``, embedded with ``HashingEmbedder(dimensions)``."""
    directory.mkdir(parents=True, exist_ok=True)
    embedder = HashingEmbedder(dimensions=dimensions)
    con = sqlite3.connect(directory / "index.sqlite")
    con.executescript(SCHEMA_V2)
    rid = 0
    for n, (scope, source_id, version, texts, groups) in enumerate(documents):
        for i, text in enumerate(texts):
            rid += 1
            con.execute(
                "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, '', ?, NULL, NULL, 0, ?, '', ?, ?, '{}', ?, ?, ?, ?, ?)",
                (rid, chunk_id_for(source_id, i, text, scope=scope), source_id, i, source_id, source_id, len(text),
                 json.dumps(list(groups)), 1 if groups else 0, version, len(texts), scope,
                 f"2026-12-01T10:00:{n % 60:02d}+00:00", text))
            con.executemany("INSERT INTO chunk_groups VALUES (?, ?)", [(g, rid) for g in groups])
            vector = np.asarray(embedder.embed_documents([text])[0], dtype=np.float32)
            con.execute("INSERT INTO chunk_vectors VALUES (?, ?)", (rid, vector.tobytes()))
    con.executemany("INSERT INTO index_meta VALUES (?, ?)", [
        ("schema_version", "2"), ("model_id", embedder.model_id), ("dimensions", str(dimensions)),
        ("generation", "1"), ("tombstones_since", "0"), ("next_rid", str(rid + 1))])
    con.commit()
    con.close()
