"""indexers.filters: the filter model, its SQL translation (executed against a real SQLite table)
and its OData translation (string shape and escaping)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexers.filters import (
    FilterError,
    and_,
    any_of,
    check_field,
    eq,
    ne,
    not_,
    odata_quote,
    odata_search_in,
    or_,
    prefix,
    to_odata,
    to_sql,
)

ROWS = [
    # source_id, title, filepath, page_start, metadata
    ("a", "Alpha", "hr/leave.md", 1, {"lang": "en", "year": 2020, "public": True}),
    ("b", "Beta", "hr/pay.md", 2, {"lang": "fr", "year": 2021, "public": False}),
    ("c", "Gamma", "eng/rockets.md", 3, {"lang": "en", "year": 2021}),
    ("d", "O'Brien", "100%_done/x.md", None, {"lang": "de", "year": 2019, "note": "' or 1=1 --"}),
]


@pytest.fixture(scope="module")
def db():
    con = sqlite3.connect(":memory:")
    con.execute(
        "CREATE TABLE chunks (source_id TEXT, title TEXT, url TEXT, filepath TEXT, section TEXT, "
        "page_start INTEGER, page_end INTEGER, metadata TEXT)"
    )
    con.executemany(
        "INSERT INTO chunks VALUES (?, ?, '', ?, '', ?, ?, ?)",
        [(s, t, f, p, p, json.dumps(m)) for s, t, f, p, m in ROWS],
    )
    yield con
    con.close()


def select(db, f) -> set[str]:
    sql, params = to_sql(f)
    return {r[0] for r in db.execute(f"SELECT source_id FROM chunks c WHERE {sql}", params)}


@pytest.mark.parametrize(
    "f,expected",
    [
        (eq("source_id", "a"), {"a"}),
        (ne("source_id", "a"), {"b", "c", "d"}),
        (any_of("source_id", ["a", "c", "zz"]), {"a", "c"}),
        (any_of("source_id", []), set()),
        (prefix("filepath", "hr/"), {"a", "b"}),
        (prefix("filepath", "100%_"), {"d"}),  # LIKE wildcards are literal
        (prefix("filepath", "%"), set()),
        (eq("title", "O'Brien"), {"d"}),
        (eq("metadata.lang", "en"), {"a", "c"}),
        (eq("metadata.year", 2021), {"b", "c"}),
        (eq("metadata.public", True), {"a"}),
        (eq("metadata.note", "' or 1=1 --"), {"d"}),
        (eq("page_start", 2), {"b"}),
        (and_(eq("metadata.lang", "en"), prefix("filepath", "eng/")), {"c"}),
        (or_(eq("source_id", "a"), eq("metadata.lang", "de")), {"a", "d"}),
        (not_(or_(eq("source_id", "a"), eq("source_id", "b"))), {"c", "d"}),
        (and_(eq("source_id", "a")), {"a"}),
        (eq("source_id", "' OR '1'='1"), set()),
        (eq("source_id", "a' --"), set()),
    ],
)
def test_to_sql_semantics(db, f, expected):
    assert select(db, f) == expected


def test_to_sql_uses_parameters_only():
    sql, params = to_sql(and_(eq("title", "x'); DROP TABLE chunks; --"), prefix("filepath", "a")))
    assert "DROP" not in sql and "'x" not in sql
    assert params == ["x'); DROP TABLE chunks; --", 1, b"a"]


def test_to_sql_custom_column_mapping():
    sql, params = to_sql(eq("metadata.lang", "en"), column=lambda name: "col_" + name.replace(".", "_"))
    assert sql == "(col_metadata_lang = ?)" and params == ["en"]


@pytest.mark.parametrize(
    "name",
    ["content", "metadata.", "metadata.a-b", "metadata.x') OR 1=1 --", "metadata.a.b", "c.source_id", "1=1"],
)
def test_unknown_or_unsafe_fields_are_rejected(name):
    with pytest.raises(FilterError):
        check_field(name)
    with pytest.raises(FilterError):
        eq(name, "x")


def test_bad_values_are_rejected():
    with pytest.raises(FilterError):
        eq("title", None)  # type: ignore[arg-type]
    with pytest.raises(FilterError):
        any_of("title", [["nested"]])
    with pytest.raises(FilterError):
        prefix("title", "")


@given(st.text(max_size=30))
def test_any_string_value_is_matched_literally(value):
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE chunks (source_id TEXT, title TEXT, metadata TEXT)")
    con.execute("INSERT INTO chunks VALUES ('hit', ?, ?)", (value, json.dumps({"k": value})))
    con.execute("INSERT INTO chunks VALUES ('miss', ?, '{}')", (value + "\u2603",))
    filters = [eq("title", value)]
    if "\x00" not in value:  # SQLite's json_extract stops at NUL: a known SQLite limitation
        filters.append(eq("metadata.k", value))
    for f in filters:
        sql, params = to_sql(f)
        rows = {r[0] for r in con.execute(f"SELECT source_id FROM chunks c WHERE {sql}", params)}
        assert rows == {"hit"}
    if value:
        sql, params = to_sql(prefix("title", value))
        rows = {r[0] for r in con.execute(f"SELECT source_id FROM chunks c WHERE {sql}", params)}
        assert rows == {"hit", "miss"}
    con.close()


# ---------------------------------------------------------------- OData

def test_odata_quote():
    assert odata_quote("O'Brien") == "'O''Brien'"
    assert odata_quote("' or 1 eq 1 or '") == "''' or 1 eq 1 or '''"
    assert odata_quote(True) == "true" and odata_quote(False) == "false"
    assert odata_quote(3) == "3" and odata_quote(2.5) == "2.5"


@pytest.mark.parametrize(
    "f,expected",
    [
        (eq("source_id", "a"), "source_id eq 'a'"),
        (ne("title", "O'Brien"), "title ne 'O''Brien'"),
        (eq("metadata.year", 2021), "meta_year eq 2021"),
        (any_of("source_id", ["a", "b"]), "search.in(source_id, 'a|b', '|')"),
        (any_of("source_id", ["a|b", "c"]), "(source_id eq 'a|b' or source_id eq 'c')"),
        (any_of("page_start", [1, 2]), "(page_start eq 1 or page_start eq 2)"),
        (any_of("source_id", []), "false"),
        (prefix("filepath", "hr/"), "(filepath ge 'hr/' and filepath lt 'hr0')"),
        (prefix("title", "a\U0010ffff"), "(title ge 'a\U0010ffff' and title lt 'b')"),
        (prefix("title", "\U0010ffff"), "title ge '\U0010ffff'"),
        (and_(eq("source_id", "a"), not_(eq("title", "b"))), "(source_id eq 'a' and not (title eq 'b'))"),
        (or_(eq("source_id", "a"), eq("source_id", "b")), "(source_id eq 'a' or source_id eq 'b')"),
    ],
)
def test_to_odata(f, expected):
    assert to_odata(f) == expected


def test_odata_search_in_rejects_delimiter_in_values():
    with pytest.raises(FilterError):
        odata_search_in("groups", ["a|b"])
    assert odata_search_in("groups", ["it's"]) == "search.in(groups, 'it''s', '|')"
