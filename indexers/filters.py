"""One small filter model over chunk fields, translated to SQL (local index) and OData (Azure AI Search).

Build filters with the helpers::

    from indexers.filters import eq, any_of, prefix, and_, or_, not_
    f = and_(eq("source_id", "handbook.pdf"), prefix("filepath", "hr/"))

Fields are the chunk's ``source_id``, ``title``, ``url``, ``filepath``, ``section``,
``page_start``, ``page_end`` and custom metadata as ``metadata.<key>``. Values are always passed
as SQL parameters or escaped through ``odata_quote`` — no filter value can change the query's
structure. Field names are validated against a fixed pattern. Security trimming (groups) is NOT
expressed with this model: it is a separate, mandatory part of ``SearchRequest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Union

Scalar = Union[str, int, float, bool]

CORE_FIELDS = ("source_id", "title", "url", "filepath", "section", "page_start", "page_end")
_META_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class FilterError(ValueError):
    """A filter names an unknown field or carries a value of an unsupported type."""


def check_field(name: str) -> str:
    if name in CORE_FIELDS:
        return name
    if name.startswith("metadata."):
        key = name[len("metadata."):]
        if _META_KEY.match(key):
            return name
    raise FilterError(
        f"unknown filter field {name!r}; use one of {', '.join(CORE_FIELDS)} or metadata.<key> "
        "(key: letters, digits, underscore)"
    )


def _check_value(value: object) -> Scalar:
    if isinstance(value, (str, bool, int, float)):
        return value
    raise FilterError(f"filter values must be str, int, float or bool, not {type(value).__name__}")


@dataclass(frozen=True)
class Eq:
    field: str
    value: Scalar
    negate: bool = False

    def __post_init__(self) -> None:
        check_field(self.field)
        _check_value(self.value)


@dataclass(frozen=True)
class In:
    field: str
    values: tuple[Scalar, ...]

    def __post_init__(self) -> None:
        check_field(self.field)
        object.__setattr__(self, "values", tuple(_check_value(v) for v in self.values))


@dataclass(frozen=True)
class Prefix:
    field: str
    value: str

    def __post_init__(self) -> None:
        check_field(self.field)
        if not isinstance(self.value, str) or not self.value:
            raise FilterError("a prefix filter needs a non-empty string")


@dataclass(frozen=True)
class And:
    items: tuple["Filter", ...]


@dataclass(frozen=True)
class Or:
    items: tuple["Filter", ...]


@dataclass(frozen=True)
class Not:
    item: "Filter"


Filter = Union[Eq, In, Prefix, And, Or, Not]


def eq(field: str, value: Scalar) -> Eq:
    return Eq(field, value)


def ne(field: str, value: Scalar) -> Eq:
    return Eq(field, value, negate=True)


def any_of(field: str, values) -> In:
    return In(field, tuple(values))


def prefix(field: str, value: str) -> Prefix:
    return Prefix(field, value)


def and_(*items: Filter) -> Filter:
    return items[0] if len(items) == 1 else And(tuple(items))


def or_(*items: Filter) -> Filter:
    return items[0] if len(items) == 1 else Or(tuple(items))


def not_(item: Filter) -> Not:
    return Not(item)


# ---------------------------------------------------------------- SQL (SQLite)

def to_sql(f: Filter, *, column: Callable[[str], str] | None = None) -> tuple[str, list[Scalar | bytes]]:
    """Translate to a parenthesised SQLite boolean expression and its parameters.

    ``column`` maps a field name to a SQL expression; by default core fields map to ``c.<name>``
    and ``metadata.<key>`` to ``json_extract(c.metadata, '$.<key>')`` (the key is validated).
    """
    col = column or _default_sql_column
    params: list[Scalar | bytes] = []

    def walk(node: Filter) -> str:
        if isinstance(node, Eq):
            params.append(node.value)
            return f"({col(node.field)} {'!=' if node.negate else '='} ?)"
        if isinstance(node, In):
            if not node.values:
                return "(0)"
            params.extend(node.values)
            return f"({col(node.field)} IN ({', '.join('?' for _ in node.values)}))"
        if isinstance(node, Prefix):
            # Compare UTF-8 bytes: SQLite's length()/substr() on TEXT stop at a NUL character.
            raw = node.value.encode("utf-8")
            params.extend([len(raw), raw])
            return f"(substr(CAST({col(node.field)} AS BLOB), 1, ?) = ?)"
        if isinstance(node, And):
            return "(" + " AND ".join(walk(i) for i in node.items) + ")" if node.items else "(1)"
        if isinstance(node, Or):
            return "(" + " OR ".join(walk(i) for i in node.items) + ")" if node.items else "(0)"
        if isinstance(node, Not):
            return f"(NOT {walk(node.item)})"
        raise FilterError(f"not a filter: {node!r}")

    return walk(f), params


def _default_sql_column(name: str) -> str:
    check_field(name)
    if name.startswith("metadata."):
        return f"json_extract(c.metadata, '$.{name[len('metadata.'):]}')"
    return f"c.{name}"


# ---------------------------------------------------------------- OData (Azure AI Search)

def odata_quote(value: Scalar) -> str:
    """Render a value as an OData literal. Strings are quoted with ``'`` doubled — the one escape helper."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def odata_search_in(field_expr: str, values, *, delimiter: str = "|") -> str:
    """``search.in(field, 'a|b', '|')`` with each value checked not to contain the delimiter."""
    vals = [str(v) for v in values]
    for v in vals:
        if delimiter in v:
            raise FilterError(f"value {v!r} contains the search.in delimiter {delimiter!r}")
    return f"search.in({field_expr}, {odata_quote(delimiter.join(vals))}, {odata_quote(delimiter)})"


def to_odata(f: Filter, *, field_name: Callable[[str], str] | None = None) -> str:
    """Translate to an OData ``$filter`` expression; ``field_name`` maps our names to index field names."""
    name = field_name or _default_odata_field

    def walk(node: Filter) -> str:
        if isinstance(node, Eq):
            return f"{name(node.field)} {'ne' if node.negate else 'eq'} {odata_quote(node.value)}"
        if isinstance(node, In):
            if not node.values:
                return "false"
            if all(isinstance(v, str) for v in node.values) and not any("|" in v for v in node.values):
                return odata_search_in(name(node.field), node.values)
            return "(" + " or ".join(f"{name(node.field)} eq {odata_quote(v)}" for v in node.values) + ")"
        if isinstance(node, Prefix):
            fld = name(node.field)
            stem = node.value.rstrip("\U0010ffff")  # the largest code point has no successor
            if not stem:
                return f"{fld} ge {odata_quote(node.value)}"
            upper = stem[:-1] + chr(ord(stem[-1]) + 1)
            return f"({fld} ge {odata_quote(node.value)} and {fld} lt {odata_quote(upper)})"
        if isinstance(node, And):
            return "(" + " and ".join(walk(i) for i in node.items) + ")" if node.items else "true"
        if isinstance(node, Or):
            return "(" + " or ".join(walk(i) for i in node.items) + ")" if node.items else "false"
        if isinstance(node, Not):
            return f"not ({walk(node.item)})"
        raise FilterError(f"not a filter: {node!r}")

    return walk(f)


def _default_odata_field(name: str) -> str:
    check_field(name)
    if name.startswith("metadata."):
        return "meta_" + name[len("metadata."):]
    return name
