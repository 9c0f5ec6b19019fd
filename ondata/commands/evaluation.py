"""`ondata eval run | report | compare`: evaluate retrieval and answers on a QA set, report, compare runs.

``--fail-under METRIC=VALUE`` (repeatable) makes any of them exit 1 with a one-line reason when a
metric misses its threshold (for CI gates); ``eval compare`` also accepts ``delta:METRIC=VALUE``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, List, Optional

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from indexers.records import ALL_GROUPS
from ondata.commands.callers import ALL_GROUPS_HELP, GROUP_HELP, caller_groups
from ondata.settings import Settings

log = logging.getLogger(__name__)


def settings_without_secrets(settings: Settings) -> dict[str, Any]:
    """The settings as JSON-able values, secrets left out (not even masked)."""
    data = settings.model_dump(mode="json")
    for name in type(settings).model_fields:
        if isinstance(getattr(settings, name), SecretStr) or "key" in name or "token" in name or "connection_string" in name:
            data.pop(name, None)
    return data


def _gates(values: list[str]):
    from eval.gates import parse_gate

    return [parse_gate(v) for v in values or []]


def _enforce(gates, metrics, console: Console, *, deltas=None) -> None:
    from eval.gates import check_gates

    failures = check_gates(gates, metrics, deltas=deltas)
    if failures:
        typer.secho("fail-under: " + "; ".join(failures), fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)
    if gates:
        console.print(f"[green]all {len(gates)} gate(s) passed[/green]")


def print_summary(summary: dict, console: Console) -> None:
    from eval.report import _fmt
    from eval.scoring import headline_keys

    table = Table(title=f"Evaluation: {summary.get('run', '')}", show_edge=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("key", style="dim")
    for key, (label, _, _) in headline_keys(int(summary.get("k", 5))).items():
        table.add_row(label, _fmt(summary["metrics"].get(key), key), key)
    console.print(table)
    c = summary["counts"]
    console.print(f"{c['questions']} questions, {c['answered']} answered, {c['claims']} answer sentences judged")
    for name, a in (summary.get("scorer_agreement") or {}).items():
        kappa = "n/a" if a["kappa"] is None else f"{a['kappa']:.3f}"
        share = "n/a" if a["agreement"] is None else f"{a['agreement']:.1%}"
        console.print(f"agreement with {name}: Cohen's kappa {kappa}, same verdict on {share} of {a['claims']} claims "
                      f"({a['failures']} {name} failures)")


def build_scorer(kind: str, settings: Settings):
    """The groundedness scorer ``kind``: local | llm | both (the local scorer's verdicts count, the LLM judge's
    ride along for their agreement; without an Azure OpenAI deployment configured, the local scorer alone)."""
    from eval.groundedness import LLMJudgeScorer, LocalGroundednessScorer, PairedScorer
    from indexers.errors import ConfigError

    if kind == "both":
        local = build_scorer("local", settings)
        try:
            judge = build_scorer("llm", settings)
        except ConfigError as exc:
            log.warning("--scorer both: %s; scoring with the local scorer only, no agreement to report", exc)
            return local
        return PairedScorer(local, judge)
    if kind == "local":
        from ondata.wiring import build_embedder

        # the calibrated MiniLM, through the persistent embedding cache (source windows repeat across questions)
        return LocalGroundednessScorer(embedder=build_embedder(settings.model_copy(update={"embedder": "local"})))
    if kind == "llm":
        from ondata.wiring import build_chat_model

        judge = build_chat_model(settings.model_copy(update={"chat": "azure_openai"}))
        return LLMJudgeScorer(judge)
    raise typer.BadParameter(f"unknown scorer {kind!r}; use local, llm or both", param_hint="--scorer")


def scorer_version(scorer) -> str:
    """What identifies the scorer's judgements: the local scorer's pair model and fit time, or the judge's prompt and model."""
    if hasattr(scorer, "primary"):
        return f"{scorer_version(scorer.primary)}+{scorer_version(scorer.secondary)}"
    version = getattr(scorer, "version", None)
    if isinstance(version, str):
        return f"{scorer.name}:{version}"
    return f"{scorer.name}:{getattr(scorer, 'prompt_version', '')}:{getattr(getattr(scorer, 'judge', None), 'model_id', '')}"


def scorer_card(scorer) -> dict[str, Any]:
    """The scorer's report card (``eval.scorer_card``): its name, version and measured accuracy per domain."""
    card = getattr(scorer, "card", None)
    out = dict(card()) if callable(card) else {"name": scorer.name, "measured": {}}
    out["version"] = scorer_version(scorer)
    return out


def register(app: typer.Typer) -> None:
    eval_app = typer.Typer(help="Evaluate retrieval, citations and groundedness on a QA set; report and compare runs.",
                           no_args_is_help=True)
    app.add_typer(eval_app, name="eval")

    @eval_app.command("run")
    def run(
        dataset: Path = typer.Option(..., "--dataset", help="QA set (JSONL: question, truth with [file#page=N] citations)."),
        out: Path = typer.Option(..., "--out", help="Run folder, e.g. runs/NAME (re-running resumes it)."),
        profile: Optional[str] = typer.Option(None, "--profile", help="local | azure (default ONDATA_PROFILE or local)."),
        index: Optional[Path] = typer.Option(None, "--index", help="Local index folder (default .ondata)."),
        docs: Optional[str] = typer.Option(None, "--docs", help="Ingest this folder into the index first."),
        top: int = typer.Option(5, "--top", min=1, help="Hits retrieved and given to the model; k of recall@k."),
        strictness: int = typer.Option(3, "--strictness", min=1, max=5, help="Relevance filter strictness 1-5."),
        scorer: str = typer.Option("local", "--scorer", help="Groundedness scorer: local (offline) | llm (Azure OpenAI judge) | both (local, plus the judge's agreement)."),
        embedder: Optional[str] = typer.Option(None, "--embedder", help="local | hashing | azure_openai"),
        fail_under: List[str] = typer.Option([], "--fail-under", help="METRIC=VALUE gate (repeatable)."),
        report: bool = typer.Option(True, "--report/--no-report", help="Also write report.md and report.html."),
        group: Optional[List[str]] = typer.Option(None, "--group", help=GROUP_HELP + " Applies to rows without 'groups'."),
        all_groups: bool = typer.Option(False, "--all-groups", help=ALL_GROUPS_HELP + " Applies to rows without 'groups'."),
        allow_ungraded: bool = typer.Option(False, "--allow-ungraded",
                                            help="Accept rows with no gold citation and no 'answerable' flag (scored "
                                                 "as answerable, without retrieval gold) instead of refusing the dataset."),
    ) -> None:
        """Answer every question of DATASET, score it and store the run in OUT (resumable)."""
        from eval.datasets import load_qa
        from eval.runner import make_answer_fn, make_config, run_evaluation
        from ondata.commands.retrieval import build_retriever
        from ondata.wiring import build_answerer

        gates = _gates(fail_under)
        from eval.gates import validate_gates

        validate_gates(gates, k=top)
        groups = caller_groups(group, all_groups)
        console = Console(stderr=True)
        values: dict[str, Any] = {k: v for k, v in {"profile": profile, "index_dir": index, "embedder": embedder}.items() if v}
        settings = Settings(**values)
        items = load_qa(dataset, allow_ungraded=allow_ungraded)
        ungraded = [i.line for i in items if i.ungraded]
        if ungraded:
            from eval.datasets import describe_lines

            console.print(f"[yellow]warning:[/yellow] {len(ungraded)} of {len(items)} rows have no gold citation and no "
                          f"'answerable' flag ({describe_lines(ungraded)}); scored as answerable without retrieval gold")
        if docs:
            _ingest(settings, docs, console)
        retriever = build_retriever(settings)
        answerer = build_answerer(settings, embedder=retriever.embedder)
        score = build_scorer(scorer, settings)
        config = make_config(dataset=dataset, top=top, strictness=strictness, scorer=scorer,
                             settings=settings_without_secrets(settings),
                             extra={"groups": "ALL_GROUPS" if groups is ALL_GROUPS else list(groups),
                                    "chat_model": answerer.model_id,
                                    "embedder": retriever.embedder.model_id,
                                    "scorer_version": scorer_version(score), "scorer_card": scorer_card(score)})
        progress = Progress(TextColumn("[bold]evaluating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TimeRemainingColumn(), TextColumn("{task.fields[current]}"), console=console)
        task = progress.add_task("eval", total=len(items), current="")

        def on_progress(done: int, total: int, item) -> None:
            progress.update(task, completed=done, current=(item.question[:50] if item else ""))

        with progress:
            summary = run_evaluation(items, answer_fn=make_answer_fn(retriever=retriever, answerer=answerer, top=top,
                                                                     strictness=strictness, groups=groups),
                                     scorer=score, out=out, config=config, k=top, on_progress=on_progress)
        retriever.index.close()
        out_console = Console()
        print_summary(summary, out_console)
        if report:
            from eval.report import write_report

            write_report(out)
            out_console.print(f"report: {out / 'report.html'}")
        _enforce(gates, summary["metrics"], out_console)

    @eval_app.command("rescore")
    def rescore_cmd(
        run: Path = typer.Argument(..., help="Run folder written by `ondata eval run`."),
        scorer: str = typer.Option("local", "--scorer", help="local (offline) | llm (Azure OpenAI judge) | both (local, plus the judge's agreement)."),
        index: Optional[Path] = typer.Option(None, "--index", help="Index folder (for the embedding cache)."),
        fail_under: List[str] = typer.Option([], "--fail-under", help="METRIC=VALUE gate (repeatable)."),
    ) -> None:
        """Re-judge the stored answers of RUN (claims, citations, groundedness) and rewrite its results and summary."""
        from eval.runner import rescore

        gates = _gates(fail_under)
        settings = Settings(**({"index_dir": index} if index else {}))
        score = build_scorer(scorer, settings)
        summary = rescore(run, scorer=score, config_updates={"scorer": scorer, "scorer_version": scorer_version(score),
                                                         "scorer_card": scorer_card(score)})
        console = Console()
        print_summary(summary, console)
        _enforce(gates, summary["metrics"], console)

    @eval_app.command("report")
    def report_cmd(
        run: Path = typer.Argument(..., help="Run folder written by `ondata eval run`."),
        fail_under: List[str] = typer.Option([], "--fail-under", help="METRIC=VALUE gate (repeatable)."),
    ) -> None:
        """Write report.md and a self-contained report.html into RUN."""
        from eval.report import write_report

        gates = _gates(fail_under)
        summary = write_report(run)
        console = Console()
        print_summary(summary, console)
        console.print(f"wrote {run / 'report.md'} and {run / 'report.html'}")
        _enforce(gates, summary["metrics"], console)

    @eval_app.command("compare")
    def compare_cmd(
        run_a: Path = typer.Argument(..., help="Baseline run folder (A)."),
        run_b: Path = typer.Argument(..., help="Candidate run folder (B)."),
        fail_under: List[str] = typer.Option([], "--fail-under",
                                             help="METRIC=VALUE on B, or delta:METRIC=VALUE on B - A (repeatable)."),
        show: int = typer.Option(10, "--show", help="How many changed questions to list."),
        html_out: Optional[Path] = typer.Option(None, "--html", help="Also write the comparison as a self-contained HTML page."),
        as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    ) -> None:
        """Metric deltas B - A with paired bootstrap 95% confidence intervals, and the questions that changed."""
        import json

        from eval.compare import compare_runs
        from eval.gates import validate_gates
        from eval.scoring import summarize
        from eval.store import RunStore

        gates = _gates(fail_under)
        a, b = RunStore(run_a), RunStore(run_b)
        config_a, config_b = a.read_config(), b.read_config()
        result = compare_runs(a.read_results(), b.read_results(), config_a=config_a, config_b=config_b)
        validate_gates([g for g in gates if g.delta], k=result["k"], allow_delta=True)
        if html_out is not None:
            from eval.report import render_compare_html

            html_out.parent.mkdir(parents=True, exist_ok=True)
            html_out.write_text(render_compare_html(result, name_a=str(run_a), name_b=str(run_b), config_a=config_a,
                                                    config_b=config_b), encoding="utf-8")
        console = Console(stderr=as_json)
        if as_json:
            typer.echo(json.dumps(result, ensure_ascii=False, indent=2, default=str))
        else:
            print_comparison(result, console, name_a=str(run_a), name_b=str(run_b), show=show)
        if html_out is not None:
            console.print(f"wrote {html_out}")
        deltas = {key: m["delta"] for key, m in result["metrics"].items()}
        _enforce(gates, summarize(b.read_results(), k=int(config_b.get("top", 5)))["metrics"], console, deltas=deltas)


def print_comparison(result: dict, console: Console, *, name_a: str, name_b: str, show: int = 10) -> None:
    """The comparison in a terminal: configuration differences first, the metric table, the changed questions."""
    from rich.panel import Panel

    from eval.report import shown_metrics, verdict_text
    from eval.scoring import headline_keys

    heads = headline_keys(result["k"])
    diff = result["differences"]
    if diff["watched"] or diff["other"]:
        lines = [f"{d['label']}: A {d['a'] if d['a'] is not None else '-'} -> B {d['b'] if d['b'] is not None else '-'}" for d in diff["watched"]]
        if diff["other"]:
            lines.append("other settings that differ: " + ", ".join(diff["other"]))
        flagged = sorted({m["note"] for m in result["metrics"].values() if m.get("note")})
        lines += [f"[bold]marked below:[/bold] {n}" for n in flagged] or ["every metric below stays comparable"]
        console.print(Panel("\n".join(lines), title="the runs' configurations differ", border_style="yellow", expand=False))
    paired = f"{result['paired_questions']} paired questions"
    if result["only_a"] or result["only_b"]:
        paired += f"; {result['only_a']} only in A, {result['only_b']} only in B (left out)"
    table = Table(title=f"{name_b} (B) vs {name_a} (A): {paired}", show_edge=False, pad_edge=False,
                  caption="n: questions both runs define the metric for; n.s.: the 95% CI of B - A includes 0; "
                          "latency: percentiles without the warm-up, no CI")
    for col, justify in (("metric (gate key)", "left"), ("A", "right"), ("B", "right"), ("B - A", "right"), ("95% CI", "right"),
                         ("n", "right"), ("verdict", "left")):
        table.add_column(col, justify=justify, no_wrap=col != "metric (gate key)")

    def num(v, signed=False, places=3):
        if v is None:
            return "n/a"
        places = 1 if abs(v) >= 10 else places
        return f"{v:+.{places}f}" if signed else f"{v:.{places}f}"

    for key, m in shown_metrics(result):
        verdict = verdict_text(m, heads[key][2])
        short = ("n.s." if verdict == "no significant change" else "not comparable" if not m["comparable"]
                 else "no pairs" if m.get("delta") is None else verdict)
        style = "red" if verdict == "worse" else "green" if verdict == "better" else "dim"
        ci = "-" if m.get("low") is None else f"{num(m['low'], True, 2)}..{num(m['high'], True, 2)}"
        table.add_row(key, num(m.get("a")), num(m.get("b")), num(m.get("delta"), True), ci, str(m["n"]),
                      f"[{style}]{short}[/{style}]")
    for key, m in result["other"].items():
        fmt = lambda v: "n/a" if v is None else f"{v:.2f} s"  # noqa: E731
        table.add_row(key, fmt(m["a"]), fmt(m["b"]), "n/a" if m["delta"] is None else f"{m['delta']:+.2f} s",
                      "-", "", "[dim]no CI[/dim]")
    console.print(table)
    questions = result["questions"]
    counts = {c: sum(1 for q in questions if q["change"] == c) for c in ("broke", "fixed", "changed", "same")}
    console.print(", ".join(f"{n} {c}" for c, n in counts.items()) + " (broke: passed in A, fails in B; fixed: the reverse)")
    changed = [q for q in questions if q["change"] != "same"][:show]
    for q in changed:
        why_a = "; ".join(x["label"] for x in q["reasons_a"]) or q["outcome_a"].replace("_", " ")
        why_b = "; ".join(x["label"] for x in q["reasons_b"]) or q["outcome_b"].replace("_", " ")
        colour = {"broke": "red", "fixed": "green"}.get(q["change"], "yellow")
        console.print(f"  [{colour}]{q['change']}[/{colour}] line {q['line']}: {q['question']}", highlight=False)
        console.print(f"      A: {why_a}\n      B: {why_b}", highlight=False, markup=False)


def _ingest(settings: Settings, docs: str, console: Console) -> None:
    """Ingest ``docs`` into the configured index, with the same plan line and progress bar as `ondata ingest`."""
    from ondata.commands.ingest import ingest_with_progress

    report = ingest_with_progress(settings, docs, console)
    c = report.counts()
    console.print(f"ingested {docs}: {c['added']} added, {c['updated']} updated, {c['unchanged']} unchanged, "
                  f"{c['failed']} failed, {report.chunks_written} chunks in {report.seconds:.0f} s")
    for r in report.failed:
        console.print(f"[red]failed[/red] {r.source_id}: {r.error}")
