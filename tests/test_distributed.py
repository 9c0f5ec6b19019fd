"""The Prefect flow on a Dask cluster of separate processes (a scheduler and a worker started with the
``dask`` CLIs), into the Azure AI Search and Azure OpenAI test doubles: the tasks are pickled to the
worker, which builds its own source, embedder and index from its own environment
(``ondata.flows.SettingsComponents``). bench/distributed.py measures the same set-up at N workers.
"""

from __future__ import annotations

import pytest

pytest.importorskip("prefect_dask", reason="the distributed runner needs prefect-dask (a dependency)")
pytest.importorskip("distributed", reason="the distributed runner needs dask.distributed (a dependency)")

from tests.dask_cluster import DaskProcesses  # noqa: E402
from tests.servers.azure_openai import FakeAzureOpenAI  # noqa: E402
from tests.servers.azure_search import FakeAzureSearch  # noqa: E402


def azure_env(search: FakeAzureSearch, aoai: FakeAzureOpenAI, tmp, index: str) -> dict[str, str]:
    return {"ONDATA_PROFILE": "azure", "AZURE_SEARCH_ENDPOINT": search.url, "AZURE_SEARCH_KEY": "sk",
            "AZURE_SEARCH_INDEX": index, "AZURE_OPENAI_ENDPOINT": aoai.url, "AZURE_OPENAI_API_KEY": "ok",
            "AZURE_OPENAI_EMBEDDING_DEPLOYMENT": "emb", "AZURE_OPENAI_EMBEDDING_DIMENSIONS": "16",
            "ONDATA_INDEX_DIR": str(tmp / "ix"), "ONDATA_CHUNK_SIZE": "40", "ONDATA_CHUNK_OVERLAP": "0",
            "ONDATA_RETRY_BACKOFF_SECONDS": "0.05"}


@pytest.mark.slow
def test_flow_on_a_dask_cluster_of_separate_processes(prefect_harness, tmp_path, monkeypatch):
    from prefect.settings import PREFECT_API_URL
    from prefect_dask import DaskTaskRunner

    import ondata.flows
    from ondata.settings import Settings
    from ondata.wiring import ingest_options, task_retry_policy
    from pipelines.flows import run_ingest_flow

    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(4):
        (docs / f"doc-{n}.txt").write_text(f"Document {n}. " + " ".join(f"word{n}x{i}" for i in range(60)))
    with FakeAzureSearch(api_key="sk") as search, FakeAzureOpenAI(
            api_key="ok", embedding_deployments={"emb": 16}, latency=(0.01, 0.05)) as aoai:
        env = azure_env(search, aoai, tmp_path, "dist")
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        aoai.fail_next(1, retry_after=0.2, kind="embeddings")  # a 429 the worker's embedder waits out
        cluster = DaskProcesses.start(tmp_path / "dask", workers=1, worker_env=lambda i: {
            **env, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "ONDATA_EMBEDDING_CACHE": str(tmp_path / f"cache-{i}.sqlite")})
        try:
            factory = ondata.flows.SettingsComponents(str(docs))
            settings = Settings()
            summary = run_ingest_flow(factory, options=ingest_options(settings, batch_chunks=4),
                                      task_runner=DaskTaskRunner(address=cluster.address),
                                      retry=task_retry_policy(settings), source_label=str(docs),
                                      index_label="Azure AI Search dist", artifact_key=None)
            assert cluster.workers[0].poll() is None, "the worker must have survived the run"
        finally:
            cluster.stop()
        stored = search.documents("dist")
    assert not ondata.flows._BUILT, "nothing was built in the flow's own process: the worker did the work"
    assert summary["counts"]["added"] == 4 and summary["counts"]["failed"] == 0
    assert summary["chunks_written"] == len(stored) > 4
    assert {d["source_id"] for d in stored.values()} == {f"doc-{n}.txt" for n in range(4)}
    calls = [r for r in aoai.requests if r.path.endswith("/embeddings")]
    assert len(calls) == len(aoai.embedding_calls) + 1  # the 429 was retried once, by the embedder only
    assert sum(len(b["input"]) for b in aoai.embedding_calls) == summary["embeddings_computed"] == len(stored)
