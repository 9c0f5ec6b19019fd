"""The deployable ingestion flow: plain JSON parameters in, objects built from ``Settings`` here.

``ingest_from_settings`` is the entry point of ``ondata schedule`` (``flow.serve``) and of the
``prefect.yaml`` deployments (``ondata/flows.py:ingest_from_settings``). Secrets never travel as
parameters: the worker's environment supplies them (``AZURE_STORAGE_CONNECTION_STRING``,
``AZURE_SEARCH_KEY``... see ``ondata.settings``). The pipeline logic is the run engine driven by
``pipelines.flows.ingest_flow_body``, inside this one flow run (no subflow), on the chosen task runner.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.states import State

from ondata.settings import Settings
from ondata.wiring import check_scope_and_cleanup
from pipelines.flows import ARTIFACT_KEY, Components

log = logging.getLogger(__name__)

_BUILT: dict["SettingsComponents", Components] = {}
_BUILT_LOCK = threading.Lock()


@dataclass(frozen=True)
class SettingsComponents:
    """A picklable factory of ``Components`` from a source string and Settings overrides.

    Calling it builds the source, embedder and index once per process (Dask workers each build
    their own) and returns the same objects afterwards.
    """

    source: str
    overrides: tuple[tuple[str, Any], ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    follow_symlinks: bool = False
    scope: str | None = None

    def settings(self) -> Settings:
        return Settings(**dict(self.overrides))

    def build(self) -> Components:
        from ondata.wiring import build_embedder, build_index, build_source

        settings = self.settings()
        embedder = build_embedder(settings)
        source = build_source(settings, self.source, include=self.include, exclude=self.exclude,
                              follow_symlinks=self.follow_symlinks, scope=self.scope)
        return Components(source=source, index=build_index(settings, embedder), embedder=embedder)

    def __call__(self) -> Components:
        with _BUILT_LOCK:
            built = _BUILT.get(self)
            if built is None:
                built = _BUILT[self] = self.build()
            return built

    def release(self) -> None:
        """Close what this process built (index, clients)."""
        with _BUILT_LOCK:
            built = _BUILT.pop(self, None)
        if built is not None:
            built.index.close()
            close = getattr(built.source, "close", None)  # sources hold clients only sometimes (not a port member)
            if callable(close):
                close()


def _overrides(index_dir: str | None, profile: str | None, embedder: str | None) -> tuple[tuple[str, Any], ...]:
    values = {"index_dir": index_dir, "profile": profile, "embedder": embedder}
    return tuple(sorted((k, v) for k, v in values.items() if v is not None))


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    from pipelines.flows import run_name

    return run_name(str((flow_run.parameters or {}).get("source") or "source"))


def absolute_source(source: str) -> str:
    """``source`` as stored in a flow run's parameters: a folder's absolute path, or the ``az://`` URL as given."""
    return source if source.startswith("az://") else str(Path(source).expanduser().resolve())


@flow(name="ondata-ingest-from-settings", flow_run_name=_flow_run_name, log_prints=False, validate_parameters=True)
def ingest_from_settings(
    source: str,
    index_dir: str | None = None,
    profile: str | None = None,
    embedder: str | None = None,
    task_runner: str = "threads",
    max_workers: int = 4,
    batch_chunks: int = 256,
    dry_run: bool = False,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    follow_symlinks: bool = False,
    keep_stale_on_error: bool = False,
    scope: str | None = None,
    cleanup: str | None = None,
    yes: bool = False,
) -> "dict | State":
    """Ingest ``source`` (a folder, or ``az://container/prefix``) into the configured index.

    One flow run (named ``ingest-<scope>-<YYYYMMDD-HHMM>``) whose task runs are the stages of the
    run engine. Every parameter is plain JSON, so Prefect deployments can schedule it. ``None``
    keeps the setting from the environment (``ONDATA_INDEX_DIR``, ``ONDATA_PROFILE``,
    ``ONDATA_EMBEDDER``). ``include`` / ``exclude`` / ``follow_symlinks`` / ``keep_stale_on_error``
    as for `ondata ingest`. Retries: the backends built by the wiring retry their own requests, so
    the Prefect tasks run without retries (``ondata.wiring.task_retry_policy``). Returns the run
    report as a dict; the Markdown summary is the artifact ``ingestion-summary``. An interrupted run
    (SIGINT/SIGTERM) ends Cancelled with the report as its result (``return_state=True`` to get it).
    A local ingest holds the index's rebuild lock shared, as `ondata ingest` does: ``RebuildInProgress``
    while ``ondata index rebuild`` runs.
    """
    from ondata.wiring import ingest_guard, ingest_options, task_retry_policy
    from pipelines.flows import ingest_flow_body, make_task_runner

    source = absolute_source(source)
    cleanup = check_scope_and_cleanup(source, scope=scope, cleanup=cleanup, yes=yes, unattended=True)
    factory = SettingsComponents(source, _overrides(index_dir, profile, embedder), include=tuple(include or ()),
                                 exclude=tuple(exclude or ()), follow_symlinks=follow_symlinks, scope=scope)
    settings = factory.settings()
    options = ingest_options(settings, dry_run=dry_run, keep_stale_on_error=keep_stale_on_error,
                             batch_chunks=batch_chunks, cleanup=cleanup)
    index_label = (f"Azure AI Search {settings.azure_search_index}" if settings.profile == "azure"
                   else f"local {Path(settings.index_dir).resolve()}")
    runner = make_task_runner(task_runner, max_workers=max_workers)
    try:
        with ingest_guard(settings, dry_run=dry_run):  # as `ondata ingest`: refused while a rebuild runs
            # threads share this process's objects; Dask workers get the factory and build their own
            components = factory() if task_runner == "threads" else factory
            with runner:
                return ingest_flow_body(components, options=options, retry=task_retry_policy(settings),
                                        window=max(8, 2 * max_workers), source_label=source, index_label=index_label,
                                        artifact_key=ARTIFACT_KEY, task_runner=runner)
    finally:
        factory.release()
