"""`ondata ingest` and `ondata index stats`."""

from __future__ import annotations

import json
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
        console.print(
            f"{report.documents_parsed} documents parsed ({report.pages_parsed} pages), "
            f"{report.chunks_written} chunks written, {report.embeddings_computed} embeddings computed, "
            f"{report.embedding_cache_hits} from cache, in {report.seconds:.1f} s "
            f"(parse {st.get('fetch_parse', 0):.1f} s, chunk {st.get('chunk', 0):.1f} s, "
            f"embed {st.get('embed', 0):.1f} s, index {st.get('index', 0):.1f} s)"
        )
    else:
        for r in report.results:
            if r.status not in ("failed", "skipped"):
                console.print(f"  would be {r.status}: {r.source_id}")
    for r in report.skipped:
        console.print(f"[yellow]skipped[/yellow] {r.source_id}: {r.error} [dim]({r.error_type})[/dim]")
    for r in report.failed:
        console.print(f"[red]failed[/red] {r.source_id}: {r.error} [dim]({r.error_type})[/dim]")


def ingest_with_progress(settings: Settings, path: str, console: Console, *, dry_run: bool = False,
                         include: tuple[str, ...] = (), exclude: tuple[str, ...] = (), follow_symlinks: bool = False):
    """Ingest ``path`` into the configured index (through the wiring), showing the plan and a progress bar
    on ``console``; returns the run report. Used by ``ondata ingest`` and ``ondata eval run --docs``."""
    from ondata.wiring import build_embedder, build_index, build_source
    from pipelines.chunking import ChunkingConfig
    from pipelines.ingest import IngestOptions, ingest as run_ingest

    source = build_source(settings, path, include=include, exclude=exclude, follow_symlinks=follow_symlinks)
    emb = build_embedder(settings, cached=not dry_run)  # a dry run creates no cache file
    idx = build_index(settings, emb)
    options = IngestOptions(
        chunking=ChunkingConfig(chunk_size=settings.chunk_size, overlap=settings.chunk_overlap,
                                page_bounded=settings.chunk_page_bounded),
        max_bytes=settings.max_document_bytes,
        dry_run=dry_run,
    )
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"), console=console, transient=False,
    )
    task = None

    def on_plan(plan) -> None:
        nonlocal task
        s = plan.summary()
        problems = f", {len(plan.problems)} skipped or failed" if plan.problems else ""
        console.print(
            f"{plan.listed} documents listed: {s['added']} new, {s['changed']} changed, "
            f"{s['deleted']} deleted, {s['unchanged']} unchanged{problems}"
        )
        if not dry_run:
            task = progress.add_task("ingesting", total=len(plan.to_process), current="")
            progress.start()

    def on_result(result) -> None:
        if task is not None and result.status != "deleted":
            progress.update(task, advance=1, current=result.source_id[-40:])

    try:
        return run_ingest(source, index=idx, embedder=emb, options=options, on_plan=on_plan, on_result=on_result)
    finally:
        progress.stop()
        close = getattr(idx, "close", None)
        if callable(close):
            close()


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
        dry_run: bool = typer.Option(False, "--dry-run", help="Only show what would be added, updated and deleted."),
        as_json: bool = typer.Option(False, "--json", help="Print the run report as JSON."),
    ) -> None:
        """Parse, chunk, embed and index documents; re-runs only process what changed."""
        settings = _settings(index, chunk_size=chunk_size, chunk_overlap=overlap, embedder=embedder)
        console = Console(stderr=as_json)
        report = ingest_with_progress(settings, path, console, dry_run=dry_run, include=tuple(include),
                                      exclude=tuple(exclude), follow_symlinks=follow_symlinks)
        if as_json:
            print(json.dumps(report.to_dict(), indent=2, default=str))
        else:
            print_report(report, console)
        if report.nothing_done:
            raise typer.Exit(code=1)

    index_app = typer.Typer(help="Inspect the index.", no_args_is_help=True)
    app.add_typer(index_app, name="index")

    @index_app.command("stats")
    def stats(
        index: Optional[Path] = typer.Option(None, "--index", help="Index folder (default .ondata)."),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Chunks, sources, size on disk and the embedding model of the local index."""
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
        console = Console()
        table = Table(title=f"Index {settings.index_dir}", show_header=False, show_edge=False)
        for k, v in data.items():
            table.add_row(str(k), ", ".join(v) if isinstance(v, list) else str(v))
        console.print(table)
