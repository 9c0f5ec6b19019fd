"""plan_sync: the pure diff between a source listing and the index's source records."""

from __future__ import annotations

from hypothesis import given, strategies as st

from indexers.records import SourceRecord
from pipelines.records import SourceItem
from pipelines.sync import plan_sync


def item(i: str, v: str) -> SourceItem:
    return SourceItem(id=i, version=v, name=i)


def test_added_changed_deleted_unchanged():
    items = [item("a", "1"), item("b", "2"), item("c", "3")]
    records = [SourceRecord("a", "1", 4), SourceRecord("b", "old", 2), SourceRecord("gone", "9", 1)]
    plan = plan_sync(items, records)
    assert [i.id for i in plan.added] == ["c"]
    assert [i.id for i in plan.changed] == ["b"]
    assert plan.deleted == ("gone",)
    assert [i.id for i in plan.unchanged] == ["a"]
    assert plan.summary() == {"added": 1, "changed": 1, "deleted": 1, "unchanged": 1}


def test_incomplete_source_counts_as_changed():
    plan = plan_sync([item("a", "1")], [SourceRecord("a", "1", 2, complete=False)])
    assert [i.id for i in plan.changed] == ["a"] and not plan.unchanged


def test_duplicate_ids_keep_first():
    plan = plan_sync([item("a", "1"), item("a", "2")], [])
    assert [(i.id, i.version) for i in plan.added] == [("a", "1")]


ids = st.text(alphabet="abcdef", min_size=1, max_size=3)


@given(st.dictionaries(ids, st.sampled_from("xyz")), st.dictionaries(ids, st.sampled_from("xyz")))
def test_plan_partitions_both_sides(listed, stored):
    plan = plan_sync([item(k, v) for k, v in listed.items()], [SourceRecord(k, v, 1) for k, v in stored.items()])
    processed = [i.id for i in plan.added + plan.changed + plan.unchanged]
    assert sorted(processed) == sorted(listed)
    assert set(plan.deleted) == set(stored) - set(listed)
    assert all(listed[i.id] == stored[i.id] for i in plan.unchanged)
    assert all(i.id not in stored for i in plan.added)
