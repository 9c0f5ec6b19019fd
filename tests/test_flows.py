"""Prefect flows (pipelines/flows.py, ondata/flows.py), the schedule command and prefect.yaml.

Flow runs happen under one session-scoped ``prefect_test_harness`` (a temporary Prefect server);
each run costs seconds, so there are only a few. The retry rules are unit-tested without Prefect.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from indexers.embedders.cache import CachedEmbedder, EmbeddingCache
from indexers.embedders.hashing import HashingEmbedder
from indexers.errors import OndataError, TransientError
from indexers.local_index import LocalIndex
from pipelines.chunking import ChunkingConfig
from pipelines.errors import CorruptDocumentError, SourceError
from pipelines.flows import Components, RetryPolicy, is_transient, retry_after_of, retry_condition, run_ingest_flow
from pipelines.ingest import IngestOptions
from pipelines.sources.blob import BlobDocumentSource
from pipelines.sources.local import LocalFolderSource
from tests.azurite import FaultyTransport
from tests.test_sync_blob import doc_text
from picky_index import PickyIndex

REPO = Path(__file__).resolve().parents[1]
OPTIONS = IngestOptions(chunking=ChunkingConfig(chunk_size=40, overlap=0), batch_chunks=16)
FAST = RetryPolicy(attempts=3, backoff_seconds=0.05, jitter=0.0, max_retry_after_seconds=1.0)


def read_artifact(key: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def latest():
        async with get_client() as client:
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
            return sorted(found, key=lambda a: a.created)[-1] if found else None

    return asyncio.run(latest())


# ---------------------------------------------------------------- retry rules (no Prefect run)


class _State:
    def __init__(self, exc):
        self.data = exc


class _Run:
    run_count = 1


class _Task:
    name = "t"


class _Http(Exception):
    def __init__(self, status, headers=None):
        self.status_code = status
        self.response = type("R", (), {"headers": headers or {}, "status_code": status})()


def test_only_transient_failures_are_retried():
    assert is_transient(TransientError("busy"))
    assert is_transient(TimeoutError()) and is_transient(ConnectionResetError())
    assert is_transient(_Http(503)) and is_transient(_Http(429)) and is_transient(_Http(500))
    assert not is_transient(_Http(404)) and not is_transient(_Http(400))
    assert not is_transient(CorruptDocumentError("bad", doc_id="x"))
    assert not is_transient(SourceError("denied", doc_id="x")) and not is_transient(ValueError("bug"))
    cond = retry_condition(FAST)
    assert cond(_Task(), _Run(), _State(TransientError("busy"))) is True
    assert cond(_Task(), _Run(), _State(CorruptDocumentError("bad", doc_id="x"))) is False
    # a backend that already retried (attempts > 1) owns its retries: the task never retries it again
    assert cond(_Task(), _Run(), _State(TransientError("still throttled", attempts=5))) is False


def test_retry_after_longer_than_the_backoff_is_honoured(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr("pipelines.flows.time.sleep", slept.append)
    policy = RetryPolicy(attempts=4, backoff_seconds=2.0, jitter=0.0, max_retry_after_seconds=30)
    cond = retry_condition(policy)
    assert retry_after_of(_Http(429, {"Retry-After": "12"})) == 12.0
    assert cond(_Task(), _Run(), _State(TransientError("throttled", retry_after=10.0))) is True
    assert slept == [8.0]  # backoff 2 s scheduled by Prefect + 8 s = the 10 s asked for
    assert cond(_Task(), _Run(), _State(TransientError("throttled", retry_after=1.0))) is True
    assert slept == [8.0]  # shorter than the backoff: nothing extra
    assert cond(_Task(), _Run(), _State(TransientError("throttled", retry_after=600.0))) is True
    assert slept[-1] == 28.0  # capped at max_retry_after_seconds
    assert policy.delays() == [2.0, 4.0, 8.0]


# ---------------------------------------------------------------- flow runs


class FlakyEmbedder:
    """Wraps an embedder; the first ``fail`` calls raise a TransientError (a throttled remote model)."""

    def __init__(self, inner, fail=1):
        self.inner, self.fail, self.calls = inner, fail, 0

    model_id = property(lambda self: self.inner.model_id)
    dimensions = property(lambda self: self.inner.dimensions)
    stats = property(lambda self: self.inner.stats)
    last_call = property(lambda self: self.inner.last_call)

    def embed_documents(self, texts):
        self.calls += 1
        if self.fail > 0:
            self.fail -= 1
            raise TransientError("embedding service throttled", retry_after=0.01)
        return self.inner.embed_documents(texts)

    def embed_query(self, text):
        return self.inner.embed_query(text)


@pytest.mark.azurite
def test_flow_retries_transient_io_and_keeps_going_past_bad_documents(
        prefect_harness, azurite, blob_container, tmp_path, index_contents):
    for n in range(6):
        blob_container.upload_blob(f"kb/report-{n}.txt", doc_text(n))
    blob_container.upload_blob("kb/broken.pdf", b"%PDF-1.7 not really")
    transport = FaultyTransport(fail=1, match="report-1.txt", retry_after="0")
    source = BlobDocumentSource(container=blob_container.container_name, connection_string=azurite.connection_string,
                                prefix="kb/", client_options={"transport": transport})
    cached = CachedEmbedder(HashingEmbedder(dimensions=64), EmbeddingCache(tmp_path / "cache.sqlite"))
    embedder = FlakyEmbedder(cached, fail=1)
    index = LocalIndex(tmp_path / "idx", dimensions=64, model_id=cached.model_id)
    components = Components(source, PickyIndex(index, refuse="kb/report-4.txt"), embedder)

    summary = run_ingest_flow(components, options=OPTIONS, retry=FAST, max_workers=2, source_label="az://test/kb/")

    assert isinstance(summary, dict)
    assert summary["counts"] == {"added": 5, "updated": 0, "deleted": 0, "unchanged": 0, "failed": 2, "skipped": 0}
    failed = {r["source_id"]: r["error_type"] for r in summary["results"] if r["status"] == "failed"}
    assert failed == {"kb/broken.pdf": "CorruptDocumentError", "kb/report-4.txt": "IndexError_"}
    # the 503 download was retried once; the corrupt PDF was fetched once (never retried)
    assert sum(1 for _, u in transport.requests if "report-1.txt" in u) == 2
    assert sum(1 for _, u in transport.requests if "broken.pdf" in u) == 1
    assert embedder.calls >= 2  # the throttled embed batch was retried
    assert summary["embeddings_computed"] == cached.stats.computed > 0
    assert {sid for sid, _ in index_contents(tmp_path / "idx")} == {f"kb/report-{n}.txt" for n in (0, 1, 2, 3, 5)}

    artifact = read_artifact("ingestion-summary")
    assert artifact is not None and artifact.type == "markdown"
    assert "# Ingestion run: az://test/kb/" in artifact.data
    assert "kb/broken.pdf" in artifact.data and "| 5 | 0 | 0 | 0 | 2 |" in artifact.data
    index.close()


def _write_docs(folder: Path, numbers, edition=1):
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (folder / f"doc-{n}.txt").write_bytes(doc_text(n, edition))


def test_deployable_flow_builds_from_settings_and_syncs(prefect_harness, tmp_path, monkeypatch, index_contents):
    from ondata.flows import ingest_from_settings

    docs = tmp_path / "docs"
    _write_docs(docs, range(5))
    monkeypatch.setenv("ONDATA_CHUNK_SIZE", "40")
    monkeypatch.setenv("ONDATA_CHUNK_OVERLAP", "0")
    params = dict(source=str(docs), index_dir=str(tmp_path / "idx"), embedder="hashing", max_workers=2)

    first = ingest_from_settings(**params)
    assert first["counts"]["added"] == 5 and first["embeddings_computed"] == first["chunks_written"]

    (docs / "doc-0.txt").unlink()
    _write_docs(docs, [1], edition=2)
    plan = ingest_from_settings(**params, dry_run=True)
    assert plan["dry_run"] and plan["counts"] == {"added": 0, "updated": 1, "deleted": 1, "unchanged": 3, "failed": 0, "skipped": 0}
    second = ingest_from_settings(**params)
    assert second["counts"] == {"added": 0, "updated": 1, "deleted": 1, "unchanged": 3, "failed": 0, "skipped": 0}
    assert second["embeddings_computed"] == second["chunks_written"] > 0

    from indexers import local_generations

    with local_generations.rebuild_lock(tmp_path / "idx"):  # a rebuild is running: refused, nothing written
        with pytest.raises(local_generations.RebuildInProgress, match="run it again once the rebuild is done"):
            ingest_from_settings(**params)

    fresh = tmp_path / "fresh"
    idx = LocalIndex(fresh, dimensions=256, model_id=HashingEmbedder(dimensions=256).model_id)
    from pipelines.ingest import ingest

    ingest(LocalFolderSource(docs), index=idx, embedder=HashingEmbedder(dimensions=256), options=OPTIONS)
    idx.close()
    assert index_contents(tmp_path / "idx") == index_contents(fresh)


def test_a_429_storm_costs_the_backends_attempts_not_their_product_through_the_flow(prefect_harness, tmp_path):
    """Backends retry (3 attempts); the tasks are configured to retry too (3), yet a storm costs 3, not 9."""
    from indexers.azure_search import AzureSearchIndex
    from indexers.embedders.azure_openai import AzureOpenAIEmbedder
    from tests.servers.azure_openai import FakeAzureOpenAI
    from tests.servers.azure_search import FakeAzureSearch

    docs = tmp_path / "docs"
    _write_docs(docs, range(3))
    (docs / "bad.txt").write_text("groups below are a string")
    (docs / "bad.txt.meta.json").write_text('{"groups": "finance"}')
    (docs / "passwd.txt").symlink_to("/etc/passwd")
    backend = RetryPolicy(attempts=3, backoff_seconds=0.01, max_backoff_seconds=0.02, max_retry_after_seconds=0.02)
    one_batch = IngestOptions(chunking=OPTIONS.chunking, batch_chunks=10_000)

    with FakeAzureOpenAI(api_key="k", embedding_deployments={"emb": 16}) as aoai:
        embedder = AzureOpenAIEmbedder(endpoint=aoai.url, deployment="emb", api_key="k", dimensions=16, retry=backend)
        index = LocalIndex(tmp_path / "idx", dimensions=16, model_id=embedder.model_id)
        aoai.fail_next(100, retry_after=0.01, kind="embeddings")
        summary = run_ingest_flow(Components(LocalFolderSource(docs), index, embedder), options=one_batch,
                                  retry=FAST, max_workers=2)
        index.close()
        assert sum(1 for r in aoai.requests if r.path.endswith("/embeddings")) == 3
    assert summary["counts"] == {"added": 0, "updated": 0, "deleted": 0, "unchanged": 0, "failed": 4, "skipped": 1}
    by_id = {r["source_id"]: r for r in summary["results"]}
    assert {by_id[f"doc-{n}.txt"]["error_type"] for n in range(3)} == {"TransientError"}
    assert by_id["bad.txt"]["error_type"] == "InvalidMetadataError"
    assert by_id["passwd.txt"]["status"] == "skipped" and by_id["passwd.txt"]["error_type"] == "SymlinkError"

    with FakeAzureSearch(api_key="k") as search:
        embedder = HashingEmbedder(dimensions=16)
        index = AzureSearchIndex(endpoint=search.url, index_name="storm", api_key="k", dimensions=16,
                                 model_id=embedder.model_id, retry=backend)
        search.fail_next(100, status=429, retry_after=0.01, path="/docs/search.index")
        summary = run_ingest_flow(Components(LocalFolderSource(docs), index, embedder), options=one_batch,
                                  retry=FAST, max_workers=2)
        index.close()
        assert sum(1 for r in search.requests if r.path.endswith("/docs/search.index")) == 3
    assert summary["counts"]["failed"] == 4 and summary["counts"]["added"] == 0


def test_the_settings_flow_runs_tasks_without_retries_over_retrying_backends(prefect_harness, tmp_path, monkeypatch):
    from ondata.flows import ingest_from_settings
    from tests.servers.azure_openai import FakeAzureOpenAI

    docs = tmp_path / "docs"
    _write_docs(docs, range(3))
    with FakeAzureOpenAI(api_key="k", embedding_deployments={"emb": 16}) as aoai:
        for name, value in {"AZURE_OPENAI_ENDPOINT": aoai.url, "AZURE_OPENAI_API_KEY": "k",
                            "AZURE_OPENAI_EMBEDDING_DEPLOYMENT": "emb", "AZURE_OPENAI_EMBEDDING_DIMENSIONS": "16",
                            "ONDATA_RETRY_ATTEMPTS": "2", "ONDATA_RETRY_BACKOFF_SECONDS": "0.01",
                            "ONDATA_RETRY_MAX_WAIT_SECONDS": "0.01", "ONDATA_CHUNK_SIZE": "40",
                            "ONDATA_CHUNK_OVERLAP": "0"}.items():
            monkeypatch.setenv(name, value)
        aoai.fail_next(2, retry_after=0.01, kind="embeddings")  # exactly the backend's attempts
        summary = ingest_from_settings(source=str(docs), index_dir=str(tmp_path / "idx"), embedder="azure_openai",
                                       max_workers=2, include=["doc-*.txt"])
        # the tasks run without retries (wiring) and never retry what a backend retried: a 3rd request would land them
        assert sum(1 for r in aoai.requests if r.path.endswith("/embeddings")) == 2
    assert summary["counts"]["failed"] == 3 and summary["counts"]["added"] == 0


@pytest.mark.slow
def test_dask_task_runner_needs_a_factory_and_runs_with_one(prefect_harness, tmp_path, index_contents):
    pytest.importorskip("prefect_dask")
    from indexers.errors import ConfigError
    from ondata.flows import SettingsComponents

    docs = tmp_path / "docs"
    _write_docs(docs, range(4))
    built = Components(LocalFolderSource(docs), LocalIndex(tmp_path / "x", dimensions=8, model_id="m"),
                       HashingEmbedder(dimensions=8))
    with pytest.raises(ConfigError, match="factory"):
        run_ingest_flow(built, task_runner="dask")

    factory = SettingsComponents(str(docs), (("embedder", "hashing"), ("index_dir", str(tmp_path / "idx"))))
    summary = run_ingest_flow(factory, options=OPTIONS, task_runner="dask", max_workers=2)
    assert summary["counts"]["added"] == 4 and summary["embeddings_computed"] == summary["chunks_written"]
    assert {sid for sid, _ in index_contents(tmp_path / "idx")} == {f"doc-{n}.txt" for n in range(4)}


# ---------------------------------------------------------------- scheduling


def test_schedule_command_serves_the_flow_with_cron_and_json_parameters(monkeypatch, tmp_path):
    from prefect import Flow
    from typer.testing import CliRunner

    from ondata.cli import app

    from prefect.settings import PREFECT_API_URL, temporary_settings

    served = {}
    monkeypatch.setattr(Flow, "serve", lambda self, **kw: served.update(flow=self.name, **kw))
    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # no server: one line, exit 2, nothing served
        refused = CliRunner().invoke(app, ["schedule", "az://docs/hr"])
    assert refused.exit_code != 0 and not served
    assert "prefect server start" in str(refused.exception) and "PREFECT_API_URL" in str(refused.exception)

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        result = CliRunner().invoke(app, ["schedule", "az://docs/hr", "--cron", "*/30 * * * *", "--index",
                                          str(tmp_path), "--task-runner", "dask", "--max-workers", "3"])
        assert result.exit_code == 0, result.output
        monkeypatch.chdir(tmp_path)
        relative = CliRunner().invoke(app, ["schedule", "docs", "--index", "idx"])
        assert relative.exit_code == 0, relative.output
        assert served["parameters"]["source"] == str(tmp_path / "docs")  # absolute: the flow runs elsewhere
        assert served["parameters"]["index_dir"] == str(tmp_path / "idx")
        result = CliRunner().invoke(app, ["schedule", "az://docs/hr", "--cron", "*/30 * * * *", "--index",
                                          str(tmp_path), "--task-runner", "dask", "--max-workers", "3"])
    assert served["flow"] == "ondata-ingest-from-settings" and served["name"] == "ondata-ingest"
    assert [s.cron for s in served["schedules"]] == ["*/30 * * * *"]
    assert served["parameters"] == {"source": "az://docs/hr", "index_dir": str(tmp_path), "task_runner": "dask",
                                    "max_workers": 3}
    bad = CliRunner().invoke(app, ["schedule", "x", "--cron", "not a cron"])
    assert bad.exit_code != 0 and "not a valid cron expression" in str(bad.exception)
    bad = CliRunner().invoke(app, ["schedule", "x", "--task-runner", "ray"])
    assert bad.exit_code != 0 and "--task-runner must be one of" in str(bad.exception)


def test_schedule_and_the_deployable_flow_take_scope_and_cleanup_and_refuse_unconfirmed_full(monkeypatch, tmp_path):
    from prefect import Flow
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from typer.testing import CliRunner

    from indexers.errors import ConfigError
    from ondata.cli import app
    from ondata.flows import ingest_from_settings

    served = {}
    monkeypatch.setattr(Flow, "serve", lambda self, **kw: served.update(**kw))
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        refused = CliRunner().invoke(app, ["schedule", "az://docs/hr", "--cleanup", "full"])
        assert isinstance(refused.exception, ConfigError) and "--yes" in str(refused.exception) and not served
        bad = CliRunner().invoke(app, ["schedule", "az://docs/hr", "--cleanup", "some"])
        assert isinstance(bad.exception, ConfigError) and "--cleanup must be one of" in str(bad.exception)
        bad = CliRunner().invoke(app, ["schedule", "az://docs/hr", "--scope", " "])
        assert isinstance(bad.exception, ConfigError) and not served
        ok = CliRunner().invoke(app, ["schedule", "az://docs/hr", "--scope", "hr", "--cleanup", "full", "--yes",
                                      "--keep-stale-on-error"])
        assert ok.exit_code == 0, ok.output
    assert served["parameters"] == {"source": "az://docs/hr", "task_runner": "threads", "max_workers": 4,
                                    "scope": "hr", "cleanup": "full", "yes": True, "keep_stale_on_error": True}
    accepted = set(inspect.signature(ingest_from_settings.fn).parameters)
    assert set(served["parameters"]) <= accepted
    with pytest.raises(ConfigError, match="--yes"):  # before anything is built, listed or deleted
        ingest_from_settings.fn(source=str(tmp_path / "nothing"), index_dir=str(tmp_path / "idx"), cleanup="full")
    assert not (tmp_path / "idx").exists()
    # the console script: one line, exit 2
    env = dict(os.environ, PREFECT_API_URL="http://127.0.0.1:9/api")
    run = subprocess.run([sys.executable, "-m", "ondata.cli", "schedule", str(tmp_path), "--cleanup", "full"],
                         capture_output=True, text=True, cwd=REPO, env=env)
    assert run.returncode == 2 and "error: --cleanup full" in run.stderr and "Traceback" not in run.stderr


def test_prefect_yaml_deployments_point_at_the_flow_with_valid_parameters():
    from prefect.schedules import Cron

    from ondata.flows import ingest_from_settings

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    accepted = set(inspect.signature(ingest_from_settings.fn).parameters)
    assert spec["deployments"]
    for dep in spec["deployments"]:
        path, _, name = dep["entrypoint"].partition(":")
        assert (REPO / path).is_file() and name == "ingest_from_settings"
        assert set(dep["parameters"]) <= accepted and "source" in dep["parameters"]
        assert dep["parameters"]["task_runner"] in ("threads", "dask")
        assert dep["work_pool"]["name"]
        for s in dep["schedules"]:
            Cron(s["cron"], timezone=s.get("timezone"))
        assert not any(k in str(dep).lower() for k in ("accountkey", "api_key", "sig="))


def test_prepare_tasks_take_documents_in_groups_and_a_bad_one_fails_alone(prefect_harness, tmp_path, index_contents):
    from prefect import flow

    from pipelines.engine import run_ingest
    from pipelines.flows import PrefectRunner

    folder = tmp_path / "docs"
    _write_docs(folder, range(6))
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7 not really")
    embedder = HashingEmbedder(dimensions=64)
    index = LocalIndex(tmp_path / "idx", dimensions=64, model_id=embedder.model_id)
    groups: list[list[str]] = []

    class Recording(PrefectRunner):
        def _submit(self, task_obj, **parameters):
            if "items" in parameters:
                groups.append([item.id for item in parameters["items"]])
            return super()._submit(task_obj, **parameters)

    @flow(name="grouped-prepare")
    def grouped() -> dict:
        runner = Recording(Components(LocalFolderSource(folder), index, embedder), window=2, group=3)
        return run_ingest(runner, options=OPTIONS).to_dict()

    report = grouped()
    assert [len(g) for g in groups] == [3, 3, 1]  # 7 documents, 3 task runs
    assert sorted(i for g in groups for i in g) == sorted(["broken.pdf"] + [f"doc-{n}.txt" for n in range(6)])
    assert report["counts"]["added"] == 6 and report["counts"]["failed"] == 1
    assert [r["error_type"] for r in report["results"] if r["status"] == "failed"] == ["CorruptDocumentError"]
    assert {sid for sid, _ in index_contents(tmp_path / "idx")} == {f"doc-{n}.txt" for n in range(6)}
    index.close()


def test_prepare_groups_are_bounded_by_count_and_listed_bytes():
    from pipelines.flows import _groups
    from pipelines.records import SourceItem

    def item(name, size):
        return SourceItem(id=name, version="v", name=name, size=size)

    sizes = [10, 10, 500, 10, None, 10, 10, 10]
    got = [[i.id for i in g] for g in _groups([item(f"f{n}", s) for n, s in enumerate(sizes)], size=3, max_bytes=100)]
    assert got == [["f0", "f1"], ["f2"], ["f3", "f4", "f5"], ["f6", "f7"]]  # the 500-byte file goes alone
    assert list(_groups([], size=3, max_bytes=100)) == []


def test_embedding_requests_of_a_slice_are_in_flight_together_and_come_back_in_order(prefect_harness, tmp_path):
    import threading
    import time

    from prefect import flow
    from prefect.task_runners import ThreadPoolTaskRunner

    from indexers.records import Chunk
    from pipelines.flows import PrefectRunner

    inner = HashingEmbedder(dimensions=32)

    class Slow:
        model_id, dimensions = inner.model_id, inner.dimensions
        lock, active, peak, calls = threading.Lock(), 0, 0, 0

        def embed_documents(self, texts):
            with self.lock:
                self.active += 1
                self.calls += 1
                self.peak = max(self.peak, self.active)
            time.sleep(0.3)  # a remote model's latency
            with self.lock:
                self.active -= 1
            return inner.embed_documents(texts)

        def embed_query(self, text):
            return inner.embed_query(text)

    slow = Slow()
    chunks = [Chunk(id=f"d{n}-0", source_id=f"d{n}.txt", chunk_index=0, content=f"text number {n} about topic {n % 3}")
              for n in range(7)]

    @flow(name="parallel-embed", task_runner=ThreadPoolTaskRunner(max_workers=4))
    def run():
        runner = PrefectRunner(Components(LocalFolderSource(tmp_path), None, slow), request_chunks=2, embed_parallel=3)
        assert runner.embed_slice == 6
        return runner.embed(chunks)

    got = run()
    assert slow.calls == 4 and slow.peak >= 2  # 7 chunks in 4 requests, several at once
    assert got.vectors.shape == (7, 32)
    from pipelines.engine import embedding_text

    np.testing.assert_allclose(got.vectors, np.asarray(inner.embed_documents([embedding_text(c) for c in chunks])))
