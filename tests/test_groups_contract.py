"""The groups contract: ``ALL_GROUPS`` and ``check_groups`` (indexers.records), the one validator for a
caller's groups, and the deny default of ``SearchRequest``, the retriever, the OYD facade and principals."""

from __future__ import annotations

import copy
import pickle

import pytest

from indexers.records import ALL_GROUPS, AllGroups, SearchRequest, check_groups


def test_all_groups_is_a_singleton_with_a_clear_repr():
    assert AllGroups() is ALL_GROUPS
    assert copy.copy(ALL_GROUPS) is ALL_GROUPS and copy.deepcopy(ALL_GROUPS) is ALL_GROUPS
    assert pickle.loads(pickle.dumps(ALL_GROUPS)) is ALL_GROUPS
    assert repr(ALL_GROUPS) == "ALL_GROUPS"
    assert ALL_GROUPS is not None


def test_all_groups_is_neither_a_truth_value_nor_a_collection():
    # so `if groups:` / `groups or None` / `tuple(groups)` can never quietly treat it as "no groups"
    with pytest.raises(TypeError, match="is ALL_GROUPS"):
        bool(ALL_GROUPS)
    with pytest.raises(TypeError):
        tuple(ALL_GROUPS)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        len(ALL_GROUPS)  # type: ignore[arg-type]


@pytest.mark.parametrize("value,expected", [
    ((), ()),
    ([], ()),
    (("finance",), ("finance",)),
    (["hr", "finance", "hr"], ("hr", "finance")),  # de-duplicated, order kept
    ({"a"}, ("a",)),
    (frozenset(), ()),
    ((g for g in ["x", "y"]), ("x", "y")),
    (("' or 1=1 --", "Ünï"), ("' or 1=1 --", "Ünï")),
])
def test_valid_groups(value, expected):
    assert check_groups(value) == expected
    assert isinstance(check_groups(value), tuple)


def test_all_groups_passes_through():
    assert check_groups(ALL_GROUPS) is ALL_GROUPS


@pytest.mark.parametrize("value,said", [
    (None, "is None"),
    ("finance", "the string 'finance'"),
    ("", "the string ''"),
    (b"finance", "bytes"),
    (bytearray(b"hr"), "bytearray"),
    (0, "the int 0"),
    (7, "the int 7"),
    (1.5, "the float 1.5"),
    (False, "the bool False"),
    ({"finance": True}, "a dict"),
    (["finance", ""], r"groups\[1\] is an empty name"),
    ([" "], r"groups\[0\] is an empty name"),
    (["a", None], r"groups\[1\] is None"),
    ([1], r"groups\[0\] is the int 1"),
    ([b"a"], r"groups\[0\] is a bytes"),
    ([ALL_GROUPS], r"groups\[0\] is ALL_GROUPS \(only allowed as the whole value\)"),
    (("a", ("b",)), r"groups\[1\] is a tuple"),
])
def test_invalid_groups_say_what_was_given_and_what_is_expected(value, said):
    with pytest.raises(TypeError, match=said) as info:
        check_groups(value)
    assert "expected a collection of non-empty group names" in str(info.value)
    assert "ALL_GROUPS to see everything" in str(info.value)


def test_a_bare_string_is_never_split_and_the_message_shows_how_to_write_it():
    with pytest.raises(TypeError, match=r"not split into names \(write \('finance',\) for one group\)"):
        check_groups("finance")


def test_the_message_names_the_value():
    with pytest.raises(TypeError, match="^Principal.groups is None"):
        check_groups(None, what="Principal.groups")


def test_search_request_defaults_to_public_only_and_validates():
    assert SearchRequest(text="x", mode="text").groups == ()
    assert SearchRequest(text="x", mode="text", groups=["b", "a", "b"]).groups == ("b", "a")
    assert SearchRequest(text="x", mode="text", groups=ALL_GROUPS).groups is ALL_GROUPS
    for bad in (None, "finance", ["finance", ""], 3):
        with pytest.raises(TypeError, match="SearchRequest.groups"):
            SearchRequest(text="x", mode="text", groups=bad)
