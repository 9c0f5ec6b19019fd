"""A parser for the subset of OData ``$filter`` that On Your Data's ``filter`` parameter uses, into ``indexers.filters``.

Supported: ``eq``, ``ne``, ``and``, ``or``, ``not``, parentheses, string literals (``'`` escaped as
``''``), integer/decimal numbers, ``true``/``false``, and ``search.in(field, 'a,b', ',')`` (default
delimiters: space and comma). Field paths may use ``/`` for sub-fields (``metadata/dept``).

Field names are index field names: ``field_map`` (built from OYD's ``fields_mapping`` by
``fields_from_mapping``) maps them to ours; our own names (``source_id``, ``title``, ``metadata.x``...)
are accepted as they are. Anything else (other operators, functions, lambda expressions, unknown
fields) raises ``ODataFilterError`` — the facade turns it into a 400.

The result is a ``Filter`` over chunk fields only: no filter can widen security trimming, which is
a separate, mandatory part of every search request.

On Your Data's document-level access control: ``parse_oyd_filter(expr, acl_field="group_ids")`` also
accepts, as a top-level ``and`` term, ``group_ids/any(g: search.in(g, 'a, b'))`` (delimiters as in
``search.in``; also ``group_ids/any(g: g eq 'a')``) and returns it apart, as the groups it names:
the caller's groups are then intersected with them (``indexers.records.narrow_groups``), so the
filter can narrow what a caller sees, never widen it. Under ``or`` or ``not`` it is refused (it would
not be a narrowing); ``parse_odata`` refuses it everywhere.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

from indexers.filters import And, Eq, Filter, FilterError, In, Not, Or, and_, check_field, or_
from retrieval.errors import ODataFilterError

MAX_FILTER_LENGTH = 8192
MAX_DEPTH = 64

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<colon>:)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:[./][A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)

_KEYWORDS = {"eq", "ne", "and", "or", "not", "true", "false", "null", "gt", "ge", "lt", "le", "any", "all"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(expr: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            if expr[pos] == "'":
                raise ODataFilterError(f"unterminated string literal at position {pos} of the filter")
            raise ODataFilterError(f"unexpected character {expr[pos]!r} at position {pos} of the filter")
        kind = m.lastgroup or ""
        if kind != "ws":
            toks.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    return toks


def fields_from_mapping(fields_mapping: Mapping[str, object] | None) -> dict[str, str]:
    """Index field name -> our field name, from OYD's ``fields_mapping`` (title_field, url_field, filepath_field)."""
    out: dict[str, str] = {}
    for key, ours in (("title_field", "title"), ("url_field", "url"), ("filepath_field", "filepath")):
        name = (fields_mapping or {}).get(key)
        if isinstance(name, str) and name:
            out[name] = ours
    return out


@dataclass(frozen=True)
class _GroupsTerm:
    """``ACL_FIELD/any(g: ...)`` while parsing: the groups it names (taken out of the filter by ``_split``)."""

    groups: tuple[str, ...]


class _Parser:
    def __init__(self, expr: str, field_map: Mapping[str, str], acl_field: str | None = None) -> None:
        self.toks = _tokenize(expr)
        self.i = 0
        self.field_map = field_map
        self.depth = 0
        self.acl_any = f"{acl_field}/any".lower() if acl_field else None

    # -- helpers
    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise ODataFilterError("the filter ends too early")
        self.i += 1
        return tok

    def is_kw(self, word: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "ident" and tok.text.lower() == word

    def expect(self, kind: str, what: str) -> _Tok:
        if self.peek() is None:
            raise ODataFilterError(f"expected {what} but the filter ends")
        tok = self.next()
        if tok.kind != kind:
            raise ODataFilterError(f"expected {what} at position {tok.pos} of the filter, found {tok.text!r}")
        return tok

    # -- grammar
    def parse(self) -> Filter:
        if not self.toks:
            raise ODataFilterError("the filter is empty")
        node = self.or_expr()
        tok = self.peek()
        if tok is not None:
            raise ODataFilterError(f"unexpected {tok.text!r} at position {tok.pos} of the filter")
        return node

    def or_expr(self) -> Filter:
        items = [self.and_expr()]
        while self.is_kw("or"):
            self.next()
            items.append(self.and_expr())
        return or_(*items)

    def and_expr(self) -> Filter:
        items = [self.unary()]
        while self.is_kw("and"):
            self.next()
            items.append(self.unary())
        return and_(*items)

    def unary(self) -> Filter:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ODataFilterError(f"the filter nests deeper than {MAX_DEPTH} levels")
        try:
            if self.is_kw("not"):
                self.next()
                return Not(self.unary())
            return self.primary()
        finally:
            self.depth -= 1

    def primary(self) -> Filter:
        tok = self.peek()
        if tok is None:
            raise ODataFilterError("the filter ends too early")
        if tok.kind == "lparen":
            self.next()
            node = self.or_expr()
            self.expect("rparen", "')'")
            return node
        if tok.kind == "ident" and tok.text.lower() == "search.in":
            return self.search_in()
        if tok.kind == "ident" and self.acl_any is not None and tok.text.lower() == self.acl_any:
            return self.groups_any()  # type: ignore[return-value]
        if tok.kind == "ident" and tok.text.lower() not in _KEYWORDS:
            after = self.toks[self.i + 1] if self.i + 1 < len(self.toks) else None
            if after is not None and after.kind == "lparen":
                raise ODataFilterError(f"unsupported function {tok.text!r} in the filter; only search.in is supported")
            field = self.field(self.next())
            op = self.next()
            if op.kind != "ident" or op.text.lower() not in ("eq", "ne"):
                raise ODataFilterError(
                    f"unsupported operator {op.text!r} at position {op.pos} of the filter; use eq or ne"
                )
            value = self.literal()
            return Eq(field, value, negate=op.text.lower() == "ne")
        raise ODataFilterError(f"unexpected {tok.text!r} at position {tok.pos} of the filter")

    def groups_any(self) -> _GroupsTerm:
        """``ACL_FIELD/any(g: search.in(g, 'a, b'[, delimiters]))`` or ``ACL_FIELD/any(g: g eq 'a')``."""
        start = self.next()
        self.expect("lparen", f"'(' after {start.text}")
        var = self.expect("ident", "a lambda variable")
        if var.text.lower() in _KEYWORDS or "/" in var.text or "." in var.text:
            raise ODataFilterError(f"expected a lambda variable at position {var.pos} of the filter, found {var.text!r}")
        self.expect("colon", f"':' after the lambda variable of {start.text}")
        tok = self.peek()
        if tok is not None and tok.kind == "ident" and tok.text.lower() == "search.in":
            self.next()
            self.expect("lparen", "'(' after search.in")
            self.lambda_variable(var)
            self.expect("comma", "',' after the field of search.in")
            groups = self.search_in_values()
        else:
            self.lambda_variable(var)
            op = self.expect("ident", "eq")
            if op.text.lower() != "eq":
                raise ODataFilterError(f"unsupported operator {op.text!r} at position {op.pos} of the filter; "
                                       f"{start.text} takes search.in(...) or eq")
            value = self.expect("string", "a group name string")
            groups = (_unquote(value.text),)
        self.expect("rparen", f"')' to close {start.text}")
        return _GroupsTerm(tuple(dict.fromkeys(g for g in groups if g.strip())))

    def lambda_variable(self, var: _Tok) -> None:
        tok = self.expect("ident", f"the lambda variable {var.text!r}")
        if tok.text != var.text:
            raise ODataFilterError(f"expected the lambda variable {var.text!r} at position {tok.pos} of the filter, "
                                   f"found {tok.text!r}")

    def search_in(self) -> Filter:
        self.next()
        self.expect("lparen", "'(' after search.in")
        field = self.field(self.expect("ident", "a field name"))
        self.expect("comma", "',' after the field of search.in")
        return In(field, self.search_in_values())

    def search_in_values(self) -> tuple[str, ...]:
        """``'a,b'[, 'delimiters'])`` of a search.in (the closing parenthesis included)."""
        values_tok = self.expect("string", "a string of values")
        values = _unquote(values_tok.text)
        delims = " ,"
        tok = self.next()
        if tok.kind == "comma":
            delims = _unquote(self.expect("string", "a delimiter string").text)
            if not delims:
                raise ODataFilterError("the delimiter of search.in must not be empty")
            tok = self.next()
        if tok.kind != "rparen":
            raise ODataFilterError(f"expected ')' to close search.in at position {tok.pos} of the filter")
        parts = re.split("[" + re.escape(delims) + "]", values)
        return tuple(p for p in parts if p != "")

    def field(self, tok: _Tok) -> str:
        if tok.kind != "ident" or tok.text.lower() in _KEYWORDS:
            raise ODataFilterError(f"expected a field name at position {tok.pos} of the filter, found {tok.text!r}")
        name = self.field_map.get(tok.text, tok.text)
        if name.startswith("metadata/"):
            name = "metadata." + name[len("metadata/"):]
        try:
            return check_field(name)
        except FilterError as exc:
            raise ODataFilterError(f"the filter names an unknown field {tok.text!r}") from exc

    def literal(self):
        tok = self.next()
        if tok.kind == "string":
            return _unquote(tok.text)
        if tok.kind == "number":
            return _number(tok)
        if tok.kind == "ident" and tok.text.lower() in ("true", "false"):
            return tok.text.lower() == "true"
        if tok.kind == "ident" and tok.text.lower() == "null":
            raise ODataFilterError("null comparisons are not supported in the filter")
        raise ODataFilterError(f"expected a literal at position {tok.pos} of the filter, found {tok.text!r}")


MAX_INT = 2**63 - 1
MAX_NUMBER_CHARS = 40


def _number(tok: _Tok) -> int | float:
    """A number literal as Edm.Int64 or a finite Edm.Double; anything larger is an ``ODataFilterError``."""
    text = tok.text
    if len(text) > MAX_NUMBER_CHARS:
        raise ODataFilterError(f"the number at position {tok.pos} of the filter is too long")
    if any(c in text for c in ".eE"):
        value = float(text)
        if not math.isfinite(value):
            raise ODataFilterError(f"the number at position {tok.pos} of the filter is out of range")
        return value
    value = int(text)
    if not -MAX_INT - 1 <= value <= MAX_INT:
        raise ODataFilterError(f"the number at position {tok.pos} of the filter is out of the 64-bit integer range")
    return value


def _unquote(text: str) -> str:
    return text[1:-1].replace("''", "'")



def parse_odata(expr: str, *, field_map: Mapping[str, str] | None = None) -> Filter:
    """Parse an OData filter of the supported subset into a ``Filter``; raises ``ODataFilterError``."""
    flt, _ = _parse(expr, field_map=field_map, acl_field=None)
    assert flt is not None  # without an ACL field every term is a chunk-field filter
    return flt


def parse_oyd_filter(expr: str, *, field_map: Mapping[str, str] | None = None,
                     acl_field: str = "group_ids") -> tuple[Filter | None, tuple[str, ...] | None]:
    """An On Your Data ``filter``: (the filter over chunk fields or None, the groups its ACL terms name or None).

    Several ACL terms intersect. See the module docstring; raises ``ODataFilterError``.
    """
    return _parse(expr, field_map=field_map, acl_field=acl_field)


def _parse(expr: str, *, field_map: Mapping[str, str] | None,
           acl_field: str | None) -> tuple[Filter | None, tuple[str, ...] | None]:
    if not isinstance(expr, str):
        raise ODataFilterError("the filter must be a string")
    if len(expr) > MAX_FILTER_LENGTH:
        raise ODataFilterError(f"the filter is longer than {MAX_FILTER_LENGTH} characters")
    if re.search("[\ud800-\udfff]", expr):
        raise ODataFilterError("the filter holds invalid Unicode (a lone surrogate)")
    try:
        node = _Parser(expr, dict(field_map or {}), acl_field).parse()
    except FilterError as exc:
        raise ODataFilterError(f"invalid filter: {exc}") from exc
    except RecursionError as exc:  # pragma: no cover - bounded by MAX_DEPTH
        raise ODataFilterError("the filter nests too deeply") from exc
    return _split(node, acl_field)


def _split(node: Filter, acl_field: str | None) -> tuple[Filter | None, tuple[str, ...] | None]:
    """Take the top-level ``and`` terms on the ACL field out of ``node``: (the rest, their groups intersected)."""
    terms: list = []

    def flatten(n) -> None:
        if isinstance(n, And):
            for item in n.items:
                flatten(item)
        else:
            terms.append(n)

    flatten(node)
    named = [t.groups for t in terms if isinstance(t, _GroupsTerm)]
    rest = [t for t in terms if not isinstance(t, _GroupsTerm)]
    if any(_has_groups_term(t) for t in rest):
        raise ODataFilterError(f"a filter on {acl_field} can only be combined with 'and' (it narrows the caller's "
                               "groups); it cannot appear under 'or' or 'not'")
    groups = None
    for names in named:
        groups = names if groups is None else tuple(g for g in groups if g in names)
    return (and_(*rest) if rest else None), groups


def _has_groups_term(node) -> bool:
    if isinstance(node, _GroupsTerm):
        return True
    if isinstance(node, (And, Or)):
        return any(_has_groups_term(i) for i in node.items)
    if isinstance(node, Not):
        return _has_groups_term(node.item)
    return False
