"""`ondata doctor`: check every configured service and say what to do about each problem.

One line per check (``ok``, ``FAIL`` + what to do, or ``skip``); exit code 1 when any check fails.
Checks (each only when configured by ``Settings``):

- Blob Storage: the container is reachable and the credentials may read it.
- Azure OpenAI embeddings: one tiny embedding call; its dimensions.
- Azure OpenAI chat: the chat deployment answers (a 1-token completion).
- Azure AI Search: reachable, authorised, the index exists, its vector dimensions equal the embedder's.
- Local index: exists, opens, counts, its dimensions and model equal the embedder's.

Each check is a small function returning a ``Check`` so it can be tested on its own. Checks wait at
most 5 s per call and retry twice within about a second (``ondata.wiring.probe_retry_policy``): a refused
connection is reported at once instead of after the minute of backoff that ingestion would use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from indexers.errors import OndataError
from ondata.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok" | "fail" | "skip"
    detail: str

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def line(self) -> str:
        label = {"ok": "ok  ", "fail": "FAIL", "skip": "skip"}[self.status]
        return f"{label} {self.name}: {self.detail}"


def _ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def _fail(name: str, detail: str) -> Check:
    return Check(name, "fail", detail)


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


# ---------------------------------------------------------------------- individual checks
def check_blob(container_client: Any, *, container: str) -> Check:
    """Blob Storage: ``container_client.get_container_properties()`` succeeds (reachable + authorised)."""
    name = "blob storage"
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        container_client.get_container_properties()
    except ResourceNotFoundError:
        return _fail(name, f"container {container!r} does not exist; create it or fix AZURE_STORAGE_CONTAINER")
    except ClientAuthenticationError:
        return _fail(name, f"not authorised to read container {container!r}; check the connection string / SAS token "
                           "or grant 'Storage Blob Data Reader' to your identity")
    except (ServiceRequestError, ServiceResponseError) as exc:
        return _fail(name, f"the storage account is unreachable ({type(exc).__name__}); check the account URL and network")
    except HttpResponseError as exc:
        if exc.status_code == 403:
            return _fail(name, f"not authorised to read container {container!r} (HTTP 403); check the credentials or role")
        return _fail(name, f"the storage account answered HTTP {exc.status_code}: {_first_line(exc)}")
    except OndataError as exc:
        return _fail(name, _first_line(exc))
    return _ok(name, f"container {container!r} is reachable and readable")


def check_embedder(embedder: Any, *, label: str = "embeddings") -> tuple[Check, int | None]:
    """One tiny embedding call; returns the check and the dimensions (None on failure)."""
    try:
        vec = embedder.embed_query("ondata doctor")
        dims = int(vec.shape[0])
    except OndataError as exc:
        return _fail(label, f"{_first_line(exc)}"), None
    except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
        return _fail(label, f"the embedding call failed: {_first_line(exc)}"), None
    if getattr(embedder, "dimensions", dims) != dims:
        return _fail(label, f"the model returned {dims} dimensions but is configured for {embedder.dimensions}; "
                            "fix AZURE_OPENAI_EMBEDDING_DIMENSIONS"), dims
    return _ok(label, f"{getattr(embedder, 'model_id', 'embedder')} answered with {dims}-dimensional vectors"), dims


def check_chat(settings: Settings, *, client: Any = None) -> Check:
    """The chat deployment answers a 1-token completion (any 400 still proves it reachable)."""
    import openai

    name = "azure openai chat"
    deployment = settings.azure_openai_chat_deployment
    if not settings.azure_openai_endpoint:
        return _fail(name, "AZURE_OPENAI_ENDPOINT is not set")
    if client is None:
        client = _openai_client(settings)
    try:
        client.chat.completions.create(
            model=deployment, messages=[{"role": "user", "content": "ping"}], max_tokens=1
        )
    except openai.AuthenticationError:
        return _fail(name, "the credentials were rejected (401); check AZURE_OPENAI_API_KEY or your Entra ID role "
                           "('Cognitive Services OpenAI User')")
    except openai.PermissionDeniedError:
        return _fail(name, "access denied (403); grant your identity 'Cognitive Services OpenAI User' on the resource")
    except openai.NotFoundError:
        return _fail(name, f"deployment {deployment!r} was not found; fix AZURE_OPENAI_CHAT_DEPLOYMENT")
    except openai.RateLimitError:
        return _ok(name, f"deployment {deployment!r} is reachable (currently throttled: 429)")
    except openai.BadRequestError as exc:
        return _ok(name, f"deployment {deployment!r} is reachable (it refused the probe: {exc.status_code})")
    except openai.APIConnectionError:
        return _fail(name, f"{settings.azure_openai_endpoint} is unreachable; check AZURE_OPENAI_ENDPOINT and network")
    except openai.APIStatusError as exc:
        return _fail(name, f"deployment {deployment!r} answered HTTP {exc.status_code}")
    return _ok(name, f"deployment {deployment!r} answered")


def _openai_client(settings: Settings) -> Any:
    import openai

    from ondata.wiring import PROBE_TIMEOUT_S

    # openai's own Timeout: the HTTP library under the SDK changes between releases (httpx, then httpx2,
    # whose newer versions reject an httpx.Timeout)
    common = {"max_retries": 0, "timeout": openai.Timeout(3 * PROBE_TIMEOUT_S, connect=PROBE_TIMEOUT_S)}
    if settings.azure_openai_api_key:
        return openai.AzureOpenAI(
            azure_endpoint=settings.azure_openai_endpoint,
            api_key=settings.azure_openai_api_key.get_secret_value(),
            api_version=settings.azure_openai_api_version,
            **common,
        )
    from azure.identity import DefaultAzureCredential, get_bearer_token_provider

    return openai.AzureOpenAI(
        azure_endpoint=settings.azure_openai_endpoint,
        azure_ad_token_provider=get_bearer_token_provider(
            DefaultAzureCredential(), "https://cognitiveservices.azure.com/.default"
        ),
        api_version=settings.azure_openai_api_version,
        **common,
    )


def check_search(index: Any, *, embedder_dimensions: int | None) -> Check:
    """Azure AI Search: reachable, authorised, index exists, its dimensions equal the embedder's."""
    name = "azure ai search"
    try:
        dims = index.schema_dimensions()
        if dims is None:
            return _fail(name, f"index {index.index_name!r} does not exist at {index.endpoint}; "
                               "run `ondata ingest` to create it (or fix AZURE_SEARCH_INDEX)")
        count = index.count()
    except OndataError as exc:
        return _fail(name, _first_line(exc))
    if embedder_dimensions is not None and dims != embedder_dimensions:
        return _fail(name, f"index {index.index_name!r} stores {dims}-dimensional vectors but the embedder produces "
                           f"{embedder_dimensions}; use another AZURE_SEARCH_INDEX or re-ingest into a new index")
    return _ok(name, f"index {index.index_name!r}: {count} chunks, {dims} dimensions")


def check_local_index(index_dir: Path, *, embedder: Any | None) -> Check:
    """Local index: exists, opens, counts; dimensions and model equal the embedder's."""
    name = "local index"
    from indexers.local_index import LocalIndex

    try:
        index = LocalIndex.open_existing(index_dir)
    except OndataError as exc:
        return _fail(name, f"{_first_line(exc)}; run `ondata ingest <folder>` to build it")
    try:
        count = index.count()
        if embedder is not None:
            if index.dimensions != embedder.dimensions:
                return _fail(name, f"the index at {index_dir} stores {index.dimensions}-dimensional vectors but the "
                                   f"embedder produces {embedder.dimensions}; use another --index or rebuild")
            if index.model_id != embedder.model_id:
                return _fail(name, f"the index at {index_dir} was built with {index.model_id!r}, the embedder is "
                                   f"{embedder.model_id!r}; use another --index or rebuild")
    except OndataError as exc:
        return _fail(name, _first_line(exc))
    finally:
        index.close()
    return _ok(name, f"{index_dir}: {count} chunks, {index.dimensions} dimensions, model {index.model_id}")


# ---------------------------------------------------------------------- orchestration
def run_checks(settings: Settings, *, blob_client_factory: Optional[Callable[[], Any]] = None) -> list[Check]:
    from ondata.wiring import PROBE_TIMEOUT_S, build_embedder, probe_retry_policy, secret

    checks: list[Check] = []

    if settings.azure_storage_container and (settings.azure_storage_connection_string or settings.azure_storage_account_url):
        try:
            if blob_client_factory is not None:
                client = blob_client_factory()
            else:
                from ondata.wiring import build_source

                client = build_source(settings).container_client
            checks.append(check_blob(client, container=settings.azure_storage_container))
        except OndataError as exc:
            checks.append(_fail("blob storage", _first_line(exc)))
    else:
        checks.append(Check("blob storage", "skip", "not configured (AZURE_STORAGE_CONTAINER)"))

    embedder = None
    dims: int | None = None
    label = f"{settings.embedder_kind} embeddings" if settings.embedder_kind != "azure_openai" else "azure openai embeddings"
    try:
        embedder = build_embedder(settings, cached=False, probe=True)
    except OndataError as exc:
        checks.append(_fail(label, _first_line(exc)))
    if embedder is not None:
        check, dims = check_embedder(embedder, label=label)
        checks.append(check)

    if settings.chat_kind == "azure_openai":
        checks.append(check_chat(settings))
    else:
        checks.append(Check("azure openai chat", "skip", f"chat model is {settings.chat_kind}"))

    if settings.profile == "azure":
        if not settings.azure_search_endpoint:
            checks.append(_fail("azure ai search", "AZURE_SEARCH_ENDPOINT is not set"))
        else:
            from indexers.azure_search import AzureSearchIndex

            index = AzureSearchIndex(
                endpoint=settings.azure_search_endpoint,
                index_name=settings.azure_search_index,
                api_key=secret(settings.azure_search_key),
                dimensions=dims or 1,
                model_id=getattr(embedder, "model_id", "unknown") if dims else "unknown",
                retry=probe_retry_policy(),
                client_kwargs={"connection_timeout": PROBE_TIMEOUT_S, "read_timeout": 3 * PROBE_TIMEOUT_S},
            )
            try:
                checks.append(check_search(index, embedder_dimensions=dims))
            finally:
                index.close()
    else:
        checks.append(check_local_index(Path(settings.index_dir), embedder=embedder if dims else None))
    return checks


def register(app: typer.Typer) -> None:
    @app.command()
    def doctor(
        index: Optional[Path] = typer.Option(None, "--index", help="Local index folder (default .ondata or ONDATA_INDEX_DIR)."),
    ) -> None:
        """Check every configured service (storage, embeddings, chat, search index) and say what to fix."""
        settings = Settings(**({"index_dir": index} if index is not None else {}))
        checks = run_checks(settings)
        for c in checks:
            typer.echo(c.line())
        failed = [c for c in checks if not c.ok]
        if failed:
            typer.echo(f"{len(failed)} problem(s) found.")
            raise typer.Exit(code=1)
        typer.echo("everything configured is reachable.")
