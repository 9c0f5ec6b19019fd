"""`ondata ingest` and `ondata index stats|sources|remove` (`index rebuild|drop-old`: ``ondata.commands.rebuild``)."""

from __future__ import annotations

import json
import logging
import sys
import threading
from contextlib import closing, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ondata.settings import Settings


def _settings(index: Optional[Path], **overrides) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if index is not None:
        values["index_dir"] = index
    return Settings(**values)


def print_report(report, console: Console) -> None:
    c = report.counts()
    table = Table(title="Ingestion dry run: nothing written" if report.dry_run else "Ingestion summary", show_edge=False)
    columns = ("added", "updated", "deleted", "unchanged", "failed", "skipped")
    for col in columns:
        table.add_column(col, justify="right")
    table.add_row(*(str(c[k]) for k in columns))
    console.print(table)
    if not report.dry_run:
        st = report.stage_seconds
        pages = f" ({report.pages_parsed} pages)" if report.pages_parsed else ""
        console.print(
            f"{report.documents_parsed} documents parsed{pages}, "
            f"{report.chunks_written} chunks written, {report.embeddings_computed} embeddings computed, "
            f"{report.embedding_cache_hits} from cache, in {report.seconds:.1f} s "
            f"(parse {st.get('fetch_parse', 0):.1f} s, chunk {st.get('chunk', 0):.1f} s, "
            f"embed {st.get('embed', 0):.1f} s, index {st.get('index', 0):.1f} s)"
        )
    else:
        for r in report.results:
            if r.status not in ("failed", "skipped"):
                where = f" [dim](scope {r.scope or '(no scope)'})[/dim]" if r.scope is not None else ""
                why = f" ({r.reason})" if r.reason else ""
                console.print(f"  would be {r.status}: {r.source_id}{why}{where}", markup=r.scope is not None,
                              highlight=False)
    for r in report.skipped:
        console.print(f"[yellow]skipped[/yellow] {r.source_id}: {r.error} [dim]({r.error_type})[/dim]")
    for r in report.failed:
        stale = f"; old version {r.stale}" if r.stale else ""
        console.print(f"[red]failed[/red] {r.source_id}: {r.error} [dim]({r.error_type}{stale})[/dim]")


class _InTheSummary(logging.Filter):
    """Drops the engine's line per failed or skipped document (``pipelines.engine.log_problem``): the
    summary of ``ondata ingest`` (or its ``--json`` report) lists every one of them, with the reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        from pipelines.engine import DOCUMENT_LOG

        return not hasattr(record, DOCUMENT_LOG)


@contextmanager
def problems_in_summary(enabled: bool = True):
    """While ``ondata ingest`` runs, each failed or skipped document is said once, in its summary, not also
    as a log line above the progress bar; ``--verbose``/``--debug`` keep the log lines too, and so does
    ``--json`` (its stderr is then the only place a person reads, the report on stdout being for programs)."""
    root = logging.getLogger()
    if not enabled or root.getEffectiveLevel() <= logging.INFO:
        yield
        return
    quiet = _InTheSummary()
    handlers = list(root.handlers)
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)


def confirm_full_cleanup(plan, console: Console, *, yes: bool) -> None:
    """Before ``--cleanup full`` deletes documents of other scopes: ask on a terminal, refuse elsewhere
    (unless ``yes``). Raises ``CleanupRefused`` (exit 2) before anything is deleted."""
    from pipelines.errors import CleanupRefused

    doomed = plan.describe_deleted()
    if yes or plan.cleanup != "full" or not plan.deleted_elsewhere:
        return
    if not (sys.stdin.isatty() and console.is_terminal):
        what = ("1 document, of another scope" if len(doomed) == 1
                else f"{len(doomed)} documents, {len(plan.deleted_elsewhere)} of them from other scopes")
        raise CleanupRefused(f"--cleanup full would delete {what}; pass --yes to confirm (--dry-run lists them)")
    console.print(f"--cleanup full deletes {len(doomed)} documents not in this source:", highlight=False)
    for line in doomed[:20]:
        console.print(f"  {line}", markup=False, highlight=False)
    if len(doomed) > 20:
        console.print(f"  ... and {len(doomed) - 20} more", highlight=False)
    if not typer.confirm("Delete them?", default=False):
        raise CleanupRefused("nothing deleted: --cleanup full was not confirmed")


def check_ingest_arguments(settings: Settings, path: str) -> None:
    """The bad arguments of ``ondata ingest``, each one line (``ConfigError``, exit 2), before anything is created."""
    import os

    from indexers.errors import ConfigError

    if settings.profile == "local":
        check_index_dir(settings.index_dir)
    if not path.startswith("az://") and not os.path.lexists(path):
        raise ConfigError(f"{path} does not exist; give a folder or a file to ingest (or az://container/prefix)")


def check_index_dir(index_dir: Path) -> None:
    """An index folder that is a file, or that cannot be read or written: one line (``ConfigError``)."""
    import os

    from indexers.errors import ConfigError

    if os.path.lexists(index_dir) and not index_dir.is_dir():
        raise ConfigError(f"the index path {index_dir} is a file, not a folder; give --index a folder")
    if index_dir.is_dir():
        try:
            os.listdir(index_dir)
        except OSError as exc:
            raise ConfigError(f"the index folder {index_dir} cannot be read: {exc.strerror or exc}") from None
        if not os.access(index_dir, os.W_OK | os.X_OK):
            raise ConfigError(f"the index folder {index_dir} cannot be written (permission denied)")


def ingest_with_progress(settings: Settings, path: str, console: Console, *, dry_run: bool = False,
                         include: tuple[str, ...] = (), exclude: tuple[str, ...] = (), follow_symlinks: bool = False,
                         scope: str | None = None, cleanup: str | None = None, yes: bool = False,
                         keep_stale_on_error: bool = False, stop: "threading.Event | None" = None):
    """Ingest ``path`` into the configured index (through the wiring), showing the plan and a progress bar
    on ``console``; returns the run report. Used by ``ondata ingest`` and ``ondata eval run --docs``.

    ``scope``: the source scope (default: the folder's resolved path); ``cleanup``: ``scoped``
    (default), ``none`` (default for a single file) or ``full`` (confirmed on a terminal, refused
    elsewhere unless ``yes``). ``stop``: set it (e.g. through ``stop_on_signals``) to interrupt the
    run; the report says so. A local ingest holds the index's rebuild lock shared
    (``local_generations.ingest_lock``): it is refused while ``ondata index rebuild`` runs, and a rebuild
    is refused while it runs."""
    from ondata.wiring import build_embedder, build_index, build_source, ingest_guard, ingest_options
    from pipelines.ingest import ingest as run_ingest

    check_ingest_arguments(settings, path)
    with ingest_guard(settings, dry_run=dry_run):  # refused during a rebuild; a rebuild is refused during it
        source = build_source(settings, path, include=include, exclude=exclude, follow_symlinks=follow_symlinks,
                              scope=scope)
        if cleanup is None:
            cleanup = "none" if getattr(source, "single_file", False) else "scoped"
        emb = build_embedder(settings, cached=not dry_run)  # a dry run creates no cache file
        options = ingest_options(settings, dry_run=dry_run, keep_stale_on_error=keep_stale_on_error, cleanup=cleanup)
        progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[current]}"), console=console, transient=False,
        )
        task = None

        def on_plan(plan) -> None:
            nonlocal task
            if not dry_run:
                confirm_full_cleanup(plan, console, yes=yes)
            s = plan.summary()
            problems = f", {len(plan.problems)} skipped or failed" if plan.problems else ""
            console.print(
                f"{plan.listed} documents listed: {s['added']} new, {s['changed']} changed, "
                f"{s['deleted']} deleted, {s['unchanged']} unchanged{problems}"
            )
            if not dry_run:
                task = progress.add_task("ingesting", total=len(plan.to_process), current="")
                progress.start()

        failed = 0

        def on_result(result) -> None:
            nonlocal failed
            if task is not None and result.status != "deleted":
                failed += result.status == "failed"  # said as they happen; the summary names them
                progress.update(task, advance=1, current=result.source_id[-40:],
                                description=f"ingesting ({failed} failed)" if failed else "ingesting")

        idx = build_index(settings, emb)  # not ``with``: entering a local index creates it, and a dry run creates nothing
        try:
            return run_ingest(source, index=idx, embedder=emb, options=options, on_plan=on_plan,
                              on_result=on_result, stop=stop)
        finally:
            if progress.live.is_started:  # stopping one never started prints a blank line (before a refusal)
                progress.stop()
            idx.close()


def register(app: typer.Typer) -> None:
    @app.command()
    def ingest(
        path: str = typer.Argument(..., help="Folder or file to ingest, or az://container/prefix for Blob Storage."),
        index: Optional[Path] = typer.Option(None, "--index", help="Index folder (default .ondata or ONDATA_INDEX_DIR)."),
        chunk_size: Optional[int] = typer.Option(None, "--chunk-size", help="Chunk size in tokens (default 512)."),
        overlap: Optional[int] = typer.Option(None, "--overlap", help="Overlap between chunks in tokens (default 51)."),
        embedder: Optional[str] = typer.Option(None, "--embedder", help="local | hashing | azure_openai"),
        include: list[str] = typer.Option([], "--include", help="Only files matching this glob (path or name); repeatable."),
        exclude: list[str] = typer.Option([], "--exclude", help="Leave out files matching this glob; repeatable."),
        follow_symlinks: bool = typer.Option(
            False, "--follow-symlinks", help="Follow symbolic links that stay inside the folder (never out of it)."),
        scope: Optional[str] = typer.Option(
            None, "--scope", help="Name of the source scope (default: the folder's absolute path; Blob: "
                                  "account/container/prefix)."),
        cleanup: Optional[str] = typer.Option(
            None, "--cleanup", help="scoped (default): delete this scope's documents gone from the source; none "
                                    "(default for a single file): add and update only; full: the index mirrors "
                                    "this source, deleting every other document."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Confirm --cleanup full without asking."),
        keep_stale_on_error: bool = typer.Option(
            False, "--keep-stale-on-error",
            help="When a changed document's new version fails, keep its old chunks (default: remove them)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Only show what would be added, updated and deleted."),
        as_json: bool = typer.Option(False, "--json", help="Print the run report as JSON."),
    ) -> None:
        """Parse, chunk, embed and index documents; re-runs only process what changed.

        Ctrl-C (or SIGTERM) stops after the batch in flight, keeps what was written and exits 130;
        a second Ctrl-C exits at once. Run again to continue."""
        from ondata.wiring import check_scope_and_cleanup
        from pipelines.engine import stop_on_signals

        # the default mode is decided once the source is built (a single file: none)
        check_scope_and_cleanup(path, scope=scope, cleanup=cleanup, yes=yes, unattended=False)
        settings = _settings(index, chunk_size=chunk_size, chunk_overlap=overlap, embedder=embedder)
        console = Console(stderr=as_json)
        with stop_on_signals(threading.Event()) as stop, problems_in_summary(not as_json):
            report = ingest_with_progress(settings, path, console, dry_run=dry_run, include=tuple(include),
                                          exclude=tuple(exclude), follow_symlinks=follow_symlinks, scope=scope,
                                          cleanup=cleanup, yes=yes, keep_stale_on_error=keep_stale_on_error,
                                          stop=stop)
        if report.interrupted:
            if as_json:
                print(json.dumps(report.to_dict(), indent=2, default=str))
            typer.echo(report.interrupted_line(), err=True)
            raise typer.Exit(code=130)
        if as_json:
            print(json.dumps(report.to_dict(), indent=2, default=str))
        else:
            print_report(report, console)
        if report.nothing_done:
            raise typer.Exit(code=1)

    index_app = typer.Typer(help="Inspect the index; list and remove its documents by scope; rebuild it.",
                            no_args_is_help=True)
    app.add_typer(index_app, name="index")
    from ondata.commands import rebuild as rebuild_commands

    rebuild_commands.register(index_app)

    @index_app.command("stats")
    def stats(
        index: Optional[Path] = typer.Option(None, "--index", help="Index folder (default .ondata)."),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Chunks, sources, size on disk, the embedding model and the live generation of the local index."""
        from ondata.wiring import open_local_index

        settings = _settings(index)
        idx = open_local_index(settings)
        try:
            st = idx.stats()
            sources = idx.list_sources()
        finally:
            idx.close()
        incomplete = [s.source_id for s in sources if not s.complete]
        data = asdict(st) | {"incomplete_sources": incomplete}
        if as_json:
            print(json.dumps(data, indent=2, default=str))
            return
        from indexers import local_generations as generations

        if data["generation"] == generations.IN_PLACE:  # say what "." is
            data["generation"] = f"{generations.IN_PLACE} ({generations.label(generations.IN_PLACE)})"
        console = Console()
        table = Table(title=f"Index {settings.index_dir}", show_header=False, show_edge=False)
        for k, v in data.items():
            table.add_row(str(k), ", ".join(v) if isinstance(v, list) else str(v))
        console.print(table)

    @index_app.command("sources")
    def sources(
        scope: Optional[str] = typer.Option(None, "--scope", help="Only this scope ('' = documents stored before scopes)."),
        index: Optional[Path] = typer.Option(None, "--index", help="Index folder (default .ondata)."),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """The scopes of the index and their documents: id, version, chunks, groups, last ingested."""
        from ondata.wiring import open_index

        settings = _settings(index)
        with closing(open_index(settings)) as idx:
            records = idx.list_sources(scope=scope)
        if as_json:
            print(json.dumps([asdict(r) for r in records], indent=2))
            return
        console = Console()
        if not records:
            console.print("no documents" + (f" in scope {scope!r}" if scope is not None else ""), highlight=False)
            return
        by_scope: dict[str, list] = {}
        for r in records:
            by_scope.setdefault(r.scope, []).append(r)
        for name, rows in by_scope.items():
            table = Table(title=f"scope {name or '(no scope: stored before scopes)'} - {len(rows)} documents",
                          show_edge=False, title_justify="left")
            for col in ("id", "version", "chunks", "groups", "last ingested"):
                table.add_column(col, justify="right" if col == "chunks" else "left", overflow="fold")
            for r in rows:
                table.add_row(r.source_id, _short_version(r.version), str(r.chunk_count) + ("" if r.complete else " (incomplete)"),
                              ", ".join(r.groups) or "(public)", r.ingested_at or "-")
            console.print(table)

    @index_app.command("remove")
    def remove(
        scope: Optional[str] = typer.Option(None, "--scope", help="Remove every document of this scope."),
        source: Optional[str] = typer.Option(None, "--source", help="Remove this document (with --scope: of that scope only)."),
        index: Optional[Path] = typer.Option(None, "--index", help="Index folder (default .ondata)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be removed."),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Delete exactly the documents of one scope (--scope) or one document (--source)."""
        from indexers.errors import ConfigError
        from ondata.wiring import open_index

        if scope is None and source is None:
            raise ConfigError("say what to remove: --scope NAME or --source ID (see ondata index sources)")
        settings = _settings(index)
        with closing(open_index(settings)) as idx:
            records = [r for r in idx.list_sources(scope=scope) if source is None or r.source_id == source]
            scopes = sorted({r.scope for r in records})
            if source is not None and scope is None and len(scopes) > 1:
                raise ConfigError(f"{source} is in {len(scopes)} scopes ({', '.join(repr(s) for s in scopes)}); "
                                  "say which with --scope")
            if not dry_run:
                for name in scopes:
                    idx.delete_sources([r.source_id for r in records if r.scope == name], scope=name)
        removed = [{"scope": r.scope, "source_id": r.source_id, "chunks": r.chunk_count} for r in records]
        if as_json:
            print(json.dumps({"dry_run": dry_run, "removed": removed}, indent=2))
            return
        verb = "would be removed" if dry_run else "removed"
        for r in records:
            print(f"{verb}: {r.source_id} (scope {r.scope or '(no scope)'}, {r.chunk_count} chunks)")
        print(f"{len(records)} documents {verb}" if records else "nothing to remove: no such document")


def _short_version(version: str) -> str:
    """The content part of a stored version, shortened for a table (the whole version is in --json)."""
    return version.split("|", 1)[0].partition("+meta:")[0][:19]
