"""Builds a local index exactly as ondata wrote it before scopes (schema version 1), for migration tests.

The DDL and the row layout are copied from ``indexers/local_index.py`` at schema 1 (commit 2cc9ce4):
no ``scope`` / ``ingested_at`` columns, source versions without a pipeline fingerprint. A generator,
not a binary fixture, so the test shows what an old index holds.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np

from indexers.embedders.hashing import HashingEmbedder
from indexers.records import chunk_id_for

SCHEMA_V1 = """
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
    content TEXT NOT NULL
);
CREATE INDEX chunks_source ON chunks(source_id, source_version, source_chunks);
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
"""


def build_v1_index(directory: Path, documents: dict[str, str], *, dimensions: int) -> None:
    """A schema-1 index at ``directory`` holding one single-chunk document per (file name -> text),
    embedded with ``HashingEmbedder(dimensions)`` (model id and version as schema 1 stored them)."""
    directory.mkdir(parents=True, exist_ok=True)
    embedder = HashingEmbedder(dimensions=dimensions)
    con = sqlite3.connect(directory / "index.sqlite")
    con.executescript(SCHEMA_V1)
    con.executemany("INSERT INTO index_meta VALUES (?, ?)", [
        ("schema_version", "1"), ("model_id", embedder.model_id), ("dimensions", str(dimensions)),
        ("generation", "1")])
    for rid, (name, text) in enumerate(sorted(documents.items()), start=1):
        version = hashlib.sha256(text.encode("utf-8")).hexdigest()  # schema 1: the bare content hash
        con.execute("INSERT INTO chunks VALUES (?, ?, ?, 0, ?, '', ?, NULL, NULL, 0, ?, '', '[]', 0, '{}', ?, 1, ?)",
                    (rid, chunk_id_for(name, 0, text), name, name, name, len(text), version, text))
        vector = np.asarray(embedder.embed_documents([text])[0], dtype=np.float32)
        con.execute("INSERT INTO chunk_vectors VALUES (?, ?)", (rid, vector.tobytes()))
    con.commit()
    con.close()
