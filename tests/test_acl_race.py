"""A writer process re-ingesting documents whose groups flip between public and restricted, and
public-only reader processes searching the same local index in all three modes: no leak, ever.

The race itself lives in ``bench/acl_race.py`` (which runs it with 20,000+ searches and prints the
figures); this test runs 3,000 searches. On the code before consistent reads (allowed set, arms and
fetch outside one snapshot, row ids reused, delete and upsert in two transactions) it found leaks.
"""

from __future__ import annotations

from tests.bench_scripts import load_bench


def _race_module():
    return load_bench("acl_race")


def test_public_only_readers_racing_a_writer_never_see_restricted_chunks(tmp_path):
    race = _race_module()
    result = race.race(tmp_path / "index", searches=3000, readers=2)
    assert {m: result[m]["searches"] for m in race.MODES} == {"text": 1000, "vector": 1000, "hybrid": 1000}
    assert result["total"]["documents_written"] >= 20  # the writer really raced the readers
    assert {m: result[m]["leaks"] for m in race.MODES} == {"text": 0, "vector": 0, "hybrid": 0}
