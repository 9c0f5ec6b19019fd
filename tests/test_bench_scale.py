"""bench/scale.py's claims that its figures rest on: the fast ingest path writes what the pipeline writes,
and the exact top-10 that recall is measured against is the brute-force top-10."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from tests.bench_scripts import load_bench


def _scale():
    return load_bench("scale")


def _rows(index_dir: Path) -> tuple[list, list]:
    con = sqlite3.connect(index_dir / "index.sqlite")
    cols = ("source_id, chunk_index, title, url, filepath, page_start, page_end, char_start, char_end, section, "
            "groups, has_groups, metadata, source_version, source_chunks, content")
    rows = con.execute(f"SELECT {cols}, v.vector FROM chunks JOIN chunk_vectors v USING (rid) "
                       "ORDER BY source_id, chunk_index").fetchall()
    groups = con.execute("SELECT c.source_id, grp FROM chunk_groups JOIN chunks c USING (rid) ORDER BY 1, 2").fetchall()
    con.close()
    return rows, groups


def test_fast_path_writes_what_the_pipeline_writes(tmp_path):
    scale = _scale()
    for name in ("pipeline", "fast"):
        scale.build_corpus(tmp_path / name / "corpus", 120)
        out = scale.phase_ingest(tmp_path / name, 64, name)
        assert out["chunks_written"] == 120
    pipe_rows, pipe_groups = _rows(tmp_path / "pipeline" / "index")
    fast_rows, fast_groups = _rows(tmp_path / "fast" / "index")
    assert len(pipe_rows) == 120 and pipe_rows == fast_rows
    assert pipe_groups and pipe_groups == fast_groups
    # some documents are public and some carry groups, so trimming measures something
    assert 0 < len({s for s, _ in pipe_groups}) < 120


def test_exact_top_ids_are_the_brute_force_top_ten(tmp_path):
    scale = _scale()
    scale.build_corpus(tmp_path / "corpus", 150)
    scale.phase_ingest(tmp_path, 32, "pipeline")
    con = sqlite3.connect(tmp_path / "index" / "index.sqlite")
    ids, vecs = zip(*con.execute("SELECT c.id, v.vector FROM chunks c JOIN chunk_vectors v USING (rid)"))
    con.close()
    mat = np.frombuffer(b"".join(vecs), dtype=np.float32).reshape(len(ids), 32)
    qv = mat[[3, 70, 149]] + np.float32(0.01)
    want = [[ids[j] for j in np.argsort(-(mat @ q), kind="stable")[:10]] for q in qv]
    got = scale.exact_top_ids(tmp_path / "index", qv)
    assert [set(g) for g in got] == [set(w) for w in want]
    assert scale.vector_recall_at_10(tmp_path / "index", qv, want) == 1.0
    assert scale.vector_recall_at_10(tmp_path / "index", qv, [w[:5] for w in want]) == 0.5
