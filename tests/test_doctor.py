"""`ondata doctor` against the in-repo Azure test doubles, a local index, and a stubbed blob client."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from indexers.azure_search import AzureSearchIndex
from ondata.commands.doctor import check_blob, run_checks
from ondata.settings import Settings
from tests.servers.azure_openai import FakeAzureOpenAI
from tests.servers.azure_search import FakeAzureSearch

SEARCH_KEY = "doctor-search-key"
AOAI_KEY = "doctor-aoai-key"


@pytest.fixture
def servers():
    with FakeAzureSearch(api_key=SEARCH_KEY) as search, FakeAzureOpenAI(
        api_key=AOAI_KEY, embedding_deployments={"emb": 64}, chat_deployments=("chat",)
    ) as aoai:
        yield search, aoai


@pytest.fixture
def azure_env(servers, monkeypatch, tmp_path):
    search, aoai = servers
    monkeypatch.chdir(tmp_path)  # no stray .env
    for k, v in {
        "ONDATA_PROFILE": "azure",
        "AZURE_SEARCH_ENDPOINT": search.url,
        "AZURE_SEARCH_KEY": SEARCH_KEY,
        "AZURE_SEARCH_INDEX": "docs",
        "AZURE_OPENAI_ENDPOINT": aoai.url,
        "AZURE_OPENAI_API_KEY": AOAI_KEY,
        "AZURE_OPENAI_EMBEDDING_DEPLOYMENT": "emb",
        "AZURE_OPENAI_EMBEDDING_DIMENSIONS": "32",
        "AZURE_OPENAI_CHAT_DEPLOYMENT": "chat",
        "ONDATA_INDEX_DIR": str(tmp_path / "ix"),
    }.items():
        monkeypatch.setenv(k, v)
    return search, aoai


def create_search_index(search, *, dims: int) -> None:
    AzureSearchIndex(endpoint=search.url, index_name="docs", api_key=SEARCH_KEY, dimensions=dims,
                     model_id=f"azure-openai:emb:{dims}").ensure()


def invoke(*args: str):
    from ondata.cli import app

    return CliRunner().invoke(app, ["doctor", *args])


def test_all_azure_services_ok(azure_env):
    search, _ = azure_env
    create_search_index(search, dims=32)
    result = invoke()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(l.startswith("ok   azure openai embeddings") and "32-dimensional" in l for l in lines)
    assert any(l.startswith("ok   azure openai chat") for l in lines)
    assert any(l.startswith("ok   azure ai search") and "'docs'" in l for l in lines)
    assert any(l.startswith("skip blob storage") for l in lines)
    assert AOAI_KEY not in result.output and SEARCH_KEY not in result.output


def test_missing_index_and_dimension_mismatch(azure_env):
    search, _ = azure_env
    result = invoke()
    assert result.exit_code == 1
    assert "FAIL azure ai search: index 'docs' does not exist" in result.output
    assert "ondata ingest" in result.output
    create_search_index(search, dims=16)
    result = invoke()
    assert result.exit_code == 1
    assert "stores 16-dimensional vectors but the embedder produces 32" in result.output


def test_wrong_keys_and_missing_chat_deployment(azure_env, monkeypatch):
    search, _ = azure_env
    create_search_index(search, dims=32)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "wrong")
    monkeypatch.setenv("AZURE_SEARCH_KEY", "wrong-too")
    result = invoke()
    assert result.exit_code == 1
    assert "FAIL azure openai embeddings" in result.output and "rejected the credentials" in result.output
    assert "FAIL azure openai chat: the credentials were rejected" in result.output
    assert "FAIL azure ai search" in result.output and "rejected the credentials" in result.output
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AOAI_KEY)
    monkeypatch.setenv("AZURE_SEARCH_KEY", SEARCH_KEY)
    monkeypatch.setenv("AZURE_OPENAI_CHAT_DEPLOYMENT", "nope")
    result = invoke()
    assert result.exit_code == 1
    assert "deployment 'nope' was not found" in result.output


def test_throttled_services_are_retried_not_reported(azure_env):
    search, aoai = azure_env
    create_search_index(search, dims=32)
    aoai.fail_next(1, retry_after=0.05, kind="embeddings")
    result = invoke()
    assert result.exit_code == 0, result.output


def test_local_profile(monkeypatch, tmp_path):
    from indexers.embedders.hashing import HashingEmbedder
    from indexers.local_index import LocalIndex

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ONDATA_PROFILE", "local")
    monkeypatch.setenv("ONDATA_EMBEDDER", "hashing")
    monkeypatch.setenv("ONDATA_HASHING_DIMENSIONS", "64")
    result = invoke("--index", str(tmp_path / "missing"))
    assert result.exit_code == 1 and "FAIL local index" in result.output and "ondata ingest" in result.output

    emb = HashingEmbedder(dimensions=64)
    ix = LocalIndex(tmp_path / "ix", dimensions=64, model_id=emb.model_id)
    ix.ensure()
    ix.close()
    result = invoke("--index", str(tmp_path / "ix"))
    assert result.exit_code == 0, result.output
    assert "ok   local index" in result.output and "skip azure openai chat" in result.output

    monkeypatch.setenv("ONDATA_HASHING_DIMENSIONS", "32")
    result = invoke("--index", str(tmp_path / "ix"))
    assert result.exit_code == 1 and "64-dimensional vectors but the embedder produces 32" in result.output


# ---------------------------------------------------------------------- blob check (stubbed client)
class StubContainer:
    def __init__(self, exc: Exception | None = None):
        self.exc = exc

    def get_container_properties(self):
        if self.exc:
            raise self.exc
        return {"name": "docs"}


def test_blob_check_outcomes():
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
    )

    assert check_blob(StubContainer(), container="docs").status == "ok"
    c = check_blob(StubContainer(ResourceNotFoundError("gone")), container="docs")
    assert c.status == "fail" and "does not exist" in c.detail
    c = check_blob(StubContainer(ClientAuthenticationError("no")), container="docs")
    assert c.status == "fail" and "not authorised" in c.detail
    c = check_blob(StubContainer(ServiceRequestError("down")), container="docs")
    assert c.status == "fail" and "unreachable" in c.detail
    err = HttpResponseError("forbidden")
    err.status_code = 403
    c = check_blob(StubContainer(err), container="docs")
    assert c.status == "fail" and "403" in c.detail


def test_blob_check_is_wired_from_settings(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        profile="local", embedder="hashing", index_dir=tmp_path / "ix",
        azure_storage_container="docs", azure_storage_connection_string="UseDevelopmentStorage=true",
    )
    checks = run_checks(settings, blob_client_factory=lambda: StubContainer())
    assert checks[0].name == "blob storage" and checks[0].status == "ok"


def test_refused_connections_are_reported_without_a_minute_of_retries(monkeypatch, tmp_path, caplog):
    import re
    import socket

    with socket.socket() as s:  # a port nobody listens on: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.chdir(tmp_path)
    for k, v in {"ONDATA_PROFILE": "azure", "AZURE_SEARCH_ENDPOINT": f"http://127.0.0.1:{port}", "AZURE_SEARCH_KEY": "k",
                 "AZURE_OPENAI_ENDPOINT": f"http://127.0.0.1:{port}", "AZURE_OPENAI_API_KEY": "k"}.items():
        monkeypatch.setenv(k, v)
    with caplog.at_level("WARNING"):
        result = invoke()
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(l.startswith("FAIL azure openai embeddings:") for l in lines)
    assert any(l.startswith("FAIL azure openai chat:") and "unreachable" in l for l in lines)
    assert any(l.startswith("FAIL azure ai search:") and "unreachable" in l for l in lines)
    waits = [float(m) for m in re.findall(r"retrying in ([\d.]+) ?s", caplog.text)]
    assert sum(waits) < 5.0, waits  # ingestion's policy would back off for about a minute here
