"""TEST DOUBLE of the Azure AI Search data plane, for driving the real ``azure-search-documents`` SDK.

Implements the documented REST shapes the SDK (12.x) sends, small and honest:

- index definitions: ``PUT / GET / DELETE /indexes('name')``, ``GET /indexes`` (list). A PUT may add
  fields but not change an existing one (400 ``CannotChangeExistingField``, like the service).
- ``POST /indexes('name')/docs/search.index``: ``upload``, ``merge``, ``mergeOrUpload``, ``delete``
  actions; at most 1000 actions (400) and 16 MiB (413) per request; answers 200, or 207 with
  per-document ``status``/``statusCode`` when some documents fail.
- ``POST /indexes('name')/docs/search.post.search``: ``search`` (simple syntax: words, any-match,
  BM25 over the searchable fields, ``*`` matches all), ``vectorQueries`` (kind ``vector``, ``k``,
  ``fields``; cosine, score ``1 / (2 - cos)`` like the service), hybrid (RRF, k=60), ``queryType:
  semantic`` (a toy word-overlap reranker, ``@search.rerankerScore`` in 0..4; needs a semantic
  configuration), ``filter`` (the OData subset ondata emits: ``eq ne gt ge lt le and or not``,
  parentheses, ``search.in(f, 'a|b', '|')``, ``groups/any(g: ...)``, ``groups/any()``; fields must be
  filterable), ``top``, ``skip``, ``select``, ``orderby``, ``count``, ``facets`` (``field,count:N``).
- ``GET /indexes('name')/docs/$count``.
- index aliases (GA in 2026-04-01): ``POST /aliases``, ``GET /aliases``, ``PUT / GET / DELETE
  /aliases('name')`` (``{"name", "indexes": [one index]}``). An alias stands for its index in
  document operations and in ``GET / PUT /indexes('alias')``; it cannot delete an index (404), an
  index an alias maps to cannot be deleted (400), and an alias and an index never share a name (400).
- auth: ``api-key`` header must equal the configured key (401 when absent, 403 when wrong).

Failure injection controlled by the test:

- ``fail_next(n, status=429, retry_after=0.2, path=None)``: the next ``n`` requests (whose path
  contains ``path``, when given) answer ``status`` with ``Retry-After`` (and ``retry-after-ms``).
- ``fail_documents({key: [503, 422]})``: each time ``key`` is indexed, the next status of its list
  fails that document inside an otherwise successful batch (HTTP 207).

Not implemented (not needed by ondata): full Lucene syntax, analyzers, scoring profiles, paging
via ``@search.nextPageParameters`` (``top`` defaults to 50 and is capped at 1000), geo, suggesters.
"""

from __future__ import annotations

import copy
import math
import re
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import pytest

from indexers.fusion import reciprocal_rank_fusion
from tests.servers import Request, Response, TestServer

MAX_ACTIONS = 1000
MAX_BYTES = 16 * 1024 * 1024
_KEY_OK = re.compile(r"^[A-Za-z0-9_\-=]+$")
_WORD = re.compile(r"\w+", re.UNICODE)
_INDEX_PATH = re.compile(r"^/indexes(?:\('(?P<q>[^']+)'\)|/(?P<p>[^/]+))(?P<rest>/.*)?$")
_ALIAS_PATH = re.compile(r"^/aliases(?:\('(?P<q>[^']+)'\)|/(?P<p>[^/]+))$")


class ODataError(ValueError):
    pass


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


# ============================================================================ OData subset
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(?P<op>[(),:/])|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)


def _lex(text: str) -> list[tuple[str, Any]]:
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ODataError(f"Invalid expression: syntax error at position {pos} in '{text}'")
        pos = m.end()
        if m.group("str") is not None:
            out.append(("str", m.group("str")[1:-1].replace("''", "'")))
        elif m.group("num") is not None:
            s = m.group("num")
            out.append(("num", float(s) if any(c in s for c in ".eE") else int(s)))
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
        else:
            out.append(("word", m.group("word")))
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


Pred = Callable[[dict, dict], bool]  # (document, lambda variables) -> bool


class _Parser:
    """Recursive descent over: or > and > not > comparison | search.in | any | ( expr ) | literal."""

    def __init__(self, text: str, fields: dict[str, dict]) -> None:
        self.toks = _lex(text)
        self.i = 0
        self.fields = fields
        self.text = text

    def parse(self) -> Pred:
        p = self.or_()
        if self.i != len(self.toks):
            raise ODataError(f"Invalid expression: unexpected '{self.toks[self.i][1]}' in '{self.text}'")
        return p

    def peek(self, kind: str | None = None, value: Any = None) -> bool:
        if self.i >= len(self.toks):
            return False
        k, v = self.toks[self.i]
        return (kind is None or k == kind) and (value is None or v == value)

    def take(self, kind: str | None = None, value: Any = None) -> Any:
        if not self.peek(kind, value):
            got = self.toks[self.i][1] if self.i < len(self.toks) else "end of expression"
            raise ODataError(f"Invalid expression: expected {value or kind}, got '{got}' in '{self.text}'")
        self.i += 1
        return self.toks[self.i - 1][1]

    def or_(self) -> Pred:
        left = self.and_()
        while self.peek("word", "or"):
            self.take()
            right = self.and_()
            left = (lambda a, b: lambda d, v: a(d, v) or b(d, v))(left, right)
        return left

    def and_(self) -> Pred:
        left = self.not_()
        while self.peek("word", "and"):
            self.take()
            right = self.not_()
            left = (lambda a, b: lambda d, v: a(d, v) and b(d, v))(left, right)
        return left

    def not_(self) -> Pred:
        if self.peek("word", "not"):
            self.take()
            inner = self.not_()
            return lambda d, v: not inner(d, v)
        return self.primary()

    def primary(self) -> Pred:
        if self.peek("op", "("):
            self.take()
            p = self.or_()
            self.take("op", ")")
            return p
        if self.peek("word", "true"):
            self.take()
            return lambda d, v: True
        if self.peek("word", "false"):
            self.take()
            return lambda d, v: False
        if self.peek("word", "search.in"):
            return self.search_in()
        name = self.take("word")
        if self.peek("op", "/"):
            return self.any_(name)
        value_of = self.operand(name)
        op = self.take("word")
        if op not in ("eq", "ne", "gt", "ge", "lt", "le"):
            raise ODataError(f"Invalid expression: unknown operator '{op}' in '{self.text}'")
        lit = self.literal()
        return _compare(value_of, op, lit)

    def literal(self) -> Any:
        kind, value = self.toks[self.i] if self.i < len(self.toks) else (None, None)
        if kind in ("str", "num"):
            self.i += 1
            return value
        if kind == "word" and value in ("true", "false", "null"):
            self.i += 1
            return {"true": True, "false": False, "null": None}[value]
        raise ODataError(f"Invalid expression: expected a literal in '{self.text}'")

    def operand(self, name: str) -> Callable[[dict, dict], Any]:
        if name in self._vars:
            return lambda d, v: v.get(name)
        f = self.fields.get(name)
        if f is None:
            raise ODataError(f"Invalid expression: Could not find a property named '{name}' on type 'search.document'.")
        if not f.get("filterable", True) and not f.get("key"):
            raise ODataError(f"Invalid expression: The field '{name}' is not filterable.")
        if f["type"].startswith("Collection("):
            raise ODataError(
                f"Invalid expression: The field '{name}' is a collection; use any() or all() to filter on it."
            )
        return lambda d, v: d.get(name)

    _vars: set[str] = set()

    def search_in(self) -> Pred:
        self.take("word", "search.in")
        self.take("op", "(")
        name = self.take("word")
        value_of = self.operand(name)
        self.take("op", ",")
        values = self.take("str")
        delims = " ,"
        if self.peek("op", ","):
            self.take()
            delims = self.take("str")
        self.take("op", ")")
        parts = {p for p in re.split("[" + re.escape(delims) + "]", values) if p != ""} if delims else {values}
        return lambda d, v: value_of(d, v) in parts

    def any_(self, name: str) -> Pred:
        f = self.fields.get(name)
        if f is None:
            raise ODataError(f"Invalid expression: Could not find a property named '{name}' on type 'search.document'.")
        if not f["type"].startswith("Collection("):
            raise ODataError(f"Invalid expression: any() needs a collection field, '{name}' is not one.")
        if not f.get("filterable", True):
            raise ODataError(f"Invalid expression: The field '{name}' is not filterable.")
        self.take("op", "/")
        fn = self.take("word")
        if fn not in ("any", "all"):
            raise ODataError(f"Invalid expression: unknown lambda '{fn}'")
        self.take("op", "(")
        if self.peek("op", ")"):
            self.take()
            if fn != "any":
                raise ODataError("Invalid expression: all() needs a lambda expression")
            return lambda d, v: bool(d.get(name) or [])
        var = self.take("word")
        self.take("op", ":")
        saved = self._vars
        self._vars = saved | {var}
        body = self.or_()
        self._vars = saved
        self.take("op", ")")
        if fn == "any":
            return lambda d, v: any(body(d, {**v, var: x}) for x in (d.get(name) or []))
        return lambda d, v: all(body(d, {**v, var: x}) for x in (d.get(name) or []))


def _compare(value_of: Callable[[dict, dict], Any], op: str, lit: Any) -> Pred:
    def pred(d: dict, v: dict) -> bool:
        x = value_of(d, v)
        if op == "eq":
            return x == lit
        if op == "ne":
            return x != lit
        if x is None or lit is None:
            return False
        try:
            return {"gt": x > lit, "ge": x >= lit, "lt": x < lit, "le": x <= lit}[op]
        except TypeError:
            return False

    return pred


def compile_filter(text: str | None, fields: dict[str, dict]) -> Pred:
    if not text:
        return lambda d, v: True
    return _Parser(text, fields).parse()


# ============================================================================ the index
@dataclass
class _Failure:
    status: int
    retry_after: float | None
    path: str | None = None


class _Index:
    def __init__(self, definition: dict) -> None:
        self.definition = definition
        self.name = str(definition.get("name") or "")
        self.docs: dict[str, dict] = {}
        self.etag = '"' + uuid.uuid4().hex + '"'

    @property
    def fields(self) -> dict[str, dict]:
        return {f["name"]: f for f in self.definition.get("fields", [])}

    @property
    def key(self) -> str:
        for f in self.definition.get("fields", []):
            if f.get("key"):
                return f["name"]
        raise ODataError("index has no key field")

    def public(self) -> dict:
        d = copy.deepcopy(self.definition)
        d["@odata.etag"] = self.etag
        return d


class FakeAzureSearch(TestServer):
    """TEST DOUBLE of an Azure AI Search service (data plane). See the module docstring."""

    def __init__(self, *, api_key: str | None = "test-search-key", service_name: str = "fake-search") -> None:
        super().__init__()
        self.api_key = api_key
        self.service_name = service_name
        self.indexes: dict[str, _Index] = {}
        self.aliases: dict[str, str] = {}  # alias name -> index name
        self._failures: deque[_Failure] = deque()
        self._doc_failures: dict[str, deque[int]] = {}
        self.index_batches: list[dict] = []  # summary of each docs/search.index request: index, actions, bytes, status

    # ------------------------------------------------------------------ test controls
    def fail_next(self, n: int = 1, *, status: int = 429, retry_after: float | None = 0.2,
                  path: str | None = None) -> None:
        """The next ``n`` requests (whose path contains ``path``, when given) answer ``status``."""
        with self.lock:
            for _ in range(n):
                self._failures.append(_Failure(status, retry_after, path))

    def fail_documents(self, failures: dict[str, Iterable[int]]) -> None:
        """Per-document failures: ``{key: [503, 422]}`` fails ``key`` with 503, then 422, then succeeds."""
        with self.lock:
            for key, statuses in failures.items():
                self._doc_failures.setdefault(key, deque()).extend(int(s) for s in statuses)

    def clear_failures(self) -> None:
        """Drop every pending injected failure (request-level and per-document)."""
        with self.lock:
            self._failures.clear()
            self._doc_failures.clear()

    def documents(self, index: str) -> dict[str, dict]:
        with self.lock:
            return copy.deepcopy(self.indexes[self.aliases.get(index, index)].docs)

    # ------------------------------------------------------------------ dispatch
    def handle(self, request: Request) -> Response:
        self.record(request)
        if self.api_key is not None:
            key = request.headers.get("api-key")
            if key is None and "authorization" not in request.headers:
                return _err(401, "Unauthorized", "Authentication is required: send an api-key header.")
            if key != self.api_key:
                return _err(403, "Forbidden", "Authorization failed: the api-key is not valid for this service.")
        if "api-version" not in request.query:
            return _err(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required.")
        with self.lock:
            f = next((f for f in self._failures if f.path is None or f.path in request.path), None)
            if f is not None:
                self._failures.remove(f)
                headers = {}
                if f.retry_after is not None:
                    headers["Retry-After"] = _fmt(f.retry_after)
                    headers["retry-after-ms"] = str(int(f.retry_after * 1000))
                msg = (
                    "You are sending too many requests. Please try again later."
                    if f.status == 429
                    else "The service is temporarily unavailable."
                )
                return _err(f.status, str(f.status), msg, headers)
        if request.path in ("/indexes", "/indexes/"):
            if request.method == "GET":
                with self.lock:
                    return Response(200, {"value": [i.public() for i in self.indexes.values()]})
            if request.method == "POST":
                return self._put_index(None, request)
            return _err(405, "MethodNotAllowed", "method not allowed")
        if request.path in ("/aliases", "/aliases/") or _ALIAS_PATH.match(request.path):
            return self._alias_request(request)
        m = _INDEX_PATH.match(request.path)
        if not m:
            return _err(404, "NotFound", f"The test double does not serve {request.path}")
        name = m.group("q") or m.group("p")
        rest = m.group("rest") or ""
        with self.lock:
            if request.method != "DELETE":
                name = self.aliases.get(name, name)  # an alias stands for its index, except to delete it
        try:
            if rest == "":
                if request.method == "PUT":
                    return self._put_index(name, request)
                if request.method == "GET":
                    with self.lock:
                        idx = self.indexes.get(name)
                        return Response(200, idx.public()) if idx else self._no_index(name)
                if request.method == "DELETE":
                    with self.lock:
                        mapped = sorted(a for a, target in self.aliases.items() if target == name)
                        if mapped and name in self.indexes:
                            return _err(400, "InvalidOperation", f"The index '{name}' cannot be deleted: the alias(es) "
                                        f"{', '.join(mapped)} map to it; delete them or map them to another index first.")
                        return Response(204) if self.indexes.pop(name, None) else self._no_index(name)
                return _err(405, "MethodNotAllowed", "method not allowed")
            with self.lock:
                idx = self.indexes.get(name)
                if idx is None:
                    return self._no_index(name)
                if rest == "/docs/$count" and request.method == "GET":
                    return Response(200, str(len(idx.docs)).encode(), {"Content-Type": "text/plain"})
                if rest == "/docs/search.index" and request.method == "POST":
                    return self._index_docs(idx, request)
                if rest == "/docs/search.post.search" and request.method == "POST":
                    return self._search(idx, request.json())
            return _err(404, "NotFound", f"The test double does not serve {request.method} {request.path}")
        except ODataError as exc:
            return _err(400, "InvalidRequestParameter", str(exc))

    def _no_index(self, name: str) -> Response:
        return _err(404, "", f"No index with the name '{name}' was found in the service '{self.service_name}'.")

    # ------------------------------------------------------------------ index definitions
    def _put_index(self, name: str | None, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict) or not body.get("name"):
            return _err(400, "InvalidRequestParameter", "The index definition needs a name.")
        name = name or body["name"]
        if body["name"] != name:
            return _err(400, "InvalidRequestParameter", "The index name in the URL and the body differ.")
        fields = body.get("fields") or []
        keys = [f for f in fields if f.get("key")]
        if len(keys) != 1 or keys[0].get("type") != "Edm.String":
            return _err(400, "InvalidRequestParameter", "The index must have exactly one key field of type Edm.String.")
        profiles = {p["name"] for p in ((body.get("vectorSearch") or {}).get("profiles") or [])}
        for f in fields:
            if f.get("type") == "Collection(Edm.Single)":
                if not f.get("dimensions") or f.get("vectorSearchProfile") not in profiles:
                    return _err(
                        400,
                        "InvalidRequestParameter",
                        f"The vector field '{f['name']}' needs dimensions and an existing vectorSearchProfile.",
                    )
        with self.lock:
            if name in self.aliases:
                return _err(400, "InvalidName", f"The name '{name}' is already used by an alias.")
            existing = self.indexes.get(name)
            if_match = request.headers.get("if-match")
            if if_match is not None and (existing is None or if_match not in ("*", existing.etag)):
                return _err(412, "PreconditionFailed", "The index definition was changed since it was read "
                            "(If-Match does not match its ETag).")
            if existing is not None:
                old = existing.fields
                for f in fields:
                    o = old.get(f["name"])
                    if o is None:
                        continue
                    for attr in ("type", "key", "dimensions", "searchable", "filterable", "facetable", "sortable"):
                        if o.get(attr) != f.get(attr):
                            return _err(
                                400,
                                "CannotChangeExistingField",
                                f"Existing field '{f['name']}' cannot be changed ({attr}).",
                            )
                missing = set(old) - {f["name"] for f in fields}
                if missing:
                    return _err(400, "CannotChangeExistingField", f"Existing fields cannot be removed: {sorted(missing)}.")
                existing.definition = body
                existing.etag = '"' + uuid.uuid4().hex + '"'
                return Response(200, existing.public())
            idx = _Index(body)
            self.indexes[name] = idx
            return Response(201, idx.public())

    # ------------------------------------------------------------------ aliases
    def _alias_request(self, request: Request) -> Response:
        m = _ALIAS_PATH.match(request.path)
        name = (m.group("q") or m.group("p")) if m else None
        with self.lock:
            if name is None:
                if request.method == "GET":
                    return Response(200, {"value": [_alias(a, i) for a, i in sorted(self.aliases.items())]})
                if request.method == "POST":
                    body = request.json()
                    if isinstance(body, dict) and body.get("name") in self.aliases:
                        return _err(409, "Conflict", f"The alias '{body['name']}' already exists.")
                    return self._put_alias(None, body)
                return _err(405, "MethodNotAllowed", "method not allowed")
            if request.method == "GET":
                target = self.aliases.get(name)
                return Response(200, _alias(name, target)) if target else self._no_alias(name)
            if request.method == "PUT":
                return self._put_alias(name, request.json())
            if request.method == "DELETE":
                return Response(204) if self.aliases.pop(name, None) else self._no_alias(name)
            return _err(405, "MethodNotAllowed", "method not allowed")

    def _put_alias(self, name: str | None, body: Any) -> Response:
        if not isinstance(body, dict) or not body.get("name"):
            return _err(400, "InvalidRequestParameter", "The alias definition needs a name.")
        name = name or body["name"]
        if body["name"] != name:
            return _err(400, "InvalidRequestParameter", "The alias name in the URL and the body differ.")
        indexes = body.get("indexes")
        if not isinstance(indexes, list) or len(indexes) != 1:
            return _err(400, "InvalidRequestParameter", "An alias maps to exactly one index.")
        if name in self.indexes:
            return _err(400, "InvalidName", f"The name '{name}' is already used by an index.")
        if indexes[0] not in self.indexes:
            return self._no_index(indexes[0])
        created = name not in self.aliases
        self.aliases[name] = indexes[0]
        return Response(201 if created else 200, _alias(name, indexes[0]))

    def _no_alias(self, name: str) -> Response:
        return _err(404, "", f"No alias with the name '{name}' was found in the service '{self.service_name}'.")

    # ------------------------------------------------------------------ documents
    def _index_docs(self, idx: _Index, request: Request) -> Response:
        size = len(request.body)
        if size > MAX_BYTES:
            self.index_batches.append({"index": idx.name, "actions": None, "bytes": size, "status": 413})
            return _err(413, "RequestEntityTooLarge", "The request is too large; the limit is 16 MB.")
        body = request.json()
        actions = body.get("value") if isinstance(body, dict) else None
        if not isinstance(actions, list):
            return _err(400, "InvalidRequestParameter", "The request body needs a 'value' array.")
        if len(actions) > MAX_ACTIONS:
            self.index_batches.append({"index": idx.name, "actions": len(actions), "bytes": size, "status": 400})
            return _err(400, "InvalidRequestParameter", f"A batch may hold at most {MAX_ACTIONS} actions, got {len(actions)}.")
        fields = idx.fields
        key = idx.key
        for a in actions:  # whole-request validation, like the service
            for fname in a:
                if fname != "@search.action" and fname not in fields:
                    return _err(400, "InvalidRequestParameter", f"The property '{fname}' does not exist on type 'search.documentFields'.")
            k = a.get(key)
            if not isinstance(k, str) or not k:
                return _err(400, "InvalidRequestParameter", f"Every action needs the key field '{key}'.")
            for fname, fdef in fields.items():
                if fdef.get("type") == "Collection(Edm.Single)" and a.get(fname) is not None:
                    if len(a[fname]) != fdef.get("dimensions"):
                        return _err(
                            400,
                            "InvalidRequestParameter",
                            f"The vector field '{fname}' expects {fdef.get('dimensions')} dimensions, got {len(a[fname])}.",
                        )
        results = []
        any_failed = False
        for a in actions:
            k = a[key]
            op = a.get("@search.action", "upload")
            doc = {n: v for n, v in a.items() if n != "@search.action"}
            injected = self._doc_failures.get(k)
            if injected:
                status = injected.popleft()
                if not injected:
                    del self._doc_failures[k]
                results.append({"key": k, "status": False, "errorMessage": f"Injected failure {status} for this document.", "statusCode": status})
                any_failed = True
                continue
            if not _KEY_OK.match(k):
                results.append({"key": k, "status": False, "statusCode": 400,
                                "errorMessage": "Invalid document key. Keys can only contain letters, digits, underscore (_), dash (-), or equal sign (=)."})
                any_failed = True
                continue
            if op == "upload":
                idx.docs[k] = doc
                results.append({"key": k, "status": True, "errorMessage": None, "statusCode": 201})
            elif op in ("merge", "mergeOrUpload"):
                if k in idx.docs:
                    idx.docs[k].update(doc)
                    results.append({"key": k, "status": True, "errorMessage": None, "statusCode": 200})
                elif op == "mergeOrUpload":
                    idx.docs[k] = doc
                    results.append({"key": k, "status": True, "errorMessage": None, "statusCode": 201})
                else:
                    results.append({"key": k, "status": False, "errorMessage": "Document not found.", "statusCode": 404})
                    any_failed = True
            elif op == "delete":
                idx.docs.pop(k, None)
                results.append({"key": k, "status": True, "errorMessage": None, "statusCode": 200})
            else:
                return _err(400, "InvalidRequestParameter", f"Unknown action '{op}'.")
        status = 207 if any_failed else 200
        self.index_batches.append({"index": idx.name, "actions": len(actions), "bytes": size, "status": status})
        return Response(status, {"value": results})

    # ------------------------------------------------------------------ search
    def _search(self, idx: _Index, body: dict) -> Response:
        fields = idx.fields
        pred = compile_filter(body.get("filter"), fields)
        candidates = [d for d in idx.docs.values() if pred(d, {})]
        text = body.get("search")
        vqs = body.get("vectorQueries") or []
        rankings: list[list[str]] = []
        scores: dict[str, float] = {}
        key = idx.key
        by_key = {d[key]: d for d in candidates}

        text_ranked: list[tuple[str, float]] | None = None
        match_all = text is None or text.strip() in ("", "*")
        if not match_all:
            search_fields = _csv(body.get("searchFields")) or [
                n for n, f in fields.items() if f.get("searchable", True) and f["type"] in ("Edm.String", "Collection(Edm.String)")
            ]
            for n in search_fields:
                if n not in fields or not fields[n].get("searchable", True):
                    raise ODataError(f"Invalid expression: The field '{n}' is not searchable.")
            text_ranked = _bm25(candidates, key, search_fields, text, any_mode=body.get("searchMode", "any") != "all")
            rankings.append([k for k, _ in text_ranked])
        elif not vqs or text is not None:  # "*" (or nothing and no vector query): every candidate, score 1
            text_ranked = [(d[key], 1.0) for d in candidates]
            rankings.append([k for k, _ in text_ranked])

        vector_rankings = []
        for vq in vqs:
            if vq.get("kind") != "vector":
                raise ODataError(f"Vector query kind '{vq.get('kind')}' is not supported by the test double.")
            fname = vq.get("fields")
            f = fields.get(fname or "")
            if f is None or f.get("type") != "Collection(Edm.Single)":
                raise ODataError(f"The field '{fname}' is not a vector field.")
            q = np.asarray(vq.get("vector") or [], dtype=np.float64)
            if q.shape[0] != f.get("dimensions"):
                raise ODataError(f"The vector query has {q.shape[0]} dimensions, the field '{fname}' has {f.get('dimensions')}.")
            k = int(vq.get("k") or 50)
            qn = q / (np.linalg.norm(q) or 1.0)
            sims = []
            for d in candidates:
                v = d.get(fname)
                if v is None:
                    continue
                dv = np.asarray(v, dtype=np.float64)
                cos = float(dv @ qn / (np.linalg.norm(dv) or 1.0))
                sims.append((d[key], 1.0 / (2.0 - cos)))
            sims.sort(key=lambda t: (-t[1], t[0]))
            vector_rankings.append(sims[:k])
            rankings.append([kk for kk, _ in sims[:k]])

        if len(rankings) == 1:
            ranked = text_ranked if text_ranked is not None else vector_rankings[0]
        else:
            ranked = reciprocal_rank_fusion(rankings, k=60)
        scores = dict(ranked)
        order = [k for k, _ in ranked]

        reranker: dict[str, float] = {}
        if body.get("queryType") == "semantic":
            configs = {c["name"]: c for c in ((idx.definition.get("semantic") or {}).get("configurations") or [])}
            cname = body.get("semanticConfiguration") or (idx.definition.get("semantic") or {}).get("defaultConfiguration")
            if cname not in configs:
                raise ODataError(f"Semantic configuration '{cname}' was not found in the index.")
            query = set(_tokens(body.get("semanticQuery") or text or ""))
            if not query:
                raise ODataError("A semantic query needs search text.")
            pf = configs[cname].get("prioritizedFields") or {}
            sem_fields = [x["fieldName"] for x in pf.get("prioritizedContentFields") or []]
            if pf.get("titleField"):
                sem_fields.append(pf["titleField"]["fieldName"])
            top50 = order[:50]
            for k in top50:
                words = set(_tokens(" ".join(str(by_key[k].get(n) or "") for n in sem_fields)))
                reranker[k] = 4.0 * len(query & words) / len(query)
            order = sorted(top50, key=lambda k: (-reranker[k], top50.index(k)))

        orderby = _csv(body.get("orderby"))
        if orderby:
            for clause in reversed(orderby):
                parts = clause.split()
                fname, desc = parts[0], len(parts) > 1 and parts[1].lower() == "desc"
                if fname == "search.score()":
                    order.sort(key=lambda k: scores.get(k, 0.0), reverse=desc)
                    continue
                fdef = fields.get(fname)
                if fdef is None or not fdef.get("sortable", True) or fdef["type"].startswith("Collection("):
                    raise ODataError(f"Invalid expression: The field '{fname}' is not sortable.")
                order.sort(key=lambda k: (by_key[k].get(fname) is None, by_key[k].get(fname)), reverse=desc)

        total = len(order)
        skip = int(body.get("skip") or 0)
        top = int(body.get("top") if body.get("top") is not None else 50)
        top = min(top, 1000)
        page = order[skip: skip + top]
        select = _csv(body.get("select"))
        retrievable = [n for n, f in fields.items() if f.get("retrievable", True)]
        if select and select != ["*"]:
            for n in select:
                if n not in fields:
                    raise ODataError(f"Invalid expression: Could not find a property named '{n}'.")
            out_fields = [n for n in select if n in retrievable]
        else:
            out_fields = retrievable
        value = []
        for k in page:
            d = by_key[k]
            row: dict[str, Any] = {"@search.score": scores.get(k, 0.0)}
            if reranker:
                row["@search.rerankerScore"] = reranker[k]
            for n in out_fields:
                row[n] = d.get(n)
            value.append(row)
        result: dict[str, Any] = {"value": value}
        if body.get("count"):
            result["@odata.count"] = total
        facets = body.get("facets")
        if facets:
            result["@search.facets"] = self._facets(fields, [by_key[k] for k in order], facets)
        return Response(200, result)

    @staticmethod
    def _facets(fields: dict, docs: list[dict], specs: list[str]) -> dict:
        out = {}
        for spec in specs:
            parts = [p.strip() for p in spec.split(",")]
            fname, count = parts[0], 10
            for p in parts[1:]:
                if p.startswith("count:"):
                    count = int(p[len("count:"):])
            f = fields.get(fname)
            if f is None or not f.get("facetable", True):
                raise ODataError(f"Invalid expression: The field '{fname}' is not facetable.")
            c: Counter = Counter()
            for d in docs:
                v = d.get(fname)
                for x in (v if isinstance(v, list) else [v]):
                    if x is not None:
                        c[x] += 1
            items = sorted(c.items(), key=lambda t: (-t[1], str(t[0])))
            if count > 0:
                items = items[:count]
            out[fname] = [{"value": v, "count": n} for v, n in items]
        return out


def _bm25(docs: list[dict], key: str, fields: list[str], text: str, *, any_mode: bool) -> list[tuple[str, float]]:
    query = list(dict.fromkeys(_tokens(text)))
    if not query:
        return []
    doc_terms = {}
    for d in docs:
        words: list[str] = []
        for n in fields:
            v = d.get(n)
            for x in (v if isinstance(v, list) else [v]):
                if x:
                    words.extend(_tokens(str(x)))
        doc_terms[d[key]] = Counter(words), len(words)
    n_docs = len(docs) or 1
    avg = sum(L for _, L in doc_terms.values()) / n_docs or 1.0
    df = {t: sum(1 for c, _ in doc_terms.values() if t in c) for t in query}
    k1, b = 1.2, 0.75
    out = []
    for k, (c, L) in doc_terms.items():
        matched = [t for t in query if t in c]
        if not matched or (not any_mode and len(matched) != len(query)):
            continue
        s = 0.0
        for t in matched:
            idf = math.log(1 + (n_docs - df[t] + 0.5) / (df[t] + 0.5))
            tf = c[t]
            s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * L / avg))
        out.append((k, s))
    out.sort(key=lambda t: (-t[1], t[0]))
    return out


def _csv(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [p.strip() for p in str(value).split(",") if p.strip()]


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _alias(name: str, index: str) -> dict:
    return {"name": name, "indexes": [index], "@odata.etag": '"' + uuid.uuid5(uuid.NAMESPACE_URL, name + "/" + index).hex + '"'}


def _err(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"error": {"code": code, "message": message}}, headers or {})


@pytest.fixture
def azure_search_server():
    """A running ``FakeAzureSearch`` (api key ``test-search-key``), stopped after the test."""
    with FakeAzureSearch() as server:
        yield server


__all__ = ["FakeAzureSearch", "compile_filter", "ODataError", "azure_search_server"]

