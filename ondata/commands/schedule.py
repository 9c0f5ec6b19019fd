"""`ondata schedule`: serve the ingestion flow on a cron schedule (Prefect ``flow.serve``)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer


def serve_parameters(
    source: str, *, index: Optional[Path], profile: Optional[str], embedder: Optional[str], task_runner: str,
    max_workers: int, scope: Optional[str] = None, cleanup: Optional[str] = None, yes: bool = False,
    keep_stale_on_error: bool = False,
) -> dict:
    """The JSON parameters of ``ondata.flows.ingest_from_settings`` for one schedule (absolute paths:
    the flow runs in another process, maybe another folder)."""
    from ondata.flows import absolute_source

    params: dict = {"source": absolute_source(source), "task_runner": task_runner, "max_workers": max_workers}
    if index is not None:
        params["index_dir"] = str(Path(index).expanduser().resolve())
    if profile is not None:
        params["profile"] = profile
    if embedder is not None:
        params["embedder"] = embedder
    for key, value in (("scope", scope), ("cleanup", cleanup)):
        if value is not None:
            params[key] = value
    if yes:
        params["yes"] = True
    if keep_stale_on_error:
        params["keep_stale_on_error"] = True
    return params


def register(app: typer.Typer) -> None:
    @app.command()
    def schedule(
        source: str = typer.Argument(..., help="Folder, or az://container/prefix for Blob Storage."),
        cron: str = typer.Option("*/30 * * * *", "--cron", help="Cron schedule (UTC unless --timezone)."),
        index: Optional[Path] = typer.Option(None, "--index", help="Index folder (local profile)."),
        profile: Optional[str] = typer.Option(None, "--profile", help="local | azure (default: ONDATA_PROFILE)."),
        embedder: Optional[str] = typer.Option(None, "--embedder", help="local | hashing | azure_openai"),
        task_runner: str = typer.Option("threads", "--task-runner", help="threads | dask (prefect-dask)."),
        max_workers: int = typer.Option(4, "--max-workers", min=1, help="Concurrent tasks (threads or Dask workers)."),
        name: str = typer.Option("ondata-ingest", "--name", help="Deployment name."),
        timezone: Optional[str] = typer.Option(None, "--timezone", help="IANA time zone of the cron schedule."),
        scope: Optional[str] = typer.Option(None, "--scope", help="Source scope, as for `ondata ingest`."),
        cleanup: Optional[str] = typer.Option(
            None, "--cleanup", help="scoped (default) | none | full, as for `ondata ingest`; full needs --yes."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Confirm --cleanup full (a scheduled run cannot ask)."),
        keep_stale_on_error: bool = typer.Option(
            False, "--keep-stale-on-error", help="Keep a changed document's old chunks when its new version fails."),
    ) -> None:
        """Run the ingestion on a schedule until interrupted (Prefect serve; see prefect.yaml for work pools)."""
        from indexers.errors import ConfigError
        from ondata.flows import absolute_source, ingest_from_settings
        from ondata.wiring import check_scope_and_cleanup
        from pipelines.flows import TASK_RUNNERS

        check_scope_and_cleanup(absolute_source(source), scope=scope, cleanup=cleanup, yes=yes, unattended=True)

        if task_runner not in TASK_RUNNERS:
            raise ConfigError(f"--task-runner must be one of {', '.join(TASK_RUNNERS)}, not {task_runner!r}")
        from prefect.schedules import Cron

        try:
            schedule_ = Cron(cron, timezone=timezone) if timezone else Cron(cron)
        except ValueError as exc:
            raise ConfigError(f"--cron {cron!r} is not a valid cron expression: {exc}") from exc
        from prefect.settings import PREFECT_API_URL

        if not PREFECT_API_URL.value():
            raise ConfigError("ondata schedule needs a Prefect server: run `prefect server start` in another "
                              "terminal, then set PREFECT_API_URL=http://127.0.0.1:4200/api")
        params = serve_parameters(source, index=index, profile=profile, embedder=embedder,
                                  task_runner=task_runner, max_workers=max_workers, scope=scope, cleanup=cleanup,
                                  yes=yes, keep_stale_on_error=keep_stale_on_error)
        typer.echo(f"serving {name}: ingest {params['source']} on '{cron}' with {task_runner} x{max_workers} "
                   f"(Ctrl+C to stop)")
        try:
            # global_limit=1: a run that outlasts the interval delays the next one instead of overlapping it
            with _quiet_shutdown():
                ingest_from_settings.serve(name=name, schedules=[schedule_], parameters=params, global_limit=1)
        except KeyboardInterrupt:
            pass
        typer.echo(f"stopped serving {name}")


@contextmanager
def _quiet_shutdown() -> Iterator[None]:
    """After serving stops, mute Prefect's background clients: connections cut by Ctrl-C are not errors
    worth a traceback (the events websocket used to dump one while the process exited)."""
    import logging

    try:
        yield
    finally:
        for name in ("prefect.events.clients", "websockets", "prefect._internal.concurrency"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
