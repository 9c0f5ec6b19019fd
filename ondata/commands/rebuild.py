"""`ondata index rebuild`, `ondata index drop-old` (and, on Azure, `ondata index alias`): a new index built
beside the live one, then swapped in.

A rebuild (for a new embedding model or new chunking settings) re-reads exactly the scopes the live
index recorded (``SearchIndex.list_scopes``: a folder's resolved root, or a Blob container and
prefix, with their globs; never anything else) through the normal ingest flow (``pipelines.ingest``:
the one run engine, sidecars and Blob metadata giving the groups as in any ingest) into a new index,
and only when it is complete makes it the live one:

- local profile: it builds in ``<index>.rebuild-<ts>``, moves it to ``<index>/gen-<ts>`` and swaps the
  ``CURRENT`` pointer atomically (``indexers.local_generations``); every reader (``ondata serve``
  included) follows the pointer on its next operation;
- azure profile: ``AZURE_SEARCH_INDEX`` names an index alias; it builds ``<base>-v<N+1>`` and points
  the alias at it (readers of the alias switch at once).

The old index is kept until ``--drop-old`` (or ``ondata index drop-old``), which never deletes the
live one. ``--dry-run`` says what would happen and writes nothing. Refused, one line and exit 2,
before anything is built: an unknown index, a rebuild already running (lock), nothing recorded to
rebuild from, documents of a scope with no recorded source (they would be lost), a recorded folder
that no longer exists, a Blob scope of another storage account.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from indexers.errors import ConfigError, OndataError
from indexers.records import ScopeRecord
from ondata.settings import Settings

log = logging.getLogger(__name__)


class NothingToRebuild(ConfigError):
    """The index records no source to rebuild from (or some of its documents have none)."""


@dataclass
class RebuildPlan:
    """What a rebuild does: the index named, its live generation (or Azure index) and the new one, the
    scopes re-read (with their documents in the live index), the recorded scopes left out (no
    documents any more) and the settings that change."""

    index: str
    live: str
    new: str
    scopes: list[ScopeRecord]
    documents: dict[str, int]
    skipped: list[ScopeRecord] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    #: how the text output names ``live`` and ``new`` (local: ``local_generations.label``, which spells out ``.``)
    live_label: str = ""
    new_label: str = ""

    def lines(self) -> list[str]:
        out = [f"index {self.index}: live: {self.live_label or self.live}; new: {self.new_label or self.new}"]
        by_scope: dict[str, list[ScopeRecord]] = {}
        for r in self.scopes:  # a scope may have several sources (a folder, and a file of it ingested alone)
            by_scope.setdefault(r.scope, []).append(r)
        for scope, records in by_scope.items():
            out.append(f"  scope {scope} ({_count(self.documents.get(scope, 0), 'document')}), re-read from:")
            for r in records:
                globs = "" if r.include == ("*",) and not r.exclude else \
                    f" (include {', '.join(r.include)}{'; exclude ' + ', '.join(r.exclude) if r.exclude else ''})"
                kind = "file" if r.kind == "folder" and os.path.isfile(r.root) else r.kind
                out.append(f"    {kind} {r.where()}{globs}")
        for r in self.skipped:
            out.append(f"  scope {r.scope}: {r.kind} {r.where()} holds no documents any more; not rebuilt")
        out += [f"  {c}" for c in self.changes] or ["  settings unchanged (the new index is built the same way)"]
        return out

    def to_dict(self) -> dict:
        return {"index": self.index, "live": self.live, "new": self.new, "changes": self.changes,
                "scopes": [r.to_dict() | {"documents": self.documents.get(r.scope, 0)} for r in self.scopes],
                "skipped": [r.to_dict() for r in self.skipped]}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _chunking(record: ScopeRecord) -> dict:
    try:
        value = json.loads(record.chunking or "{}")
    except ValueError:
        value = {}
    return value if isinstance(value, dict) else {}


def scope_settings(base: Settings, record: ScopeRecord, *, chunk_size: int | None, overlap: int | None) -> Settings:
    """The settings a scope is rebuilt with: its recorded chunking, overridden by the flags given
    (checked as ``ChunkingConfig`` checks them: ``ConfigError`` naming the scope)."""
    from pipelines.chunking import ChunkingConfig

    old = _chunking(record)
    values = {"chunk_size": chunk_size if chunk_size is not None else old.get("chunk_size", base.chunk_size),
              "chunk_overlap": overlap if overlap is not None else old.get("overlap", base.chunk_overlap),
              "chunk_page_bounded": old.get("page_bounded", base.chunk_page_bounded)}
    try:
        ChunkingConfig(chunk_size=values["chunk_size"], overlap=values["chunk_overlap"],
                       page_bounded=values["chunk_page_bounded"])
    except (TypeError, ValueError, OndataError) as exc:
        hint = "; give --overlap too" if chunk_size is not None and overlap is None else ""
        raise ConfigError(f"scope {record.scope}: invalid chunking settings: {getattr(exc, 'message', exc)}{hint}") from None
    return base.model_copy(update=values)


def _changes(scopes: list[ScopeRecord], live_model: str, new_model: str, settings_of) -> list[str]:
    out = []
    if live_model != new_model:
        out.append(f"embedding model: {live_model} -> {new_model}")
    for r in scopes:
        old, new = _chunking(r), settings_of(r)
        was = (old.get("chunk_size"), old.get("overlap"))
        now = (new.chunk_size, new.chunk_overlap)
        if was != now:
            out.append(f"chunking of scope {r.scope}: chunk size {was[0]} -> {now[0]}, overlap {was[1]} -> {now[1]}")
    return out


def _check_scopes(index_name: str, scopes: list[ScopeRecord], sources: list) -> tuple[list[ScopeRecord], list[ScopeRecord], dict[str, int]]:
    """(scopes to rebuild, recorded scopes holding no documents, documents per scope); ``NothingToRebuild``
    when nothing is recorded, or when documents of a scope have no recorded source."""
    documents: dict[str, int] = {}
    for s in sources:
        documents[s.scope] = documents.get(s.scope, 0) + 1
    if not scopes:
        raise NothingToRebuild(
            f"the index {index_name} records no source to rebuild from (it was ingested before ondata recorded "
            "them, or it is empty); ingest its folders once more with `ondata ingest`, then rebuild")
    recorded = {r.scope for r in scopes}
    orphans = sorted(s for s in documents if s not in recorded)
    if orphans:
        shown = ", ".join(f"{s or '(no scope)'} ({documents[s]} documents)" for s in orphans[:5])
        raise NothingToRebuild(
            f"the index {index_name} holds documents with no recorded source, which a rebuild would lose: {shown}; "
            "ingest them again (that records their source) or remove them with `ondata index remove --scope`")
    live = [r for r in scopes if documents.get(r.scope)]
    for r in live:
        if r.kind == "folder" and not os.path.lexists(r.root):
            raise ConfigError(f"scope {r.scope}: its folder {r.root} no longer exists; nothing rebuilt "
                              f"(remove the scope with `ondata index remove --scope {r.scope!r}` first)")
    return live, [r for r in scopes if not documents.get(r.scope)], documents


def _check_source(record: ScopeRecord, source) -> None:
    """A Blob scope must be of the configured storage account (a folder's existence is checked by the plan)."""
    if record.kind == "blob" and record.account:
        account = getattr(source.container_client, "account_name", None)
        if account and account != record.account:
            raise ConfigError(f"scope {record.scope}: it was ingested from storage account {record.account}, but the "
                              f"configured account is {account}; nothing rebuilt")


def build_settings(settings: Settings, embedder: Optional[str]) -> Settings:
    """The settings of the new index: ``--embedder`` when given, else the configured one, else the live index's own
    (``ondata.wiring.build_embedder``), with the embedding cache of the live index (keyed by model: shared)."""
    from ondata.wiring import build_embedder

    values = {"embedding_cache": settings.embedding_cache_path}
    if embedder is not None:
        values["embedder"] = embedder
    else:
        live = build_embedder(settings, cached=False)
        if settings.embedder is None and live.model_id.startswith("hashing"):
            values |= {"embedder": "hashing", "hashing_dimensions": live.dimensions}
    return settings.model_copy(update=values)


def _sources(plan: RebuildPlan, settings: Settings, *, chunk_size, overlap) -> list[tuple[ScopeRecord, Settings, object]]:
    """(record, its settings, its source) of every scope of the plan, built and checked before anything is written."""
    from ondata.wiring import build_source

    out = []
    for record in plan.scopes:
        s = scope_settings(settings, record, chunk_size=chunk_size, overlap=overlap)
        source = build_source(s, record.where(), include=record.include, exclude=record.exclude,
                              follow_symlinks=record.follow_symlinks, scope=record.scope)
        _check_source(record, source)
        out.append((record, s, source))
    return out


def _fill(plan: RebuildPlan, target: Settings, emb, console: Console, result: dict, *, chunk_size, overlap,
          stop: threading.Event | None, discard) -> bool:
    """Create the new index of ``target`` settings and ingest every scope of the plan into it, through the normal
    ingest flow (the run engine); records the counts in ``result``. When it fails or is interrupted, the
    unfinished new index is removed (``discard()``) and it returns False (``result["interrupted"]``)."""
    from ondata.commands.ingest import print_report
    from ondata.wiring import build_index, ingest_options
    from pipelines.ingest import ingest

    sources = _sources(plan, target, chunk_size=chunk_size, overlap=overlap)
    reports: list = []
    complete = False
    index = build_index(target, emb)
    try:
        index.ensure()
        for record, s, source in sources:
            # the new index starts empty: "full" has nothing of other scopes to delete (and must not delete
            # the scopes rebuilt before this one)
            cleanup = "scoped" if record.cleanup == "full" else record.cleanup
            console.print(f"rebuilding scope {record.scope} from {record.where()}", highlight=False, markup=False)
            report = ingest(source, index=index, embedder=emb, options=ingest_options(s, cleanup=cleanup), stop=stop)
            print_report(report, console)
            reports.append(report)
            if report.interrupted:
                break
        complete = len(reports) == len(sources) and not any(r.interrupted for r in reports)
    finally:
        index.close()
        if not complete:
            try:
                discard()
            except Exception as exc:  # noqa: BLE001 - the first failure is the one to report
                log.warning("could not remove the unfinished new index: %s", exc)
    result["documents_written"] = sum(r.written for r in reports)
    result["failed"] = [f.describe() for r in reports for f in r.failed]
    if not complete:
        result["interrupted"] = True
    return complete


# ---------------------------------------------------------------- local


def plan_local(settings: Settings, new_settings: Settings, *, chunk_size, overlap, when: str) -> RebuildPlan:
    from indexers import local_generations as generations
    from ondata.wiring import build_embedder, open_local_index

    root = Path(settings.index_dir)
    if not generations.has_index(root):
        raise ConfigError(f"no index at {root}: nothing to rebuild (create it with `ondata ingest PATH --index {root}`)")
    busy = generations.busy_error(root)
    if busy is not None:
        raise busy
    idx = open_local_index(settings)
    try:
        recorded, sources, live_model = idx.list_scopes(), idx.list_sources(), f"{idx.model_id}/{idx.dimensions}"
    finally:
        idx.close()
    scopes, skipped, documents = _check_scopes(str(root), recorded, sources)
    new_emb = build_embedder(new_settings, cached=False)
    changes = _changes(scopes, live_model, f"{new_emb.model_id}/{new_emb.dimensions}",
                       lambda r: scope_settings(new_settings, r, chunk_size=chunk_size, overlap=overlap))
    live = generations.live_name(root)
    return RebuildPlan(index=str(root), live=live, new=f"gen-{when}", scopes=scopes, documents=documents,
                       skipped=skipped, changes=changes, live_label=generations.label(live), new_label=generations.label(f"gen-{when}"))


def rebuild_local(settings: Settings, new_settings: Settings, console: Console, *, chunk_size, overlap,
                  dry_run: bool, drop_old: bool, stop: threading.Event | None) -> dict:
    from indexers import local_generations as generations
    from ondata.wiring import build_embedder

    root = Path(settings.index_dir)
    when = generations.stamp()
    plan = plan_local(settings, new_settings, chunk_size=chunk_size, overlap=overlap, when=when)
    build = generations.build_dir(root, when)
    result = plan.to_dict() | {"dry_run": dry_run, "build": str(build), "swapped": False, "dropped": []}
    if dry_run:
        for line in plan.lines():
            console.print(line, highlight=False, markup=False)
        console.print(f"would build into {build}, then make it the live generation of {root}; the old one is "
                      + ("dropped" if drop_old else "kept (drop it later with --drop-old)"), highlight=False, markup=False)
        if drop_old:
            result["dropped"] = generations.drop_old(root, dry_run=True) + [f"{generations.label(plan.live)} (once replaced)"]
        return result
    with generations.rebuild_lock(root):
        for line in plan.lines():
            console.print(line, highlight=False, markup=False)
        emb = build_embedder(new_settings)
        if not _fill(plan, new_settings.model_copy(update={"index_dir": build}), emb, console, result,
                     chunk_size=chunk_size, overlap=overlap, stop=stop,
                     discard=lambda: shutil.rmtree(build, ignore_errors=True)):
            console.print(f"rebuild interrupted: the live index is unchanged (the unfinished {build} was removed)",
                          highlight=False, markup=False)
            return result
        result["live"] = generations.install(root, build, when)
        result["swapped"] = True
        console.print(f"the index at {root} now serves generation {result['live']} (was {generations.label(plan.live)})",
                      highlight=False, markup=False)
        if drop_old:
            result["dropped"] = generations.drop_old(root)
    return result


def drop_local(settings: Settings, *, dry_run: bool) -> list[str]:
    from indexers import local_generations as generations

    root = Path(settings.index_dir)
    if not generations.has_index(root):
        raise ConfigError(f"no index at {root}")
    if dry_run:
        return generations.drop_old(root, dry_run=True)
    with generations.rebuild_lock(root):
        return generations.drop_old(root)


# ---------------------------------------------------------------- Azure AI Search


def _next_name(live: str) -> str:
    import re

    m = re.match(r"^(.*)-v(\d+)$", live)
    base, n = (m.group(1), int(m.group(2))) if m else (live, 1)
    return f"{base}-v{n + 1}"


def _old_versions(alias: str, live: str, names: list[str]) -> list[str]:
    """The indexes a rebuild of ``alias`` made or replaced (``<base>-v<N>``), except the live one."""
    import re

    m = re.match(r"^(.*)-v\d+$", live)
    base = m.group(1) if m else live
    pattern = re.compile(rf"^{re.escape(base)}-v\d+$")
    return [n for n in names if n != live and (pattern.match(n) or n == base) and n != alias]


def _azure_live(settings: Settings):
    """(the alias client, the index it maps to); ConfigError for an unknown name or a plain index."""
    from ondata.wiring import build_embedder, build_index

    alias = build_index(settings, build_embedder(settings, cached=False))
    live = alias.alias_target()
    if live is None:
        if alias.index_exists():
            raise ConfigError(
                f"Azure AI Search index {settings.azure_search_index!r} is an index, not an alias, so its readers "
                "cannot be switched atomically (an alias cannot take an existing index's name): create an alias "
                f"that maps to it (`ondata index alias NAME --to {settings.azure_search_index}`), point "
                "AZURE_SEARCH_INDEX (and your readers) at the alias, then rebuild")
        raise ConfigError(f"no Azure AI Search index or alias {settings.azure_search_index!r} at "
                          f"{settings.azure_search_endpoint}: nothing to rebuild")
    return alias, live


def rebuild_azure(settings: Settings, new_settings: Settings, console: Console, *, chunk_size, overlap,
                  dry_run: bool, drop_old: bool, stop: threading.Event | None) -> dict:
    """Rebuild the alias's index into ``<base>-v<N+1>`` and swap the alias, holding the live index's rebuild
    lock (``AzureSearchIndex.take_rebuild_lock``) throughout; a dry run only checks that nobody holds it."""
    from ondata.wiring import build_embedder, build_index

    alias, live = _azure_live(settings)
    live_index = build_index(settings.model_copy(update={"azure_search_index": live}), build_embedder(settings, cached=False))
    new = _next_name(live)
    token = None
    if dry_run:
        busy = live_index.rebuild_lock_error()
        if busy is not None:
            raise busy
    else:
        token = live_index.take_rebuild_lock(_holder("rebuild"), building=new)
    try:
        return _rebuild_azure(settings, new_settings, console, alias=alias, live=live, live_index=live_index, new=new,
                              chunk_size=chunk_size, overlap=overlap, dry_run=dry_run, drop_old=drop_old, stop=stop)
    finally:
        if token is not None:
            live_index.release_rebuild_lock(token)


def _holder(command: str) -> str:
    import socket

    return f"ondata index {command}, pid {os.getpid()} on {socket.gethostname()}"


def _rebuild_azure(settings: Settings, new_settings: Settings, console: Console, *, alias, live: str, live_index,
                   new: str, chunk_size, overlap, dry_run: bool, drop_old: bool, stop: threading.Event | None) -> dict:
    from ondata.wiring import build_embedder

    recorded, sources = live_index.list_scopes(), live_index.list_sources()
    names = alias.list_index_names()
    if new in names:
        raise ConfigError(f"Azure AI Search index {new!r} already exists (a rebuild in progress, or one that stopped): "
                          "wait for it, or delete it with `ondata index drop-old`")
    scopes, skipped, documents = _check_scopes(f"{settings.azure_search_index!r} ({live})", recorded, sources)
    emb = build_embedder(new_settings, cached=False)
    changes = _changes(scopes, f"{live_index.model_id}/{live_index.dimensions}", f"{emb.model_id}/{emb.dimensions}",
                       lambda r: scope_settings(new_settings, r, chunk_size=chunk_size, overlap=overlap))
    plan = RebuildPlan(index=settings.azure_search_index, live=live, new=new, scopes=scopes, documents=documents,
                       skipped=skipped, changes=changes)
    result = plan.to_dict() | {"dry_run": dry_run, "swapped": False, "dropped": []}
    for line in plan.lines():
        console.print(line, highlight=False, markup=False)
    if dry_run:
        console.print(f"would build index {new}, then point alias {plan.index} at it; {live} is "
                      + ("deleted" if drop_old else "kept (delete it later with --drop-old)"), highlight=False, markup=False)
        result["dropped"] = [f"index {n}" for n in _old_versions(plan.index, live, names) + [live]] if drop_old else []
        return result
    if not _fill(plan, new_settings.model_copy(update={"azure_search_index": new}), emb, console, result,
                 chunk_size=chunk_size, overlap=overlap, stop=stop, discard=lambda: alias.delete_index_named(new)):
        console.print(f"rebuild interrupted: alias {plan.index} still maps to {live} (the unfinished index {new} "
                      "was deleted)", highlight=False, markup=False)
        return result
    alias.point_alias(new)
    result |= {"live": new, "swapped": True}
    console.print(f"alias {plan.index} now maps to index {new} (was {live})", highlight=False, markup=False)
    if drop_old:
        result["dropped"] = drop_azure(settings, dry_run=False)
    return result


def drop_azure(settings: Settings, *, dry_run: bool) -> list[str]:
    """Delete the indexes earlier rebuilds of the alias made or replaced, never the one it maps to."""
    from ondata.wiring import build_embedder, build_index

    alias, live = _azure_live(settings)
    doomed = _old_versions(settings.azure_search_index, live, alias.list_index_names())
    if not dry_run and doomed:  # under the live index's rebuild lock: never the index a running rebuild fills
        live_index = build_index(settings.model_copy(update={"azure_search_index": live}), build_embedder(settings, cached=False))
        token = live_index.take_rebuild_lock(_holder("drop-old"), building="(none: deleting old indexes)")
        try:
            for name in doomed:
                if name == alias.alias_target():  # re-read: never the live one
                    raise ConfigError(f"index {name!r} is the live index of alias {settings.azure_search_index!r}; not deleted")
                alias.delete_index_named(name)
        finally:
            live_index.release_rebuild_lock(token)
    return [f"index {n}" for n in doomed]


def alias_azure(settings: Settings, alias: str, index: str) -> str:
    """Point the Azure AI Search alias ``alias`` at the existing index ``index`` (created when missing): the
    one-time step that lets readers of an index created without an alias be switched by later rebuilds."""
    from ondata.wiring import build_embedder, build_index

    if settings.profile != "azure":
        raise ConfigError("`ondata index alias` is for the azure profile (ONDATA_PROFILE=azure); a local index "
                          "switches through its CURRENT pointer")
    named = build_index(settings.model_copy(update={"azure_search_index": alias}), build_embedder(settings, cached=False))
    if not named.index_exists(index):
        raise ConfigError(f"no Azure AI Search index {index!r} at {settings.azure_search_endpoint}")
    if alias in named.list_index_names():
        raise ConfigError(f"{alias!r} is an index: an alias cannot take an index's name; choose another alias name")
    before = named.alias_target()
    named.point_alias(index)
    return f"alias {alias} now maps to index {index}" + (f" (was {before})" if before and before != index else "")


# ---------------------------------------------------------------- commands


def register(index_app: typer.Typer) -> None:
    @index_app.command("rebuild")
    def rebuild(
        index: Optional[Path] = typer.Option(None, "--index", help="Index folder (default .ondata); azure profile: "
                                                                   "AZURE_SEARCH_INDEX names an alias."),
        embedder: Optional[str] = typer.Option(None, "--embedder", help="local | hashing | azure_openai (default: "
                                                                        "the configured one, else the index's own)."),
        chunk_size: Optional[int] = typer.Option(None, "--chunk-size", help="New chunk size in tokens (default: as recorded)."),
        overlap: Optional[int] = typer.Option(None, "--overlap", help="New overlap in tokens (default: as recorded)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be rebuilt and what changes."),
        drop_old: bool = typer.Option(False, "--drop-old", help="After the swap, delete the index generations it replaced."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Build a new index beside the live one from its recorded sources (new embedding model or chunking
        settings), then swap it in atomically; readers never see a half-built index. Ctrl-C stops the build
        and leaves the live index as it was."""
        from pipelines.engine import stop_on_signals

        settings = Settings(**({"index_dir": index} if index is not None else {}))
        new_settings = build_settings(settings, embedder)
        console = Console(stderr=as_json)
        run = rebuild_azure if settings.profile == "azure" else rebuild_local
        with stop_on_signals(threading.Event()) as stop:
            result = run(settings, new_settings, console, chunk_size=chunk_size, overlap=overlap, dry_run=dry_run,
                         drop_old=drop_old, stop=stop)
        if as_json:
            print(json.dumps(result, indent=2, default=str))
        else:
            for line in result.get("dropped", []):
                console.print(("would delete " if dry_run else "deleted ") + line, highlight=False, markup=False)
        if result.get("interrupted"):
            raise typer.Exit(code=130)

    @index_app.command("alias")
    def alias_command(
        name: str = typer.Argument(..., help="The alias readers and AZURE_SEARCH_INDEX name."),
        to: str = typer.Option(..., "--to", help="The existing index it maps to."),
    ) -> None:
        """Azure AI Search: point alias NAME at index --to (once, for an index created without an alias;
        `ondata index rebuild` switches it afterwards)."""
        print(alias_azure(Settings(), name, to))

    @index_app.command("drop-old")
    def drop_old_command(
        index: Optional[Path] = typer.Option(None, "--index", help="Index folder (default .ondata)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be deleted."),
    ) -> None:
        """Delete the index generations earlier rebuilds replaced (and unfinished builds); never the live one."""
        settings = Settings(**({"index_dir": index} if index is not None else {}))
        doomed = (drop_azure if settings.profile == "azure" else drop_local)(settings, dry_run=dry_run)
        for line in doomed:
            print(("would delete " if dry_run else "deleted ") + line)
        if not doomed:
            print("nothing to delete: only the live generation is left")
