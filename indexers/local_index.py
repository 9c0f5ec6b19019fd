"""The embedded search index: SQLite is the source of truth, FAISS and the keyword index derived acceleration structures.

Layout of ``<directory>`` (of its live generation, ``<directory>/gen-<ts>/``, after an ``ondata index
rebuild``: ``indexers.local_generations`` owns the ``CURRENT`` pointer, which every operation
follows, so a reader switches to a rebuilt index on its next operation without reopening):

- ``index.sqlite`` holds everything that matters: the chunks (every ``Chunk`` field, metadata as
  JSON, the document's scope and when it was written), their embeddings (float32 blobs), their ACL groups (one row per chunk and group, so
  security trimming is an indexed lookup), an FTS5 table (tokenizer ``porter unicode61
  remove_diacritics 2``, kept in step by triggers; the keyword arm when ``keyword_engine = "fts5"``),
  ``chunk_tombstones`` (the row ids each write deleted, by generation: derived structures catch up
  from it), ``scopes`` (where each scope was ingested from: ``record_scope``, read by the rebuild)
  and ``index_meta`` (model id,
  dimensions, schema version and a *generation* counter bumped by every write). An index of an
  older schema version is migrated in place by ``ensure()`` (schema 1 -> 2 adds the scope columns,
  2 -> 3 the manifest, 3 -> 4 the scopes table; nothing is dropped); one of a newer or unknown
  version is refused with one line saying what to do.
- ``vectors.faiss`` (+ ``vectors.faiss.delta``) is the vector arm over the embeddings keyed by the
  chunk's SQLite row id, exact (``IndexFlatIP``), IVF (PQ codes re-ranked exactly) or HNSW as
  ``VectorConfig`` says, owned by ``indexers.local_vectors.VectorIndex``: a base file and a delta
  (rows added, row ids removed since the base), each tagged with the generation it reflects and
  written atomically; caught up from SQLite incrementally (rows above its watermark, tombstones
  since its generation). When it is missing, unreadable or beyond the tombstone log it is rebuilt
  from SQLite (and logged), so a crash at any point leaves an index that opens and answers, and
  re-running the interrupted write converges.
- ``keyword.bin`` is the keyword arm's BM25 inverted index (``indexers.local_keyword``: terms of
  the one text module, base + delta segments and tombstones), tagged with the generation it
  reflects, memory-mapped when opened and caught up from SQLite incrementally (the rows above its
  watermark, the tombstones since its generation); missing, corrupt or unreachable by the log, it
  is rebuilt from SQLite. ``flush()`` saves the delta since the base (``keyword.bin.delta``), or the
  compacted whole when it was rebuilt or the delta passed 10% of the base. A search never builds it
  over more than ``local_keyword.BUILD_INLINE`` rows nor catches it up by more than
  ``local_keyword.CATCH_UP_INLINE``: a background refresh (``indexers.local_refresh``, as for the
  vectors) does, the held structure serving meanwhile, or FTS5 when none is usable yet
  (``_current_keyword``).

Writes are single SQLite transactions (re-ingesting a document, ``upsert(..., replace_sources=...)``,
too). Row ids come from a counter that only grows (``index_meta`` key ``next_rid``), so a row id,
which is also the FAISS id, names one chunk row forever. A search runs in one read snapshot (the
allowed set, both arms and the fetch, which re-checks the filter and the trimming), so a writer in
another process can never make it return a row its caller may not see. The vector structure is updated in memory when this process holds a fresh
copy, otherwise it catches up from SQLite at the next search, ``flush()`` or ``close()``. A search with a filter or security trimming first takes its allowed row ids from
cached per-group and per-filter masks (``indexers.local_allowed``, kept per generation and
caught up incrementally from ``chunk_tombstones``, the log of deleted row ids, and the rows above
the last row id seen), then restricts both arms to them *before* the top-k cut: the keyword arm
walks the BM25 ranking keeping allowed rows, the vector arm searches FAISS with an ID selector
(a bitmap). Hybrid search fuses the two arms with reciprocal rank fusion; the vector arm's FAISS
part runs on a persistent worker thread while the search's own thread scores the keyword arm
(``parallel_arms``), everything that reads SQLite staying on the search's thread and snapshot.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from indexers.errors import IndexError_, IndexSchemaError
from indexers.filters import to_sql
from indexers.local_allowed import AllowedCache, AllowedSet
from indexers import local_generations as generations
from indexers.local_generations import SQLITE_NAME
from indexers import local_keyword
from indexers.local_keyword import KEYWORD_NAME, KeywordIndex
from indexers.local_refresh import BackgroundRefresh
from indexers.local_vectors import FAISS_NAME, VectorConfig, VectorIndex
from indexers import local_manifest as manifest
from indexers.fusion import hits_with_arms, reciprocal_rank_fusion
from indexers import records
from indexers.records import ALL_GROUPS, Chunk, Groups, ScopeRecord, SearchHit, SearchRequest, SourceRecord, check_groups
from indexers.text import STOPWORDS, words

log = logging.getLogger(__name__)

SCHEMA_VERSION = "4"
#: Schema versions ``ensure()`` migrates in place (see ``_MIGRATIONS``).
MIGRATABLE_VERSIONS = ("1", "2", "3")

MAX_QUERY_TERMS = 64
#: Generations of deletes kept in ``chunk_tombstones`` for derived structures to catch up from;
#: one further behind rebuilds from SQLite. Pruned every ``_TOMBSTONE_PRUNE_EVERY`` generations.
TOMBSTONE_GENERATIONS = 10_000
_TOMBSTONE_PRUNE_EVERY = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS index_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
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
    source_stat TEXT NOT NULL DEFAULT '',
    content TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_source ON chunks(source_id, source_version, source_chunks);
CREATE INDEX IF NOT EXISTS chunks_documents ON chunks(
    scope, source_id, source_version, source_chunks, ingested_at, groups
);
CREATE INDEX IF NOT EXISTS chunks_filter ON chunks(
    has_groups, source_id, filepath, title, url, section, page_start, page_end, metadata
);
CREATE TABLE IF NOT EXISTS chunk_groups (
    grp TEXT NOT NULL,
    rid INTEGER NOT NULL,
    PRIMARY KEY (grp, rid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunk_groups_rid ON chunk_groups(rid);
CREATE TABLE IF NOT EXISTS chunk_vectors (rid INTEGER PRIMARY KEY, vector BLOB NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, section, content,
    content='chunks', content_rowid='rid',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS chunks_after_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, title, section, content)
    VALUES (new.rid, new.title, new.section, new.content);
END;
CREATE TRIGGER IF NOT EXISTS chunks_after_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, title, section, content)
    VALUES ('delete', old.rid, old.title, old.section, old.content);
    DELETE FROM chunk_groups WHERE rid = old.rid;
    DELETE FROM chunk_vectors WHERE rid = old.rid;
END;
CREATE TABLE IF NOT EXISTS scopes (
    scope TEXT NOT NULL,
    kind TEXT NOT NULL,
    root TEXT NOT NULL,
    prefix TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (scope, kind, root, prefix)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunk_tombstones (
    gen INTEGER NOT NULL,
    rid INTEGER NOT NULL,
    PRIMARY KEY (gen, rid)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS chunks_tombstone AFTER DELETE ON chunks BEGIN
    INSERT OR IGNORE INTO chunk_tombstones(gen, rid)
    VALUES ((SELECT CAST(value AS INTEGER) FROM index_meta WHERE key = 'generation'), old.rid);
END;
"""

# Schema 1 -> 2 (scopes): two columns and the covering index of the manifest. Chunks written
# before scopes get scope '' and no ingestion time; ``pipelines.sync`` adopts them into the first
# scope that lists their id. Schema 2 -> 3: the per-document manifest ``sources`` (built from the
# chunks) and the chunks' ``source_stat`` (``indexers.local_manifest``). Schema 3 -> 4: the ``scopes``
# table (where each scope was ingested from, what ``ondata index rebuild`` re-reads), empty until
# the next ingest of each scope records it. Run inside ``ensure()``'s
# write transaction, before ``_SCHEMA``; a version's statements bring it to the next one.
_MIGRATIONS: dict[str, tuple[str, ...]] = {
    "1": (
        "ALTER TABLE chunks ADD COLUMN scope TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE chunks ADD COLUMN ingested_at TEXT NOT NULL DEFAULT ''",
    ),
    "2": manifest.MIGRATION_2_TO_3,
    "3": (
        "CREATE TABLE IF NOT EXISTS scopes (scope TEXT NOT NULL, kind TEXT NOT NULL, root TEXT NOT NULL, "
        "prefix TEXT NOT NULL, record TEXT NOT NULL, PRIMARY KEY (scope, kind, root, prefix)) WITHOUT ROWID",
    ),
}
_NEXT_VERSION = {"1": "2", "2": "3", "3": "4"}
_MIGRATION_NOTES = {
    "1": "its documents have no scope yet and are adopted by the next ingest that lists them",
    "2": "built its per-document manifest",
    "3": "added the scopes table (`ondata index rebuild` can rebuild a scope once it is ingested again)",
}

# ``content`` is the last column: rows are read for their small fields (filters, trimming) far
# more often than for their text, and SQLite reads columns after a large one from overflow pages.
_CHUNK_COLUMNS = (
    "rid, id, source_id, chunk_index, title, url, filepath, page_start, page_end, "
    "char_start, char_end, section, groups, has_groups, metadata, source_version, source_chunks, scope, "
    "ingested_at, content"
)
_BATCH = 500  # max bound parameters per IN (...) list
_STAMP_BATCH = 20_000  # manifest rows read per lock hold by list_source_stamps


def fts_query(text: str) -> str:
    """Turn free user text into a safe FTS5 MATCH expression: quoted words joined with OR.

    Every word is a double-quoted FTS5 string (embedded quotes doubled), so no FTS5 syntax in the
    input (``NEAR(``, ``*``, ``-``, ``OR``, column filters...) can change the query. Words and
    English stopwords are those of ``indexers.text``; stopwords are dropped unless the query consists
    only of stopwords. Returns ``""`` when the
    text has no words.
    """
    # FTS5's unicode61 tokenizer splits "rocket's" into "rocket" and "s"; so do we, then drop stopwords
    all_words = [part for w in words(text) for part in w.replace("\u2019", "'").split("'") if part]
    kept = [w for w in all_words if w not in STOPWORDS] or all_words
    unique = list(dict.fromkeys(kept))[:MAX_QUERY_TERMS]
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in unique)


@dataclass(frozen=True)
class IndexStats(records.IndexStats):
    """What ``ondata index stats`` shows about a local index (the port's fields, then the local ones)."""

    directory: str
    scopes: int
    #: write transactions committed to the live generation (``index_meta``'s counter; the vector and
    #: keyword files record the one they were built at, ``vectors_fresh`` compares the two)
    writes: int
    bytes_on_disk: int
    vectors_fresh: bool
    #: the live generation, as ``ondata index rebuild``/``drop-old`` and the ``CURRENT`` pointer name it:
    #: ``.`` (the index folder's own files, before any rebuild) or ``gen-<ts>``
    generation: str = "."


class LocalIndex:
    """SearchIndex backend on SQLite (+FTS5) and FAISS in one directory. See the module docstring.

    The index is created on first use (or by ``ensure()``); opening an existing index built with
    another model or another number of dimensions raises ``IndexSchemaError``. Instances are
    safe to share between threads (operations are serialised) and several processes may open the
    same directory (SQLite WAL; the vector arm catches up, or is refreshed in the background, when
    another process wrote).
    """

    #: BM25 column weights for (title, section, content). Title swept 0..3 (2026-12-03, ``--bm25-weights``
    #: of bench/answers.py and bench/retrieval.py): from 0 to 2 the Contoso 50 figures stay within 0.04
    #: (citations_matched 0.36 throughout; 3 loses recall); SciFact nDCG@10 falls below 0.72 hybrid /
    #: 0.69 text under 1.5.
    bm25_weights: tuple[float, float, float] = (2.0, 1.0, 1.0)
    #: RRF constant for hybrid search (Azure AI Search uses 60).
    rrf_k: int = 60
    #: Keyword arm: "bm25" (the derived in-memory index of ``indexers.local_keyword``) or "fts5"
    #: (SQLite's FTS5 ``bm25()``, scoring every matching row; kept for comparison).
    keyword_engine: str = "bm25"
    #: Hybrid search runs the vector arm's FAISS part on a worker thread beside the keyword arm
    #: (``_both_arms``) when this process may use more than one core; False runs the arms one after
    #: the other (bench/keyword.py compares both, interleaved).
    parallel_arms: bool = len(os.sched_getaffinity(0)) > 1 if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1) > 1

    def __init__(self, directory: str | Path, *, dimensions: int, model_id: str,
                 vectors: VectorConfig | None = None) -> None:
        if not isinstance(dimensions, int) or dimensions < 1:
            raise ValueError("dimensions must be a positive int")
        if not model_id:
            raise ValueError("model_id must not be empty")
        self.directory = Path(directory)
        self.dimensions = dimensions
        self.model_id = model_id
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._ensured = False
        self._vector_config = vectors
        # the folder of the live generation (``indexers.local_generations``) and the pointer it was read from
        self._pointer = generations.pointer_token(self.directory)
        self._data = generations.live_dir(self.directory)
        self._vectors = VectorIndex(self._data, dimensions=dimensions, generation=self._generation,
                                    config=vectors, connect=self._connect_read_only)
        self._allowed_cache = AllowedCache()  # per-group / per-filter masks (indexers.local_allowed)
        self._keyword: KeywordIndex | None = None  # indexers.local_keyword, loaded lazily
        self._keyword_epoch = 0  # bumped when the held structures are forgotten: a refresh started before is dropped
        self._keyword_refresh = self._new_keyword_refresh()
        self._worker: ThreadPoolExecutor | None = None  # runs the vector arm of hybrid searches, started lazily

    # ------------------------------------------------------------------ opening

    @property
    def data_directory(self) -> Path:
        """The folder of the live generation: ``directory`` itself, or ``directory/gen-...`` after a rebuild."""
        return self._data

    @property
    def sqlite_path(self) -> Path:
        return self._data / SQLITE_NAME

    @property
    def faiss_path(self) -> Path:
        return self._data / FAISS_NAME

    @property
    def keyword_path(self) -> Path:
        return self._data / KEYWORD_NAME

    @staticmethod
    def read_model(directory: str | Path) -> tuple[str, int]:
        """(model_id, dimensions) an existing index (its live generation) was built with, read without
        opening it for writing."""
        return LocalIndex._read_model_at(generations.live_dir(Path(directory)), directory)

    @staticmethod
    def _read_model_at(data: Path, directory: str | Path) -> tuple[str, int]:
        path = data / SQLITE_NAME
        if not path.is_file():
            raise IndexError_(f"there is no local index at {directory} (no {SQLITE_NAME} file)")
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                meta = dict(con.execute("SELECT key, value FROM index_meta").fetchall())
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise IndexError_(f"the local index at {directory} could not be read: {exc}") from exc
        if "model_id" not in meta or "dimensions" not in meta:
            raise IndexError_(f"the local index at {directory} has no model metadata; rebuild it")
        return str(meta["model_id"]), int(meta["dimensions"])

    @classmethod
    def open_existing(cls, directory: str | Path, *, vectors: VectorConfig | None = None) -> "LocalIndex":
        """Open an index that already exists, reading its model id and dimensions from its metadata."""
        model_id, dimensions = cls.read_model(directory)
        index = cls(directory, dimensions=dimensions, model_id=model_id, vectors=vectors)
        index.ensure()
        return index

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            if self.directory.exists() and not self.directory.is_dir():
                raise IndexError_(f"the index path {self.directory} is a file, not a folder; give a folder")
            if self._data != self.directory:  # a generation of a rebuild: never re-created when it was dropped
                if not self._data.is_dir():
                    raise IndexError_(f"the generation {self._data.name} of the index at {self.directory} is gone")
            else:
                try:
                    self.directory.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise IndexError_(f"the index folder {self.directory} could not be created: {exc.strerror or exc}") from exc
            try:
                con = sqlite3.connect(
                    self.sqlite_path, isolation_level=None, check_same_thread=False, timeout=30.0
                )
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=NORMAL")
                con.execute("PRAGMA busy_timeout=30000")
                con.execute("PRAGMA temp_store=MEMORY")
            except sqlite3.Error as exc:
                raise IndexError_(f"the local index at {self.directory} could not be opened: {exc}") from exc
            self._db = con
        return self._db

    def _connect_read_only(self) -> sqlite3.Connection:
        """A read-only connection of its own (the vector arm's background refresh)."""
        con = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, isolation_level=None,
                              check_same_thread=False, timeout=30.0)
        con.execute("PRAGMA busy_timeout=30000")
        return con

    def _absent(self) -> bool:
        """True when no index exists on disk yet: reads then answer empty and write nothing."""
        if self._db is not None or self._ensured:
            return False  # open: the operation's own ``_con()`` follows the pointer
        with self._lock:
            self._follow_generation()
            return self._db is None and not self._ensured and not self.sqlite_path.exists()

    def _con(self) -> sqlite3.Connection:
        """The connection of an ensured index of the live generation (ensures on first use)."""
        self._follow_generation()
        if not self._ensured:
            self.ensure()
        return self._connect()

    def _follow_generation(self) -> None:
        """Switch to the live generation when ``CURRENT`` was swapped (``ondata index rebuild``): one ``stat``
        per operation. Called under the lock at the start of an operation, so an operation in flight
        finishes on the generation it started on. The old generation's connection is closed without
        flushing (it is no longer live). A generation built with another model or dimensions is not
        followed (this process could not embed queries for it): it keeps serving its generation, with a
        warning, until it is restarted with that model."""
        token = generations.pointer_token(self.directory)
        if token == self._pointer:
            return
        data = generations.live_dir(self.directory)
        self._pointer = token
        if data == self._data:
            return
        name = data.name if data != self.directory else generations.IN_PLACE
        model = self._read_model_at(data, self.directory)
        if model != (self.model_id, self.dimensions):  # this process cannot embed for it: keep what it serves
            log.warning("the index at %s was rebuilt with model %s (%d dims) as generation %s; this process uses %s "
                        "(%d dims) and keeps serving generation %s until it is restarted with that model",
                        self.directory, model[0], model[1], name, self.model_id, self.dimensions, self._data.name)
            return
        log.info("the index at %s switched to its generation %s", self.directory, name)
        self._release()
        self._data = data
        self._vectors = VectorIndex(data, dimensions=self.dimensions, generation=self._generation,
                                    config=self._vector_config, connect=self._connect_read_only)

    def ensure(self) -> None:
        """Create the index if missing; raise ``IndexSchemaError`` if it was built for another model."""
        with self._lock:
            self._follow_generation()
            con = self._connect()
            with _write_transaction(con, failed=f"the local index at {self.directory} could not be created"):
                has_meta = con.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'index_meta'"
                ).fetchone()
                if has_meta:  # check an existing index fits before touching its schema
                    old = dict(con.execute("SELECT key, value FROM index_meta").fetchall())
                    self._check_meta(old)
                    self._migrate(con, old.get("schema_version", SCHEMA_VERSION))
                for statement in _split_sql(_SCHEMA + manifest.SCHEMA):
                    con.execute(statement)
                con.executemany(
                    "INSERT OR IGNORE INTO index_meta(key, value) VALUES (?, ?)",
                    [
                        ("schema_version", SCHEMA_VERSION),
                        ("model_id", self.model_id),
                        ("dimensions", str(self.dimensions)),
                        ("generation", "0"),
                    ],
                )
                # the tombstone log (derived structures catch up from it) holds the deletes from here on
                con.execute(
                    "INSERT OR IGNORE INTO index_meta(key, value) "
                    "SELECT 'tombstones_since', value FROM index_meta WHERE key = 'generation'"
                )
                meta = dict(con.execute("SELECT key, value FROM index_meta").fetchall())
            self._check_meta(meta)
            self._ensured = True

    def _check_meta(self, meta: dict[str, str]) -> None:
        """Raise ``IndexSchemaError`` unless an existing index's metadata fits this instance."""
        if "model_id" not in meta or "dimensions" not in meta:
            return  # not written yet: created by this transaction
        version = meta.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION and version not in MIGRATABLE_VERSIONS:
            raise IndexSchemaError(
                f"index at {self.directory} has schema version {version}, which this version of ondata "
                f"(schema {SCHEMA_VERSION}) cannot read; upgrade ondata, or re-ingest into a new --index folder"
            )
        if meta["model_id"] != self.model_id or int(meta["dimensions"]) != self.dimensions:
            raise IndexSchemaError(
                f"index at {self.directory} was built with model {meta['model_id']} "
                f"({meta['dimensions']} dims); this run uses {self.model_id} ({self.dimensions} dims); "
                "use another --index or rebuild"
            )

    def _migrate(self, con: sqlite3.Connection, version: str) -> None:
        """Bring an index of schema ``version`` to ``SCHEMA_VERSION`` in place (in the caller's transaction)."""
        if version == SCHEMA_VERSION:
            return
        step = version
        while step != SCHEMA_VERSION:
            for statement in _MIGRATIONS[step]:
                con.execute(statement)
            step = _NEXT_VERSION[step]
        con.execute("UPDATE index_meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))
        notes, step = [], version
        while step != SCHEMA_VERSION:
            notes.append(_MIGRATION_NOTES[step])
            step = _NEXT_VERSION[step]
        log.warning("migrated the local index at %s from schema %s to %s in place: %s", self.directory, version,
                    SCHEMA_VERSION, "; ".join(notes))

    def close(self) -> None:
        """Save a fresh FAISS file if needed and close the database connection."""
        with self._lock:
            if self._db is None:
                return
            try:
                self.flush()
            finally:
                self._release()

    def _release(self) -> None:
        """Close the connection and forget the derived structures held in memory (no flush)."""
        if self._db is not None:
            self._db.close()
        self._db = None
        self._ensured = False
        self._vectors.reset()
        self._allowed_cache = AllowedCache()
        self._keyword = None
        self._keyword_epoch += 1  # a keyword refresh under way is not waited for (minutes at 1M): its result is dropped
        self._keyword_refresh = self._new_keyword_refresh()
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None

    def __enter__(self) -> "LocalIndex":
        self.ensure()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writes

    def upsert(self, chunks: Sequence[Chunk], *, vectors: np.ndarray, replace_sources: Iterable[str] = (),
               scope: str | None = None) -> None:
        """Add or replace ``chunks`` by id in one transaction; ``vectors[i]`` belongs to ``chunks[i]``.

        ``replace_sources``: every other chunk of these sources is deleted in the same transaction, so
        a reader sees a re-ingested document's old chunks or its new ones, never neither nor a mix.
        They are replaced in ``scope`` (default: the scopes of ``chunks``; never in another scope) and
        in the scope ``''`` of documents stored before scopes (see ``pipelines.sync``: adopted).
        """
        chunks = list(chunks)
        replace = list(dict.fromkeys(replace_sources))
        vecs = np.asarray(vectors, dtype=np.float32)
        if not chunks:
            self.delete_sources(replace, scope=scope)
            return
        scopes = sorted(({scope} if scope is not None else {c.scope for c in chunks}) | {""})
        if vecs.ndim != 2 or vecs.shape[0] != len(chunks):
            raise IndexError_(
                f"upsert got {len(chunks)} chunks but vectors of shape {tuple(vecs.shape)}; "
                "pass one vector per chunk"
            )
        if vecs.shape[1] != self.dimensions:
            raise IndexSchemaError(
                f"vectors have {vecs.shape[1]} dims but the index at {self.directory} uses "
                f"{self.dimensions} ({self.model_id})"
            )
        if not np.isfinite(vecs).all():
            raise IndexError_("upsert got vectors with NaN or infinite values; the embedder failed")
        # A chunk id repeated within one call: the last occurrence wins.
        last: dict[str, int] = {}
        for i, c in enumerate(chunks):
            last[c.id] = i
        order = sorted(last.values())
        chunks = [chunks[i] for i in order]
        vecs = np.ascontiguousarray(vecs[order])

        with self._lock:
            con = self._con()
            with _write_transaction(con, failed=f"writing {len(chunks)} chunks to the index at {self.directory} failed"):
                gen_before = self._generation(con)
                ids = [c.id for c in chunks]
                old_rids = self._select_ints(con, "SELECT rid FROM chunks WHERE id IN ({})", ids)
                touched = manifest.keys_of_rows(con, "id IN ({})", ids) | {(c.scope, c.source_id) for c in chunks}
                for sc in scopes:
                    touched |= manifest.keys_of_rows(con, "scope = ? AND source_id IN ({})", replace, prefix=(sc,))
                    old_rids += self._select_ints(con, "SELECT rid FROM chunks WHERE scope = ? AND source_id IN ({})",
                                                  replace, prefix=(sc,))
                con.executemany("DELETE FROM chunks WHERE id = ?", [(i,) for i in ids])
                con.executemany("DELETE FROM chunks WHERE scope = ? AND source_id = ?",
                                [(sc, s) for sc in scopes for s in replace])
                old_rids = list(dict.fromkeys(old_rids))
                first = self._take_rids(con, len(chunks))
                rids = list(range(first, first + len(chunks)))
                now = _utc_now()
                con.executemany(
                    f"INSERT INTO chunks ({_CHUNK_COLUMNS}, source_stat) VALUES ({', '.join('?' * 21)})",
                    [(*_chunk_row(rid, c, now), c.source_stat) for rid, c in zip(rids, chunks)],
                )
                con.executemany(
                    "INSERT OR IGNORE INTO chunk_groups(grp, rid) VALUES (?, ?)",
                    [(g, rid) for rid, c in zip(rids, chunks) for g in c.groups],
                )
                self._write_vectors(con, rids, vecs)
                manifest.refresh(con, touched)
                gen_after = self._bump_generation(con)
            self._vectors.apply(gen_before, gen_after, remove=old_rids, add_ids=rids, add_vectors=vecs)

    def _write_vectors(self, con: sqlite3.Connection, rids: list[int], vecs: np.ndarray) -> None:
        con.executemany(
            "INSERT INTO chunk_vectors(rid, vector) VALUES (?, ?)",
            [(rid, vecs[i].tobytes()) for i, rid in enumerate(rids)],
        )

    def delete_sources(self, source_ids: Iterable[str], *, scope: str | None = None) -> None:
        """Remove every chunk of those sources of ``scope`` (``None``: of every scope) in one transaction;
        missing sources are fine."""
        ids = list(dict.fromkeys(source_ids))
        if not ids:
            return
        if scope is None:
            select, delete, extra = "SELECT rid FROM chunks WHERE source_id IN ({})", \
                "DELETE FROM chunks WHERE source_id = ?", ()
        else:
            select, delete, extra = "SELECT rid FROM chunks WHERE scope = ? AND source_id IN ({})", \
                "DELETE FROM chunks WHERE scope = ? AND source_id = ?", (scope,)
        with self._lock:
            con = self._con()
            with _write_transaction(con, failed=f"deleting {len(ids)} sources from the index at {self.directory} failed"):
                gen_before = self._generation(con)
                old_rids = self._select_ints(con, select, ids, prefix=extra)
                if not old_rids:
                    return  # commits the (empty) transaction
                touched = manifest.keys_of_rows(con, select.split(" WHERE ", 1)[1], ids, prefix=extra)
                con.executemany(delete, [(*extra, s) for s in ids])
                manifest.refresh(con, touched)
                gen_after = self._bump_generation(con)
            self._vectors.apply(gen_before, gen_after, remove=old_rids, add_ids=[], add_vectors=None)

    # ------------------------------------------------------------------ reads

    def count(self) -> int:
        if self._absent():
            return 0
        with self._lock:
            return int(self._con().execute("SELECT count(*) FROM chunks").fetchone()[0])

    def list_sources(self, *, scope: str | None = None) -> list[SourceRecord]:
        """One record per document (scope and source id) of ``scope`` (``None``: every scope), sorted by
        scope then source id, from the manifest (``indexers.local_manifest``: O(documents)).

        ``complete`` is False when the source's chunks carry several versions, disagree on
        ``source_chunks``, or their number differs from ``source_chunks`` (0 means "unknown" and
        is not checked). ``groups`` are those of its chunks (all of them, should they differ);
        ``ingested_at`` the latest write; ``stat`` the change token it was listed with.
        """
        if self._absent():
            return []
        with self._lock:
            return manifest.read(self._con(), scope)

    def list_source_stamps(self, *, scope: str) -> Iterator[tuple[str, str, tuple[str, ...], str, bool]]:
        """``(source_id, version, groups, stat, complete)`` of every document of ``scope``, in no particular
        order, as ``list_sources`` would give them but without building a record each (what a re-run's
        plan compares with: one pass over the manifest; ``get_source`` builds the record of one)."""
        if self._absent():
            return
        with self._lock:
            rows = manifest.stamps(self._con(), scope)
            batch = rows.fetchmany(_STAMP_BATCH)
        groups_of = manifest.groups_of
        while batch:
            for source_id, version, groups, stat, complete in batch:
                yield source_id, version, groups_of(groups), stat, complete == 1
            with self._lock:
                batch = rows.fetchmany(_STAMP_BATCH)

    def get_source(self, source_id: str, *, scope: str) -> SourceRecord | None:
        """The record of one document of ``scope`` (as ``list_sources`` gives it), None when not held."""
        if self._absent():
            return None
        with self._lock:
            return manifest.get(self._con(), scope, source_id)

    def record_source_stats(self, scope: str, stats: dict[str, str]) -> None:
        """Store new change tokens (``SourceItem.stat``) of documents of ``scope`` listed unchanged."""
        if not stats or self._absent():
            return
        with self._lock:
            con = self._con()
            with _write_transaction(con, failed=f"recording {len(stats)} change tokens in {self.directory} failed"):
                manifest.set_stats(con, scope, stats)

    def record_scope(self, record: ScopeRecord) -> None:
        """Record where a scope's documents come from (``ondata index rebuild`` re-reads it); replaces the
        record of the same (scope, kind, root, prefix)."""
        with self._lock:
            con = self._con()
            with _write_transaction(con, failed=f"recording scope {record.scope!r} in {self.directory} failed"):
                data = record.to_dict() | {"ingested_at": record.ingested_at or _utc_now()}
                con.execute("INSERT OR REPLACE INTO scopes(scope, kind, root, prefix, record) VALUES (?, ?, ?, ?, ?)",
                            (*record.key, json.dumps(data, ensure_ascii=False, sort_keys=True)))

    def list_scopes(self) -> list[ScopeRecord]:
        """The recorded scopes (``record_scope``), sorted by their key; empty when none were recorded."""
        if self._absent():
            return []
        with self._lock:
            rows = self._con().execute("SELECT record FROM scopes ORDER BY scope, kind, root, prefix").fetchall()
        return [ScopeRecord.from_dict(json.loads(r)) for (r,) in rows]

    def search(self, request: SearchRequest) -> list[SearchHit]:
        """Text (FTS5 BM25), vector (FAISS inner product) or hybrid (RRF of both) search."""
        if self._absent():
            return []
        where, params = self._where(request)
        if where == "(0)":
            return []
        n = max(request.candidates, request.top)
        text_ranked: list[tuple[int, float]] = []
        vector_ranked: list[tuple[int, float]] = []
        with self._lock:
            con = self._con()
            # One read snapshot for the allowed set, both arms and the fetch: a writer committing
            # meanwhile (another process) is either wholly seen or not at all.
            with _read_transaction(con, failed=f"searching the index at {self.directory} failed"):
                if request.mode in ("vector", "hybrid"):
                    self._vectors.current(con)  # the vector structure (never rebuilt here once held)
                allowed = self._allowed(con, request)
                if request.mode == "hybrid":
                    text_ranked, vector_ranked = self._both_arms(con, request, allowed, n)
                elif request.mode == "text":
                    text_ranked = self._text_arm(con, request.text or "", allowed, n)
                else:
                    vector_ranked = self._vector_arm(con, request.vector or (), allowed, n)()

                if request.mode == "text":
                    scored = [(rid, s) for rid, s in text_ranked[: request.top]]
                elif request.mode == "vector":
                    scored = [(rid, s) for rid, s in vector_ranked[: request.top]]
                else:
                    fused = reciprocal_rank_fusion(
                        [[str(r) for r, _ in text_ranked], [str(r) for r, _ in vector_ranked]], k=self.rrf_k
                    )
                    scored = [(int(r), s) for r, s in fused[: request.top]]
                if not scored:
                    return []
                # the fetch re-checks the filter and the trimming: a row is returned only if it passes them
                chunks = self._fetch_chunks(con, [rid for rid, _ in scored], where=where, params=params)
        return hits_with_arms(scored, chunks=chunks, text_ranked=text_ranked, vector_ranked=vector_ranked)

    def get_chunks(self, ids: Iterable[str], *, groups: Groups = (),
                   public_when_no_groups: bool = True) -> list[Chunk]:
        """The chunks with these ids that a caller with ``groups`` may see (the trimming of ``search``).

        In the order asked; an unknown id and a chunk the caller may not see are both left out.
        """
        wanted = list(dict.fromkeys(str(i) for i in ids))
        if not wanted or self._absent():
            return []
        trimming = SearchRequest(text="*", mode="text", groups=check_groups(groups, what="get_chunks groups"),
                                 public_when_no_groups=public_when_no_groups)
        where, params = self._where(trimming)
        if where == "(0)":
            return []
        found: dict[str, Chunk] = {}
        with self._lock:
            con = self._con()
            with _read_transaction(con, failed=f"reading chunks of the index at {self.directory} failed"):
                for start in range(0, len(wanted), _BATCH):
                    part = wanted[start: start + _BATCH]
                    sql = f"SELECT {_CHUNK_COLUMNS} FROM chunks c WHERE c.id IN ({', '.join('?' * len(part))})"
                    for row in con.execute(sql + (f" AND {where}" if where else ""), [*part, *params]):
                        chunk = _row_chunk(row)
                        found[chunk.id] = chunk
        return [found[i] for i in wanted if i in found]

    def _where(self, request: SearchRequest) -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        if request.filter is not None:
            sql, fparams = to_sql(request.filter)
            parts.append(sql)
            params.extend(fparams)
        if request.groups is not ALL_GROUPS:
            alternatives = []
            groups = list(dict.fromkeys(request.groups))
            # Used only on rows looked up by key (the fetch of a search's top rows, get_chunks): a
            # correlated probe of chunk_groups_rid per row. (An uncorrelated ``rid IN (SELECT ...)``
            # materialised every row of the caller's groups per query: 18.6 ms at 200k chunks, against
            # 0.18 ms for 20 rows this way. Allowed sets for whole-index scans are indexers.local_allowed's.)
            if groups:
                alternatives.append(
                    "EXISTS (SELECT 1 FROM chunk_groups g WHERE g.rid = c.rid AND "
                    f"g.grp IN ({', '.join('?' * len(groups))}))"
                )
                params.extend(groups)
            if request.public_when_no_groups:
                alternatives.append("+c.has_groups = 0")
            if not alternatives:
                return "(0)", []
            parts.append("(" + " OR ".join(alternatives) + ")")
        return (" AND ".join(parts) if parts else ""), params

    def _allowed(self, con: sqlite3.Connection, request: SearchRequest) -> AllowedSet | None:
        """Row ids passing the request's filter and trimming, or None when nothing restricts the search.

        Computed once per search (in its read snapshot) and shared by both arms, from the cached
        per-group and per-filter masks of ``indexers.local_allowed`` brought to this generation.
        """
        trimmed = request.groups is not ALL_GROUPS
        if request.filter is None and not trimmed:
            return None
        filter_sql = to_sql(request.filter) if request.filter is not None else None
        try:
            self._allowed_cache.refresh(con, self._generation(con))
            return self._allowed_cache.allowed(
                con, groups=list(request.groups) if trimmed else None,
                public_when_no_groups=request.public_when_no_groups, filter_sql=filter_sql,
            )
        except sqlite3.Error as exc:
            raise IndexError_(f"filtering the index at {self.directory} failed: {exc}") from exc

    def _text_arm(
        self, con: sqlite3.Connection, text: str, allowed: AllowedSet | None, n: int
    ) -> list[tuple[int, float]]:
        """BM25 (``keyword_engine``), restricted to ``allowed`` before the top-``n`` cut. FTS5 answers when it is
        the setting, or while no keyword index is usable yet and one is built in the background (``_current_keyword``)."""
        if self.keyword_engine != "fts5":
            if allowed is not None and allowed.count == 0:
                return []
            kw = self._current_keyword(con)
            if kw is not None:
                return kw.search(text, allowed, n)
        match = fts_query(text)
        if not match or (allowed is not None and allowed.count == 0):
            return []
        w = ", ".join(repr(float(x)) for x in self.bm25_weights)
        sql = f"SELECT rowid, bm25(chunks_fts, {w}) AS s FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY s"
        try:
            if allowed is None:
                rows = con.execute(sql + " LIMIT ?", [match, n]).fetchall()
                return [(int(rid), -float(s)) for rid, s in rows]
            out: list[tuple[int, float]] = []
            for rid, s in con.execute(sql, [match]):
                if rid in allowed:
                    out.append((int(rid), -float(s)))
                    if len(out) >= n:
                        break
            return out
        except sqlite3.Error as exc:
            raise IndexError_(f"keyword search on the index at {self.directory} failed: {exc}") from exc

    def _vector_arm(
        self, con: sqlite3.Connection, vector: Sequence[float], allowed: AllowedSet | None, n: int
    ) -> Callable[[], list[tuple[int, float]]]:
        """Inner product via FAISS (``indexers.local_vectors``: exact or approximate); restricted to
        ``allowed`` before the top-``n`` cut. What reads SQLite is done here; the callable returned
        runs FAISS alone (``VectorIndex.prepare``), on this thread or the vector worker."""
        q = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if q.shape[1] != self.dimensions:
            raise IndexSchemaError(
                f"the query vector has {q.shape[1]} dims but the index at {self.directory} uses "
                f"{self.dimensions} ({self.model_id})"
            )
        return self._vectors.prepare(con, q, allowed, n)

    def _both_arms(self, con: sqlite3.Connection, request: SearchRequest, allowed: AllowedSet | None,
                   n: int) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """The keyword and vector arms of a hybrid search, at the same time when ``parallel_arms``:
        the FAISS part (which releases the GIL) on the index's one persistent vector worker while
        this thread runs the keyword arm, so a hybrid search costs about the slower arm, not the
        sum. Everything that reads SQLite stays on this thread, in its snapshot; the worker is
        waited for before the snapshot and the lock are released, whatever either arm raised."""
        vector = self._vector_arm(con, request.vector or (), allowed, n)
        if not self.parallel_arms:
            return self._text_arm(con, request.text or "", allowed, n), vector()
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ondata-vector-arm")
        pending = self._worker.submit(vector)
        try:
            text_ranked = self._text_arm(con, request.text or "", allowed, n)
        finally:
            wait([pending])  # the structure and the selectors stay untouched until FAISS is done
        return text_ranked, pending.result()

    def _fetch_chunks(self, con: sqlite3.Connection, rids: list[int], *, where: str = "",
                      params: Sequence[Any] = ()) -> dict[int, Chunk]:
        """The chunks of row ids ``rids`` that pass ``where`` (the request's filter and trimming)."""
        out: dict[int, Chunk] = {}
        for start in range(0, len(rids), _BATCH):
            part = rids[start : start + _BATCH]
            sql = f"SELECT {_CHUNK_COLUMNS} FROM chunks c WHERE c.rid IN ({', '.join('?' * len(part))})"
            rows = con.execute(sql + (f" AND {where}" if where else ""), [*part, *params]).fetchall()
            for row in rows:
                out[int(row[0])] = _row_chunk(row)
        return out

    # ------------------------------------------------------------------ keyword index maintenance

    def _fresh_keyword(self, con: sqlite3.Connection) -> KeywordIndex:
        """The keyword index at the generation of ``con``'s snapshot: kept in memory, else loaded
        from ``keyword.bin``, brought up to date from SQLite (incrementally where it can)."""
        gen = self._generation(con)
        kw = self._keyword
        if kw is None or kw.weights != self._keyword_weights or \
                (kw.generation is not None and kw.generation > gen):
            kw = KeywordIndex(self.bm25_weights)
            if kw.load(self.keyword_path) and kw.generation is not None and kw.generation > gen:
                kw = KeywordIndex(self.bm25_weights)  # saved by a newer writer than this snapshot
            self._keyword = kw
        kw.refresh(con, gen)
        return kw

    def _current_keyword(self, con: sqlite3.Connection) -> KeywordIndex | None:
        """The keyword index a search uses: never built over more than ``local_keyword.BUILD_INLINE`` rows,
        nor caught up by more than ``local_keyword.CATCH_UP_INLINE``, on the search path (as the vector
        arm's ``VectorIndex.current``; the writer's ``flush`` builds and saves it in place).

        Held (or loaded from ``keyword.bin``) and at most that far behind ``con``'s snapshot: caught up in
        place. Further behind, or unable to catch up: used as it is while a background refresh
        (``indexers.local_refresh``: its own read-only connection) loads ``keyword.bin``, catches up from
        SQLite and swaps it in; until then the rows added since are missing and those removed since are
        dropped by the fetch, which re-checks every row against the snapshot; one newer than the
        snapshot is used as it is. With no usable ``keyword.bin`` and more rows than ``BUILD_INLINE``:
        None (the text arm answers from FTS5, the same BM25 over the same fields) while the background
        refresh builds it, so a first search after an upgrade or a lost file takes FTS5's time, not
        the build's (264 s at 1M chunks)."""
        gen = self._generation(con)
        weights = self._keyword_weights
        kw, limit = self._keyword, local_keyword.CATCH_UP_INLINE
        if kw is None or kw.weights != weights:  # none held: keyword.bin, or nothing usable yet
            if kw is None and self._keyword_refresh.running:
                return None  # FTS5 until the background build swaps its structure in
            kw = KeywordIndex(weights)
            if not kw.load(self.keyword_path):  # a failed load leaves it empty: built from SQLite
                limit = local_keyword.BUILD_INLINE
            self._keyword = kw if kw.generation is not None else None
        if kw.generation is not None and kw.generation >= gen:
            return kw  # current, or newer than this snapshot (the fetch re-checks every row)
        if not self._keyword_refresh.running and kw.refresh_cost(con, gen, limit) <= limit:
            kw.refresh(con, gen)
            self._keyword = kw
            return kw
        if self._keyword_refresh.start(*self._keyword_refresh_steps()) and kw.generation is None:
            log.warning("the keyword index of %s is missing or unusable: keyword search answers from SQLite FTS5 "
                        "until it is built in the background (the next ingest saves it)", self.directory)
        return kw if kw.generation is not None else None

    @property
    def _keyword_weights(self) -> tuple[float, ...]:
        """``bm25_weights`` as a ``KeywordIndex`` holds them (its ``weights``)."""
        return tuple(float(w) for w in self.bm25_weights)

    def _new_keyword_refresh(self) -> BackgroundRefresh[KeywordIndex]:
        return BackgroundRefresh(self._connect_read_only, name="ondata-keyword-refresh",
                                 what=f"the keyword index of {self.directory}")

    def _keyword_refresh_steps(self):
        """(prepare, swap) of a background keyword refresh: ``keyword.bin`` loaded and caught up from SQLite at
        the refresh's own snapshot (built from SQLite when unusable), swapped in unless the held one is as
        new or the structures were forgotten meanwhile (``_release``)."""
        epoch, path, weights = self._keyword_epoch, self.keyword_path, self._keyword_weights

        def prepare(con: sqlite3.Connection) -> KeywordIndex:
            gen = self._generation(con)
            kw = KeywordIndex(weights)
            kw.load(path)  # a failed load leaves it empty: built from SQLite below
            if kw.generation is None or kw.generation < gen:
                kw.refresh(con, gen)
            return kw

        def swap(new: KeywordIndex) -> None:
            old = self._keyword
            if epoch == self._keyword_epoch and (old is None or old.weights != new.weights or old.generation is None
                                                  or (new.generation or 0) > old.generation):
                self._keyword = new

        return prepare, swap

    def _flush_keyword(self, con: sqlite3.Connection) -> None:
        """Bring the keyword index up to date and save it: its delta (``keyword.bin.delta``), or the
        compacted whole when it was rebuilt or the delta is due for compaction. A background refresh under way
        (``_current_keyword``) is waited for and its structure caught up, not built a second time."""
        self._keyword_refresh.wait()
        with _read_transaction(con, failed=f"updating the keyword index of {self.directory} failed"):
            kw = self._fresh_keyword(con)
        if kw.saved_generation != kw.generation:
            kw.save(self.keyword_path)

    # ------------------------------------------------------------------ FAISS maintenance

    def flush(self) -> None:
        """Bring ``vectors.faiss`` up to date with SQLite (rebuilding it if stale) and save it; bring the
        keyword index up to date and save ``keyword.bin`` when it was rebuilt or its delta is due for compaction."""
        with self._lock:
            if self._db is None and not self._ensured:
                return
            con = self._con()
            if self.keyword_engine != "fts5":
                self._flush_keyword(con)
            self._vectors.flush(con)

    def rebuild_vectors(self) -> None:
        """Rebuild the FAISS structure from the embeddings in SQLite and save it, unconditionally."""
        with self._lock:
            self._vectors.rebuild(self._con())

    # ------------------------------------------------------------------ stats and helpers

    def stats(self) -> IndexStats:
        with self._lock:
            con = self._con()
            chunks = int(con.execute("SELECT count(*) FROM chunks").fetchone()[0])
            sources = int(con.execute("SELECT count(*) FROM sources").fetchone()[0])
            scopes = int(con.execute("SELECT count(DISTINCT scope) FROM sources").fetchone()[0])
            gen = self._generation(con)
            fresh = self._vectors.is_fresh(gen)
        size = 0
        for p in self._data.iterdir():
            if p.name.startswith((SQLITE_NAME, FAISS_NAME, KEYWORD_NAME)) and p.is_file():
                size += p.stat().st_size
        return IndexStats(
            directory=str(self.directory),
            model_id=self.model_id,
            dimensions=self.dimensions,
            chunks=chunks,
            sources=sources,
            scopes=scopes,
            writes=gen,
            bytes_on_disk=size,
            vectors_fresh=fresh,
            generation=self._data.name if self._data != self.directory else generations.IN_PLACE,
        )

    @staticmethod
    def _generation(con: sqlite3.Connection) -> int:
        row = con.execute("SELECT value FROM index_meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _bump_generation(con: sqlite3.Connection) -> int:
        con.execute("UPDATE index_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        gen = LocalIndex._generation(con)
        if gen % _TOMBSTONE_PRUNE_EVERY == 0 and gen > TOMBSTONE_GENERATIONS:
            since = gen - TOMBSTONE_GENERATIONS
            con.execute("DELETE FROM chunk_tombstones WHERE gen < ?", (since,))
            con.execute("UPDATE index_meta SET value = ? WHERE key = 'tombstones_since'", (str(since),))
        return gen

    @staticmethod
    def _take_rids(con: sqlite3.Connection, n: int) -> int:
        """The first of ``n`` new row ids. Never reused: a counter (``index_meta`` key ``next_rid``)
        that only grows, so a row id (and FAISS id) names one chunk row forever, even after deletes."""
        row = con.execute("SELECT value FROM index_meta WHERE key = 'next_rid'").fetchone()
        above = con.execute("SELECT coalesce(max(rid), 0) + 1 FROM chunks").fetchone()[0]
        first = max(int(row[0]) if row else 0, int(above))
        con.execute("INSERT OR REPLACE INTO index_meta(key, value) VALUES ('next_rid', ?)", (str(first + n),))
        return first

    @staticmethod
    def _select_ints(con: sqlite3.Connection, sql: str, values: list[str], *, prefix: tuple = ()) -> list[int]:
        out: list[int] = []
        for start in range(0, len(values), _BATCH):
            part = values[start : start + _BATCH]
            out.extend(r for (r,) in con.execute(sql.format(", ".join("?" * len(part))), [*prefix, *part]))
        return out


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _chunk_row(rid: int, c: Chunk, ingested_at: str) -> tuple:
    return (
        rid, c.id, c.source_id, c.chunk_index, c.title, c.url, c.filepath,
        c.page_start, c.page_end, c.char_start, c.char_end, c.section,
        json.dumps(list(c.groups), ensure_ascii=False), 1 if c.groups else 0,
        json.dumps(dict(c.metadata), ensure_ascii=False, sort_keys=True, default=str),
        c.source_version, c.source_chunks, c.scope, ingested_at, c.content,
    )


def _row_chunk(row: tuple) -> Chunk:
    (
        _rid, cid, source_id, chunk_index, title, url, filepath, page_start, page_end,
        char_start, char_end, section, groups, _has_groups, metadata, source_version, source_chunks,
        scope, _ingested_at, content,
    ) = row
    return Chunk(
        id=cid, source_id=source_id, content=content, chunk_index=chunk_index, title=title, url=url,
        filepath=filepath, page_start=page_start, page_end=page_end, char_start=char_start,
        char_end=char_end, section=section, groups=tuple(json.loads(groups)),
        metadata=json.loads(metadata), source_version=source_version, source_chunks=source_chunks,
        scope=scope,
    )


def _split_sql(script: str) -> list[str]:
    """Split the schema script into statements (triggers contain ';' inside BEGIN ... END)."""
    statements, current = [], []
    for line in script.strip().splitlines():
        current.append(line)
        joined = "\n".join(current).strip()
        if joined.endswith(";") and sqlite3.complete_statement(joined):
            statements.append(joined)
            current = []
    return statements


def _read_transaction(con: sqlite3.Connection, *, failed: str):
    """One read snapshot: a deferred ``BEGIN`` (the snapshot starts at the first read) .. ``COMMIT``.

    Every read inside sees the database as one committed state (WAL), whatever other processes
    commit meanwhile. Errors as in ``_write_transaction``.
    """
    return _transaction(con, begin="BEGIN", failed=failed)


def _write_transaction(con: sqlite3.Connection, *, failed: str):
    """``BEGIN IMMEDIATE`` .. ``COMMIT``. Any exception rolls back; SQLite errors become
    ``IndexError_("<failed>: <reason>")``, others (e.g. IndexSchemaError) propagate unchanged."""
    return _transaction(con, begin="BEGIN IMMEDIATE", failed=failed)


@contextmanager
def _transaction(con: sqlite3.Connection, *, begin: str, failed: str) -> Iterator[None]:
    try:
        con.execute(begin)
        yield
        if con.in_transaction:
            con.execute("COMMIT")
    except sqlite3.Error as exc:
        _rollback(con)
        raise IndexError_(f"{failed}: {exc}") from exc
    except BaseException:
        _rollback(con)
        raise


def _rollback(con: sqlite3.Connection) -> None:
    if con.in_transaction:
        try:
            con.execute("ROLLBACK")
        except sqlite3.Error:
            pass
