"""`ondata search`, `ondata ask` and `ondata serve`: query the index, answer with citations, serve the
On-Your-Data compatible HTTP API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from ondata.commands.callers import (all_groups_option, caller_groups, group_option, index_option, mode_option,
                                     strictness_option, top_n_option)
from ondata.settings import Settings


def _settings(index: Optional[Path]) -> Settings:
    return Settings(index_dir=index) if index is not None else Settings()


def build_retriever(settings: Settings):
    """The retriever over the configured index; a one-line error when the local index does not exist."""
    from indexers.local_generations import has_index
    from ondata.wiring import build_embedder, build_index
    from retrieval.errors import MissingIndexError
    from retrieval.retriever import Retriever

    if settings.profile == "local" and not has_index(Path(settings.index_dir)):
        raise MissingIndexError(f"no index at {settings.index_dir}; run `ondata ingest PATH` first")
    embedder = build_embedder(settings)
    index = build_index(settings, embedder)
    index.ensure()
    return Retriever(index, embedder, public_when_no_groups=settings.public_when_no_groups)


def warm_up(retriever) -> None:
    """Load what the first question would otherwise wait for: the embedding model, the index, the tokenizer.

    A failure is only a warning here; the same failure then answers the first request.
    """
    from indexers.errors import OndataError
    from indexers.tokens import count_tokens

    try:
        retriever.search("warm up", top=1, mode="hybrid", groups=())
        count_tokens("warm up")
    except OndataError as exc:
        typer.secho(f"warning: warming up failed: {exc}", fg=typer.colors.YELLOW, err=True)


FILTER_HELP = ("OData filter, the subset On Your Data accepts (eq, ne, and, or, not, search.in), e.g. "
               "\"filepath eq 'employee_handbook.pdf'\" or \"metadata/dept eq 'hr'\".")


def parse_filter(expr: Optional[str]):
    """The ``--filter`` expression as an ``indexers.filters.Filter`` (None when not given), by the HTTP API's parser."""
    if expr is None:
        return None
    from retrieval.odata import parse_odata

    return parse_odata(expr)


def hits_json(hits) -> list[dict]:
    """Search hits as plain JSON values."""
    return [{"rank": i, "score": h.score, "text_score": h.text_score, "vector_score": h.vector_score,
             "chunk_id": h.chunk.id, "source_id": h.chunk.source_id, "title": h.chunk.title, "page": h.chunk.page_start,
             "page_end": h.chunk.page_end, "section": h.chunk.section, "content": h.chunk.content}
            for i, h in enumerate(hits, 1)]


def answer_json(answer) -> dict:
    """An ``Answer`` as plain JSON values (On Your Data citation fields plus pages, ranks and timings)."""
    return {
        "answer": answer.content,
        "search_query": answer.search_query,
        "extractive": answer.extractive,
        "abstained": answer.abstained,
        "citations": [{**c.to_oyd(), "pages": c.pages, "source_id": c.source_id} for c in answer.citations],
        "claims": [{"text": c.text, "citations": list(c.sources), "pages": list(c.pages)} for c in answer.claims],
        "retrieved": [{**d.to_oyd(), "filter_reason": d.filter_reason, "rank": d.rank} for d in answer.retrieved],
        "unknown_markers_removed": answer.unknown_markers_removed,
        "latency_ms": dict(answer.latency_ms),
    }


def print_citations(answer, console: Console) -> None:
    """The citations table printed after an answer (nothing when it cites nothing)."""
    if not answer.citations:
        return
    table = Table(title="Citations")
    for col in ("n", "title", "page", "chunk pages", "chunk", "snippet"):
        table.add_column(col, overflow="fold")
    for i, c in enumerate(answer.citations, 1):
        table.add_row(str(i), c.title or c.source_id, "" if c.page is None else str(c.page), c.pages,
                      c.chunk_id[:8], _snippet(c.content))
    console.print(table)


def _snippet(text: str, n: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def register(app: typer.Typer) -> None:
    @app.command()
    def search(
        query: str = typer.Argument(..., help="What to search for."),
        index: Optional[Path] = index_option(),
        mode: str = mode_option(),
        top: int = typer.Option(5, "--top", min=1, help="How many hits."),
        group: Optional[List[str]] = group_option(),
        all_groups: bool = all_groups_option(),
        filter_: Optional[str] = typer.Option(None, "--filter", help=FILTER_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the hits as JSON."),
    ) -> None:
        """Search the index and show the best chunks."""
        from retrieval.records import page_label

        where = parse_filter(filter_)
        groups = caller_groups(group, all_groups)
        retriever = build_retriever(_settings(index))
        hits = retriever.search(query, top=top, mode=mode, filter=where, groups=groups)  # type: ignore[arg-type]
        if as_json:
            typer.echo(json.dumps(hits_json(hits), ensure_ascii=False, indent=2))
            return
        table = Table(title=f"{len(hits)} hits ({mode})", show_lines=False)
        for col in ("#", "score", "title", "pages", "section", "snippet"):
            table.add_column(col, overflow="fold")
        for i, h in enumerate(hits, 1):
            c = h.chunk
            table.add_row(str(i), f"{h.score:.4f}", c.title or c.source_id, page_label(c.page_start, c.page_end),
                          _snippet(c.section, 30), _snippet(c.content))
        Console().print(table)

    @app.command()
    def ask(
        question: str = typer.Argument(..., help="The question."),
        index: Optional[Path] = index_option(),
        mode: str = mode_option(),
        strictness: int = strictness_option(),
        top_n: int = top_n_option(),
        group: Optional[List[str]] = group_option(),
        all_groups: bool = all_groups_option(),
        filter_: Optional[str] = typer.Option(None, "--filter", help=FILTER_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the answer as JSON."),
    ) -> None:
        """Answer a question from the index, with citations."""
        from ondata.wiring import build_answerer
        from retrieval.answer import answer_question

        where = parse_filter(filter_)
        groups = caller_groups(group, all_groups)
        settings = _settings(index)
        retriever = build_retriever(settings)
        answerer = build_answerer(settings, embedder=retriever.embedder)
        answer = answer_question(question, retriever=retriever, answerer=answerer, mode=mode, strictness=strictness,  # type: ignore[arg-type]
                                 top_n_documents=top_n, filter=where, groups=groups)
        if as_json:
            typer.echo(json.dumps(answer_json(answer), ensure_ascii=False, indent=2))
            return
        console = Console()
        console.print(answer.content, markup=False, highlight=False)
        print_citations(answer, console)

    @app.command()
    def serve(
        index: Optional[List[str]] = typer.Option(
            None, "--index",
            help="An index to serve: NAME=PATH, or PATH (served under its folder name); repeatable. For the azure "
                 "profile PATH is an Azure AI Search index name. Default: .ondata or ONDATA_INDEX_DIR."),
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8765, "--port"),
        keys: Optional[Path] = typer.Option(None, "--keys", help="A keys file of `ondata keys add`: each key's caller gets its groups."),
        jwks: Optional[str] = typer.Option(None, "--jwks", help="Accept bearer tokens signed by a key of this JWKS (a file or an https URL)."),
        issuer: Optional[str] = typer.Option(None, "--issuer", help="The tokens' required issuer (iss), with --jwks."),
        audience: Optional[List[str]] = typer.Option(None, "--audience", help="An accepted audience (aud) of the tokens, with --jwks (repeatable)."),
        api_key_env: str = typer.Option("ONDATA_SERVE_API_KEY", "--api-key-env", help="Environment variable holding a shared API key (its callers see public chunks only unless --trusted-key)."),
        trusted_key: bool = typer.Option(False, "--trusted-key", help="Callers with the shared API key see every chunk, whatever its groups."),
        access_log: Optional[Path] = typer.Option(None, "--access-log", help="Write the audit log (one line per request) to this file instead of stderr."),
        documents: Optional[Path] = typer.Option(
            None, "--documents", file_okay=False, exists=True,
            help="Folder the index's local documents were ingested from: the chat page opens cited documents from it "
                 "(never a file outside it). Default: only documents with a URL get a link."),
        page: bool = typer.Option(True, "--page/--no-page", help="Serve the chat web page at / next to the API."),
    ) -> None:
        """Serve the On-Your-Data compatible chat-completions API (POST /openai/deployments/{d}/chat/completions)
        and the chat web page at /.

        Callers authenticate with a key of --keys, a token of --jwks, or the shared key of --api-key-env;
        with none of them configured the server binds only a loopback address and serves public chunks only."""
        import uvicorn

        from indexers.records import ALL_GROUPS
        from ondata.redaction import register_secret
        from ondata.settings import environment_value
        from ondata.wiring import build_answerer
        from retrieval.documents import DocumentFiles
        from retrieval.oyd import OnYourDataFacade
        from retrieval.principals import Authenticator, JWTVerifier, KeysFile
        from retrieval.server import ServerLimits, create_app, json_error_http_protocol

        shared = environment_value(api_key_env)
        register_secret(shared)
        if jwks is not None and (not issuer or not audience):
            raise typer.BadParameter("--jwks needs --issuer and --audience")
        if (issuer or audience) and jwks is None:
            raise typer.BadParameter("--issuer and --audience go with --jwks")
        if trusted_key and shared is None:
            raise typer.BadParameter(f"--trusted-key needs a shared key in ${api_key_env}")
        auth = Authenticator(
            keys=KeysFile.load(keys) if keys is not None else None,
            shared_key=shared, shared_key_groups=ALL_GROUPS if trusted_key else (),
            tokens=JWTVerifier(jwks, issuer=issuer or "", audience=list(audience or ())) if jwks is not None else None,
        )
        if not auth.configured and not is_loopback(host):
            typer.secho(f"error: refusing to serve on {host} without a key or token check "
                        f"(give --keys, --jwks or ${api_key_env}; or serve on 127.0.0.1)", fg=typer.colors.RED, err=True)
            raise typer.Exit(2)
        base = Settings()
        served = named_indexes(index or [], base)
        retrievers = {name: build_retriever(settings) for name, settings in served.items()}
        answerer = build_answerer(base, embedder=next(iter(retrievers.values())).embedder)
        facade = OnYourDataFacade(retrievers, answerer, max_question_tokens=base.serve_max_question_tokens,
                                  acl_field=base.acl_field)
        limits = ServerLimits(max_body_bytes=base.serve_max_body_bytes, max_concurrency=base.serve_max_concurrency,
                              request_timeout_seconds=base.serve_request_timeout_seconds,
                              max_question_tokens=base.serve_max_question_tokens)
        configure_access_log(access_log)
        app_ = create_app(facade, authenticator=auth, limits=limits, page=page, index_names=list(served),
                          documents=DocumentFiles.under(documents))
        for retriever in retrievers.values():
            warm_up(retriever)
        shown = f"[{host}]" if ":" in host else host
        where = {name: (s.azure_search_index if s.profile == "azure" else str(s.index_dir)) for name, s in served.items()}
        echo = lambda line: typer.echo(line, err=True)  # noqa: E731
        echo(f"serving http://{shown}:{port}/  (API: POST /openai/deployments/{{d}}/chat/completions)")
        if page:
            echo(f"chat page: http://{shown}:{port}/")
        echo("indexes: " + ", ".join(f"{name} ({path})" for name, path in where.items()))
        echo(f"auth: {auth.describe()}")
        echo(f"limits: body {limits.max_body_bytes} bytes, {limits.max_concurrency} requests at once, "
             f"{limits.request_timeout_seconds:g} s per request, questions of {limits.max_question_tokens} tokens")
        echo(f"audit log: {access_log or 'stderr'}")
        uvicorn.run(app_, host=host, port=port, log_level="warning", access_log=False, server_header=False,
                    http=json_error_http_protocol())


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``), the only hosts served without a key check."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def named_indexes(specs: List[str], base: Settings) -> dict[str, Settings]:
    """``--index NAME=PATH`` / ``--index PATH`` options as settings per served name (default: the configured index).

    A plain PATH is served under its folder name without leading dots (``.ondata`` -> ``ondata``)."""
    import re

    from indexers.errors import ConfigError

    if not specs:
        specs = [base.azure_search_index if base.profile == "azure" else str(base.index_dir)]
    out: dict[str, Settings] = {}
    for spec in specs:
        name, sep, target = spec.partition("=")
        if not sep:
            target = spec
            name = target if base.profile == "azure" else (Path(target).resolve().name.lstrip(".") or "ondata")
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", name) or name in (".", "..") or not target:
            raise ConfigError(f"invalid --index {spec!r}: give NAME=PATH (a name of letters, digits, '.', '_', '-')")
        if name in out:
            raise ConfigError(f"--index names {name!r} twice; give each index its own NAME=PATH")
        update = {"azure_search_index": target} if base.profile == "azure" else {"index_dir": Path(target)}
        out[name] = base.model_copy(update=update)
    return out


def configure_access_log(path: Optional[Path]) -> None:
    """The audit log of ``ondata serve`` (logger ``ondata.access``): one line per request, to stderr or ``path``."""
    import logging

    from ondata.redaction import RedactingFilter

    logger = logging.getLogger("ondata.access")
    handler: logging.Handler = logging.FileHandler(path, encoding="utf-8") if path else logging.StreamHandler()
    formatter = logging.Formatter("%(asctime)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%SZ")
    import time as _time

    formatter.converter = _time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
