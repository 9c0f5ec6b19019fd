"""A facade that answers Azure OpenAI "On Your Data" chat-completions requests from our own indexes.

``OnYourDataFacade.chat_completions(body, deployment=...)`` takes the body a client sends to
``POST /openai/deployments/{deployment}/chat/completions`` with ``data_sources`` (one
``azure_search`` source) and answers in the service's response shape: ``choices[0].message.content``
with ``[docN]`` markers and ``choices[0].message.context`` holding ``citations``, ``intent`` (a
JSON-encoded list of the search queries) and, when asked in ``include_contexts``,
``all_retrieved_documents`` (with ``search_queries``, ``data_source_index``,
``original_search_score``, ``rerank_score``, ``filter_reason``).

Mapping of ``query_type`` to our modes: ``simple`` and ``semantic`` -> text, ``vector`` -> vector,
``vector_simple_hybrid`` and ``vector_semantic_hybrid`` -> hybrid (there is no semantic ranker
here; ``rerank_score`` is null). ``filter`` is parsed with ``retrieval.odata`` (field names mapped
through ``fields_mapping``); its document-level access control term on the ACL field
(``group_ids/any(g: search.in(g, 'a, b'))``, the facade's ``acl_field``) narrows the caller's
groups (intersected with them: it can narrow what the caller sees, never widen it). ``endpoint``, ``authentication`` and ``embedding_dependency`` are
validated for shape and otherwise ignored: the facade searches the index it was built with and
embeds with that index's embedder; credentials in them are never logged.

Non-streaming answers are renumbered (``citations[N-1]`` is ``[docN]``, cited sources only);
streamed answers (``stream_chat_completions``) send every source given to the model as
``citations`` in the first delta, as the service does, and the markers as the model wrote them
(minus those pointing at no source). Every citation and retrieved document keeps On Your Data's
keys and adds ``page`` (the cited sentence's page; the chunk's first page in a stream and in
``all_retrieved_documents``); ``url`` ends in ``#page=N`` for a paged document that has a url. Invalid requests raise ``OYDRequestError`` (status 400, body
``{"error": {"code": "400", "message": "Validation error at #/...: ..."}}``).
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from indexers.errors import OndataError
from indexers.filters import Filter
from indexers.records import Groups, check_groups, narrow_groups
from retrieval.answer import answer_question, prepare_grounded_request
from retrieval.answerer import Answerer
from retrieval.citations import StreamingMarkerFilter
from retrieval.errors import ODataFilterError, OYDRequestError
from retrieval.odata import fields_from_mapping, parse_oyd_filter
from retrieval.retriever import Retriever

log = logging.getLogger(__name__)

QUERY_TYPES: dict[str, str] = {
    "simple": "text",
    "semantic": "text",
    "vector": "vector",
    "vector_simple_hybrid": "hybrid",
    "vector_semantic_hybrid": "hybrid",
}
CONTEXTS = ("citations", "intent", "all_retrieved_documents")
DEFAULT_CONTEXTS = ("citations", "intent")
AUTH_TYPES = (
    "api_key", "system_assigned_managed_identity", "user_assigned_managed_identity", "access_token",
    "connection_string", "key_and_key_id", "encoded_api_key", "username_and_password",
)
EMBEDDING_TYPES = ("deployment_name", "endpoint", "integrated", "model_id")
FIELDS_MAPPING_KEYS = ("content_fields", "content_fields_separator", "filepath_field", "title_field", "url_field",
                       "vector_fields", "image_vector_fields")
PARAMETERS = (
    "endpoint", "index_name", "authentication", "query_type", "in_scope", "strictness", "top_n_documents", "filter",
    "role_information", "fields_mapping", "include_contexts", "embedding_dependency", "semantic_configuration",
    "max_search_queries", "allow_partial_result",
)
MAX_TOP_N = 20
FORWARDED_OPTIONS = ("temperature", "top_p", "max_tokens", "stop", "presence_penalty", "frequency_penalty", "seed", "user")
REJECTED_WITH_DATA_SOURCES = ("logprobs", "top_logprobs", "tools", "tool_choice", "functions", "function_call", "response_format")

RetrieverResolver = Callable[[str], Retriever]


def _bad(path: str, message: str) -> OYDRequestError:
    return OYDRequestError(f"Validation error at #/{path}: {message}", status=400, code="400")


@dataclass
class OYDRequest:
    """A validated On-Your-Data request, in our terms."""

    question: str
    history: list[dict[str, str]]
    index_name: str
    mode: str
    in_scope: bool = True
    strictness: int = 3
    top_n_documents: int = 5
    filter: Filter | None = None
    filter_groups: tuple[str, ...] | None = None  # the groups the filter's ACL term names (None: no such term)
    role_information: str | None = None
    include_contexts: tuple[str, ...] = DEFAULT_CONTEXTS
    stream: bool = False
    options: dict[str, Any] = field(default_factory=dict)


def _text_of(content: Any, path: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if not isinstance(part, Mapping) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise _bad(f"{path}/{i}", "only text content parts are supported")
            parts.append(part["text"])
        return "\n".join(parts)
    raise _bad(path, "content must be a string or a list of text parts")


def _check_type(params: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str, path: str) -> Any:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and kind is not bool and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise _bad(f"{path}/{key}", f"{key} must be {what}")
    if not isinstance(value, kind):
        raise _bad(f"{path}/{key}", f"{key} must be {what}")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: The chat options forwarded to the model, each with its check and the sentence that explains it.
OPTION_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "temperature": (lambda v: _number(v) and 0 <= v <= 2, "a number from 0 to 2"),
    "top_p": (lambda v: _number(v) and 0 <= v <= 1, "a number from 0 to 1"),
    "max_tokens": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1_000_000,
                   "an integer of at least 1"),
    "presence_penalty": (lambda v: _number(v) and -2 <= v <= 2, "a number from -2 to 2"),
    "frequency_penalty": (lambda v: _number(v) and -2 <= v <= 2, "a number from -2 to 2"),
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63, "a 64-bit integer"),
    "user": (lambda v: isinstance(v, str) and len(v) <= 256, "a string of at most 256 characters"),
    "stop": (lambda v: (isinstance(v, str) and len(v) <= 256) or (
        isinstance(v, list) and len(v) <= 4 and all(isinstance(x, str) and len(x) <= 256 for x in v)),
             "a string or an array of at most 4 strings"),
}


def _check_options(options: Mapping[str, Any]) -> None:
    for key, value in options.items():
        check, what = OPTION_CHECKS[key]
        if not check(value):
            raise _bad(key, f"{key} must be {what}")


def parse_request(body: Any, *, acl_field: str = "group_ids") -> OYDRequest:
    """Validate an On-Your-Data chat-completions body; raises ``OYDRequestError`` naming the bad parameter."""
    if not isinstance(body, Mapping):
        raise _bad("", "the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "messages must be a non-empty array")
    turns: list[dict[str, str]] = []
    system_texts: list[str] = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or m.get("role") not in ("system", "user", "assistant", "developer"):
            raise _bad(f"messages/{i}/role", "role must be one of system, user, assistant")
        text = _text_of(m.get("content"), f"messages/{i}/content") if m.get("content") is not None else ""
        if m["role"] in ("system", "developer"):
            system_texts.append(text)
        else:
            turns.append({"role": m["role"], "content": text})
    if not turns or turns[-1]["role"] != "user" or not turns[-1]["content"].strip():
        raise _bad("messages", "the last message must be a non-empty user message")
    question = turns[-1]["content"]
    history = turns[:-1]

    data_sources = body.get("data_sources")
    if data_sources is None:
        raise _bad("data_sources", "data_sources is required by this endpoint (it answers only from indexed data)")
    if not isinstance(data_sources, list) or len(data_sources) != 1:
        raise _bad("data_sources", "data_sources must be an array of exactly one data source")
    for key in REJECTED_WITH_DATA_SOURCES:
        if body.get(key) not in (None, False):
            raise _bad(key, f"{key} is not supported together with data_sources")
    n = body.get("n")
    if n not in (None, 1):
        raise _bad("n", "n must be 1 with data_sources")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream", "stream must be a boolean")

    ds = data_sources[0]
    if not isinstance(ds, Mapping):
        raise _bad("data_sources/0", "a data source must be an object")
    if ds.get("type") != "azure_search":
        raise _bad("data_sources/0/type", f"unsupported data source type {ds.get('type')!r}; use azure_search")
    unknown_top = set(ds) - {"type", "parameters"}
    if unknown_top:
        raise _bad(f"data_sources/0/{sorted(unknown_top)[0]}", "unknown property")
    params = ds.get("parameters")
    if not isinstance(params, Mapping):
        raise _bad("data_sources/0/parameters", "parameters must be an object")
    path = "data_sources/0/parameters"
    for key in params:
        if key not in PARAMETERS:
            raise _bad(f"{path}/{key}", f"unknown parameter {key!r}")

    index_name = params.get("index_name")
    if not isinstance(index_name, str) or not index_name.strip():
        raise _bad(f"{path}/index_name", "index_name is required and must be a non-empty string")
    _check_type(params, "endpoint", str, "a string", path)
    auth = _check_type(params, "authentication", Mapping, "an object", path)
    if auth is not None and auth.get("type") not in AUTH_TYPES:
        raise _bad(f"{path}/authentication/type", f"authentication type must be one of {', '.join(AUTH_TYPES)}")
    emb = _check_type(params, "embedding_dependency", Mapping, "an object", path)
    if emb is not None and emb.get("type") not in EMBEDDING_TYPES:
        raise _bad(f"{path}/embedding_dependency/type", f"embedding_dependency type must be one of {', '.join(EMBEDDING_TYPES)}")
    query_type = params.get("query_type", "simple")
    if not isinstance(query_type, str) or query_type not in QUERY_TYPES:
        raise _bad(f"{path}/query_type", f"query_type must be one of {', '.join(QUERY_TYPES)}")
    in_scope = params.get("in_scope", True)
    if not isinstance(in_scope, bool):
        raise _bad(f"{path}/in_scope", "in_scope must be a boolean")
    strictness = params.get("strictness", 3)
    if isinstance(strictness, bool) or not isinstance(strictness, int) or not 1 <= strictness <= 5:
        raise _bad(f"{path}/strictness", "strictness must be an integer from 1 to 5")
    top_n = params.get("top_n_documents", 5)
    if isinstance(top_n, bool) or not isinstance(top_n, int) or not 1 <= top_n <= MAX_TOP_N:
        raise _bad(f"{path}/top_n_documents", f"top_n_documents must be an integer from 1 to {MAX_TOP_N}")
    role = _check_type(params, "role_information", str, "a string", path)
    _check_type(params, "semantic_configuration", str, "a string", path)
    msq = params.get("max_search_queries")
    if msq is not None and (isinstance(msq, bool) or not isinstance(msq, int) or msq < 1):
        raise _bad(f"{path}/max_search_queries", "max_search_queries must be a positive integer")
    _check_type(params, "allow_partial_result", bool, "a boolean", path)
    fm = _check_type(params, "fields_mapping", Mapping, "an object", path) or {}
    for key in fm:
        if key not in FIELDS_MAPPING_KEYS:
            raise _bad(f"{path}/fields_mapping/{key}", f"unknown fields_mapping property {key!r}")
    contexts = params.get("include_contexts", list(DEFAULT_CONTEXTS))
    if not isinstance(contexts, list) or any(c not in CONTEXTS for c in contexts):
        raise _bad(f"{path}/include_contexts", f"include_contexts must be an array of {', '.join(CONTEXTS)}")
    flt, filter_groups = None, None
    raw_filter = _check_type(params, "filter", str, "a string", path)
    if raw_filter:
        try:
            flt, filter_groups = parse_oyd_filter(raw_filter, field_map=fields_from_mapping(fm), acl_field=acl_field)
        except ODataFilterError as exc:
            raise _bad(f"{path}/filter", exc.message) from exc
    if role is None and system_texts:
        role = "\n".join(t for t in system_texts if t.strip()) or None
    options = {k: body[k] for k in FORWARDED_OPTIONS if body.get(k) is not None}
    _check_options(options)
    return OYDRequest(
        question=question, history=history, index_name=index_name, mode=QUERY_TYPES[query_type], in_scope=in_scope,
        strictness=strictness, top_n_documents=top_n, filter=flt, filter_groups=filter_groups, role_information=role,
        include_contexts=tuple(contexts), stream=stream, options=options,
    )


class OnYourDataFacade:
    """Answers On-Your-Data chat-completions bodies with a retriever per ``index_name`` and an ``Answerer``.

    ``retrievers`` is a mapping of index names or a callable ``index_name -> Retriever`` (raising
    ``KeyError`` for an unknown name). ``groups`` passed to ``chat_completions`` are the caller's ACL
    groups: ``()`` (the default) sees public chunks only, ``ALL_GROUPS`` everything.
    """

    def __init__(self, retrievers: Mapping[str, Retriever] | RetrieverResolver, answerer: Answerer, *,
                 max_context_tokens: int = 3000, max_question_tokens: int | None = None,
                 acl_field: str = "group_ids") -> None:
        self._resolve = retrievers if callable(retrievers) else (lambda name, _m=dict(retrievers): _m[name])
        self.answerer = answerer
        self.max_context_tokens = max_context_tokens
        self.max_question_tokens = max_question_tokens
        self.acl_field = acl_field

    def retriever(self, name: str) -> Retriever:
        """The retriever serving index ``name`` (looked up by name, never opened as a path).

        An index that is not served is a 404 ``OYDRequestError``, as the service answers for a
        missing resource."""
        try:
            return self._resolve(name)
        except KeyError:
            shown = name if len(name) <= 64 else name[:61] + "..."
            raise OYDRequestError(f"The index {shown!r} is not served here.", status=404, code="404") from None

    def parse(self, body: Any) -> OYDRequest:
        """``parse_request(body)``, and the question within ``max_question_tokens`` (else a 400)."""
        try:
            req = parse_request(body, acl_field=self.acl_field)
        except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:  # a shape no check foresaw
            log.warning("a request body failed validation unexpectedly: %s: %s", type(exc).__name__, exc)
            raise _bad("", "the request body does not have the expected shape") from None
        limit = self.max_question_tokens
        if limit is not None and len(req.question.encode("utf-8")) > limit:
            from indexers.tokens import count_tokens

            if count_tokens(req.question) > limit:
                raise _bad("messages", f"the question is longer than {limit} tokens")
        return req

    def _parse(self, body: Mapping[str, Any], groups: Groups) -> tuple[OYDRequest, Groups]:
        """The validated request and the groups its search runs with (the caller's, narrowed by the filter)."""
        groups = check_groups(groups)  # first: a malformed caller is a programming error, not a bad request
        req = self.parse(body)
        return req, narrow_groups(groups, req.filter_groups)

    def _grounded(self, req: OYDRequest, groups: Groups):  # groups: already narrowed by ``_parse``
        retriever = self.retriever(req.index_name)
        timings: dict[str, float] = {}
        grounded = prepare_grounded_request(
            req.question, retriever=retriever, rewriter=self.answerer.chat_model, history=req.history, mode=req.mode,
            top=max(req.top_n_documents * 2, 10), filter=req.filter, groups=groups, strictness=req.strictness,
            in_scope=req.in_scope, role_information=req.role_information, top_n_documents=req.top_n_documents,
            max_context_tokens=self.max_context_tokens, timings=timings,
        )
        return retriever, grounded

    def _context(self, req: OYDRequest, *, citations: list[dict], search_query: str, retrieved: list) -> dict[str, Any]:
        ctx: dict[str, Any] = {}
        if "citations" in req.include_contexts:
            ctx["citations"] = citations
        if "intent" in req.include_contexts:
            ctx["intent"] = json.dumps([search_query])
        if "all_retrieved_documents" in req.include_contexts:
            ctx["all_retrieved_documents"] = [d.to_oyd(data_source_index=0) for d in retrieved]
        return ctx

    def chat_completions(self, body: Mapping[str, Any], *, deployment: str, groups: Groups = ()) -> dict[str, Any]:
        """The On-Your-Data response for a non-streaming ``body``."""
        req, groups = self._parse(body, groups)
        retriever = self.retriever(req.index_name)
        answer = answer_question(
            req.question, retriever=retriever, answerer=self.answerer, history=req.history, mode=req.mode,  # type: ignore[arg-type]
            top=max(req.top_n_documents * 2, 10), filter=req.filter, groups=groups, strictness=req.strictness,
            in_scope=req.in_scope, role_information=req.role_information, top_n_documents=req.top_n_documents,
            max_context_tokens=self.max_context_tokens, **req.options,
        )
        context = self._context(
            req, citations=[c.to_oyd() for c in answer.citations], search_query=answer.search_query,
            retrieved=list(answer.retrieved),
        )
        usage = dict(answer.usage) or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": deployment,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": answer.finish_reason,
                    "message": {"role": "assistant", "content": answer.content, "end_turn": True, "context": context},
                }
            ],
            "usage": usage,
        }

    def stream_chat_completions(self, body: Mapping[str, Any], *, deployment: str,
                                groups: Groups = ()) -> Iterator[dict[str, Any]]:
        """Validate and search now (errors raise here), then return an iterator of response chunks.

        The first chunk's delta carries the role and the context; then content deltas; the last chunk
        has ``finish_reason`` and ``end_turn``. A failure of the model mid-stream yields one
        ``{"error": {...}}`` object and ends the stream.
        """
        req, groups = self._parse(body, groups)
        _, grounded = self._grounded(req, groups)
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": deployment}
        context = self._context(
            req, citations=[c.to_oyd() for c in grounded.citations()], search_query=grounded.search_query,
            retrieved=grounded.retrieved(),
        )
        answerer = self.answerer
        options = req.options

        def chunks() -> Iterator[dict[str, Any]]:
            yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "context": context}, "finish_reason": None}]}
            markers = StreamingMarkerFilter(len(grounded.sources))
            try:
                for delta in answerer.stream(grounded, **options):
                    text = markers.feed(delta)
                    if text:
                        yield {**base, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
                rest = markers.flush()
                if rest:
                    yield {**base, "choices": [{"index": 0, "delta": {"content": rest}, "finish_reason": None}]}
            except OndataError as exc:
                log.warning("the chat model failed mid-stream: %s", exc)
                code = getattr(exc, "code", None) or "500"
                yield {"error": {"code": code, "message": exc.message}}
                return
            yield {**base, "choices": [{"index": 0, "delta": {"end_turn": True}, "finish_reason": "stop"}]}

        return chunks()
