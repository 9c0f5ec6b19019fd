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


def test_unchanged_counted_not_held_when_asked():
    items = [item("a", "1"), SourceItem(id="b", version="2", name="b", stat="new"), item("c", "3"), item("d", "4")]
    records = [SourceRecord("a", "1", 1), SourceRecord("b", "2", 1, stat="old"), SourceRecord("c", "x", 1),
               SourceRecord("gone", "9", 1)]
    held, counted = plan_sync(items, records), plan_sync(items, records, keep_unchanged=False)
    assert [i.id for i in held.unchanged] == ["a", "b"] and held.n_unchanged == 2
    assert counted.unchanged == () and counted.n_unchanged == 2
    assert counted.summary() == held.summary() == {"added": 1, "changed": 1, "deleted": 1, "unchanged": 2}
    assert counted.restat == held.restat == {"b": "new"} and counted.listed == held.listed == 4
    assert list(counted.to_process) == list(held.to_process) and counted.deleted == held.deleted == ("gone",)


def test_unchecked_item_equals_the_checked_one():
    fields = dict(id="x", version="v", name="x.txt", size=3, groups=("g",), scope="s", stat="t")
    fast, checked = SourceItem.unchecked(**fields), SourceItem(**fields)
    assert fast == checked and vars(fast) == vars(checked)  # every field there, defaults included
    assert SourceItem.unchecked(id="y", version="v", name="y") == SourceItem("y", "v", "y")
    assert SourceItem.unchecked(id="y", version="v", name="y").metadata is not SourceItem.unchecked(
        id="z", version="v", name="z").metadata  # a fresh metadata dict each


ids = st.text(alphabet="abcdef", min_size=1, max_size=3)


@given(st.dictionaries(ids, st.sampled_from("xyz")), st.dictionaries(ids, st.sampled_from("xyz")))
def test_plan_partitions_both_sides(listed, stored):
    plan = plan_sync([item(k, v) for k, v in listed.items()], [SourceRecord(k, v, 1) for k, v in stored.items()])
    processed = [i.id for i in plan.added + plan.changed + plan.unchanged]
    assert sorted(processed) == sorted(listed)
    assert set(plan.deleted) == set(stored) - set(listed)
    assert all(listed[i.id] == stored[i.id] for i in plan.unchanged)
    assert all(i.id not in stored for i in plan.added)


# ---------------------------------------------------------------- scopes and cleanup modes

from pipelines.chunking import ChunkingConfig  # noqa: E402
from pipelines.sync import PipelineFingerprint, change_reasons  # noqa: E402


def scoped(i: str, v: str, scope: str = "/a", groups: tuple[str, ...] = ()) -> SourceItem:
    return SourceItem(id=i, version=v, name=i, scope=scope, groups=groups)


STORED = [SourceRecord("x", "1", 1, scope="/a"), SourceRecord("gone", "1", 1, scope="/a"),
          SourceRecord("x", "1", 1, scope="/b"), SourceRecord("other", "1", 1, scope="/b")]


def test_scoped_cleanup_deletes_only_inside_the_scope():
    plan = plan_sync([scoped("x", "1")], STORED, scope="/a")
    assert [i.id for i in plan.unchanged] == ["x"] and not plan.added
    assert plan.deleted == ("gone",) and plan.deleted_elsewhere == ()
    assert plan.deletions() == [("/a", ["gone"])]


def test_same_id_in_another_scope_is_another_document():
    plan = plan_sync([scoped("other", "1", scope="/a")], STORED, scope="/a")
    assert [i.id for i in plan.added] == ["other"]  # /b's "other" is not this one


def test_cleanup_none_deletes_nothing():
    plan = plan_sync([scoped("x", "2")], STORED, scope="/a", cleanup="none")
    assert [i.id for i in plan.changed] == ["x"] and plan.deleted == () and plan.deletions() == []


def test_cleanup_full_deletes_every_other_scope_too():
    plan = plan_sync([scoped("x", "1")], STORED, scope="/a", cleanup="full")
    assert plan.deleted == ("gone",)
    assert [(r.scope, r.source_id) for r in plan.deleted_elsewhere] == [("/b", "other"), ("/b", "x")]
    assert plan.deletions() == [("/a", ["gone"]), ("/b", ["other", "x"])]
    assert plan.describe_deleted() == ["gone", "/b: other", "/b: x"]
    assert plan.summary()["deleted"] == 3


def test_bad_cleanup_mode():
    import pytest

    with pytest.raises(ValueError, match="cleanup must be one of scoped, none, full"):
        plan_sync([], [], scope="/a", cleanup="everything")  # type: ignore[arg-type]


def test_documents_stored_before_scopes_are_adopted_only_when_listed():
    legacy = [SourceRecord("x", "1", 1), SourceRecord("y", "1", 1)]  # scope "" (an index migrated from schema 1)
    plan = plan_sync([scoped("x", "1")], legacy, scope="/a")
    assert [i.id for i in plan.changed] == ["x"] and plan.reasons["x"] == ("stored before scopes",)
    assert plan.adopted == {"x"}
    assert plan.deleted == () and plan.deleted_elsewhere == ()  # "y" is not this scope's: kept
    full = plan_sync([scoped("x", "1")], legacy, scope="/a", cleanup="full")
    assert [r.source_id for r in full.deleted_elsewhere] == ["y"]  # "x" is replaced, not deleted


FP = PipelineFingerprint.of(chunking=ChunkingConfig(), model_id="m", dimensions=8, parser=lambda item: "txt:r1")


def test_fingerprint_is_stamped_and_unchanged_when_nothing_changed():
    stamped = FP.stamp(scoped("x", "sha256:1"))
    assert stamped.startswith("sha256:1|p=") and "|c=" in stamped and "|e=" in stamped and "|g=" in stamped
    plan = plan_sync([scoped("x", "sha256:1")], [SourceRecord("x", stamped, 1, scope="/a")], scope="/a",
                     fingerprint=FP)
    assert [i.id for i in plan.unchanged] == ["x"] and plan.unchanged[0].version == stamped


def _reasons(old: PipelineFingerprint, new: PipelineFingerprint, old_item=None, new_item=None):
    old_item = old_item or scoped("x", "sha256:1")
    new_item = new_item or old_item
    plan = plan_sync([new_item], [SourceRecord("x", old.stamp(old_item), 1, scope="/a")], scope="/a", fingerprint=new)
    assert [i.id for i in plan.changed] == ["x"]
    return plan.reasons["x"]


def test_each_part_of_the_fingerprint_gives_its_reason():
    assert _reasons(FP, PipelineFingerprint.of(chunking=ChunkingConfig(chunk_size=128), model_id="m", dimensions=8,
                                               parser=FP.parser)) == ("chunking settings changed",)
    assert _reasons(FP, PipelineFingerprint.of(chunking=ChunkingConfig(overlap=0), model_id="m", dimensions=8,
                                               parser=FP.parser)) == ("chunking settings changed",)
    assert _reasons(FP, PipelineFingerprint.of(chunking=ChunkingConfig(), model_id="m2", dimensions=8,
                                               parser=FP.parser)) == ("embedding model changed",)
    assert _reasons(FP, PipelineFingerprint.of(chunking=ChunkingConfig(), model_id="m", dimensions=16,
                                               parser=FP.parser)) == ("embedding model changed",)
    assert _reasons(FP, PipelineFingerprint.of(chunking=ChunkingConfig(), model_id="m", dimensions=8,
                                               parser=lambda item: "txt:r2")) == ("parser version changed",)
    assert _reasons(FP, FP, new_item=scoped("x", "sha256:2")) == ("content changed",)
    assert _reasons(FP, FP, old_item=scoped("x", "sha256:1+meta:aa", groups=("hr",)),
                    new_item=scoped("x", "sha256:1+meta:bb", groups=("hr", "it"))) == ("groups changed",)
    assert _reasons(FP, FP, old_item=scoped("x", "sha256:1+meta:aa"),
                    new_item=scoped("x", "sha256:1+meta:bb")) == ("metadata changed",)


def test_groups_are_compared_even_when_the_content_version_ignores_them():
    assert _reasons(FP, FP, old_item=scoped("x", "etag:1", groups=("a",)),
                    new_item=scoped("x", "etag:1", groups=("b",))) == ("groups changed",)


def test_a_version_without_fingerprint_is_re_processed_once():
    assert change_reasons("sha256:1", FP.stamp(scoped("x", "sha256:1"))) == (
        "stored without a pipeline fingerprint (an older ondata)",)


def test_current_of_many_records_agrees_with_current_one_by_one():
    from indexers.records import SourceRecord
    from pipelines.chunking import ChunkingConfig
    from pipelines.sync import PipelineFingerprint

    fp = PipelineFingerprint.of(chunking=ChunkingConfig(), model_id="m", dimensions=8)
    old = PipelineFingerprint.of(chunking=ChunkingConfig(chunk_size=200, overlap=10), model_id="m", dimensions=8)
    records = []
    for i, (name, groups) in enumerate([("a.txt", ()), ("b.pdf", ("hr",)), ("c.md", ("x", "a")), ("d.bin", ()),
                                        ("e/f.html", ("hr",)), ("g.TXT", ())]):
        item = SourceItem(id=name, version=f"sha256:{i}", name=name.rsplit("/", 1)[-1], groups=groups)
        for which in (fp, old):
            records.append(SourceRecord(name, which.stamp(item), 1, groups=groups))
        records.append(SourceRecord(name, fp.stamp(item), 1, groups=("other",)))  # groups changed since
    records.append(SourceRecord("h.txt", "sha256:9", 1))  # stored without a fingerprint
    one_by_one = [r for r in records if fp.current(r)]
    assert list(fp.current_of(records)) == one_by_one
    assert len(one_by_one) == 6 and all(r.version.split("|")[2:4] == fp.stamp(
        SourceItem(id="z", version="v", name="z.txt")).split("|")[2:4] for r in one_by_one)


def test_unchanged_ids_count_as_listed_and_unchanged_and_stored_records_load_on_demand():
    from indexers.records import SourceRecord
    from pipelines.records import KnownRecords, UnchangedIds
    from pipelines.sync import plan_sync

    records = {s: SourceRecord(s, f"sha256:{s}", 1, scope="S", stat="t") for s in ("a", "b", "c", "d")}
    loaded: list[str] = []
    stored = KnownRecords({s: "t" for s in records}, lambda s: (loaded.append(s), records.get(s))[1])
    items = [UnchangedIds(["a", "b"]), SourceItem(id="c", version="sha256:new", name="c", scope="S"),
             SourceItem(id="e", version="sha256:e", name="e", scope="S"), UnchangedIds(["a"])]
    plan = plan_sync(items, [], scope="S", keep_unchanged=False, stored=stored)
    assert plan.summary() == {"added": 1, "changed": 1, "deleted": 1, "unchanged": 2}
    assert plan.deleted == ("d",) and plan.listed == 4 and loaded == ["c"]  # "e" is not stored: nothing to load
    kept = plan_sync(items, [], scope="S", stored=stored)  # keep_unchanged: the stored records' items
    assert [(i.id, i.version) for i in kept.unchanged] == [("a", "sha256:a"), ("b", "sha256:b")]


def test_format_key_decides_the_file_format_and_listed_supported_agrees_with_listed_type():
    from pipelines.parsing import file_format, format_key, guess_content_type, listed_supported, listed_type

    names = ["a.txt", "d/a.TXT", "x.tar.gz", "a", ".txt", "d/.txt", "a.", "a.pdf", "a.bin", "a.v2.md", "a:b.txt",
             "a.html", "a.json", "d.x/a", "d/a.x.TXT", "a.csv", "b.htm", "c.docx", "n.Md"]
    formats: dict[str, object] = {}
    for name in names:
        key = format_key(name)
        if key is not None:
            assert formats.setdefault(key, file_format(name, guess_content_type(name.rsplit("/", 1)[-1]))) == \
                file_format(name, guess_content_type(name.rsplit("/", 1)[-1])), name
        base = name.rsplit("/", 1)[-1]
        assert listed_supported(base) == listed_type(base)[1], name


@given(st.lists(st.sampled_from(["a", "B", ".", "/", "txt", "TXT", "md", "pdf", "gz", "tar", "K", ":", "x"]),
                max_size=8).map("".join))
def test_the_parser_suffix_of_a_name_is_its_last_suffix_after_its_last_slash_when_that_picks_a_parser(name):
    from pipelines.parsing import _EXTENSION_FORMATS, _parser_suffix, format_key, listed_supported, listed_type

    i = name.rfind(".")  # the definition, spelled out
    expected = name[i:] if name.rfind("/") + 1 < i < len(name) - 1 and name[i:].lower() in _EXTENSION_FORMATS else None
    assert _parser_suffix(name) == expected
    if expected is not None:
        assert format_key(name) == expected
    base = name.rsplit("/", 1)[-1]
    assert listed_supported(base) == listed_type(base)[1]
