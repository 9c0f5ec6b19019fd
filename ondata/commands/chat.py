"""`ondata chat`: an interactive, multi-turn session over the index, the model loaded once.

Each line typed is a question, answered from the index with the conversation so far (a follow-up
such as "and for cargo bikes?" is rewritten into a standalone search query), followed by its
citations. Lines starting with ``/`` are commands:

    /help                 the commands
    /group [NAME ...]     answer as a member of these ACL groups; ``/group`` alone shows them, ``/group -`` clears
                          them (public chunks only, the default; ``--all-groups`` at start sees everything)
    /top N                at most N sources in the prompt (1-20)
    /filter [EXPR]        an OData filter for every search (``/filter`` alone clears it)
    /sources              every source the last search returned, with score and whether it reached the prompt
    /reset                forget the conversation
    /quit                 leave (also Ctrl-D)

It reads standard input line by line, so it can be driven by a pipe as well as a terminal (where
``readline`` gives line editing and input history). Ctrl-C while an answer is being made abandons
that answer; at the prompt it leaves.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from indexers.errors import OndataError
from indexers.records import ALL_GROUPS, Groups, check_groups
from ondata.commands.callers import (all_groups_option, caller_groups, group_option, index_option, mode_option,
                                     strictness_option, top_n_option)
from ondata.settings import Settings

HELP = """commands:
  /group [NAME ...]   answer as a member of these ACL groups (/group alone shows them, /group - clears: public only)
  /top N              at most N sources in the prompt (1-20)
  /filter [EXPR]      OData filter for every search, e.g. /filter filepath eq 'employee_handbook.pdf' (alone: clear)
  /sources            the sources the last search returned
  /reset              forget the conversation
  /quit               leave (or Ctrl-D)"""

MAX_HISTORY_TURNS = 10


@dataclass
class ChatSession:
    """The state of one chat: the retriever and answerer (built once), options and the conversation."""

    retriever: Any
    answerer: Any
    mode: str = "hybrid"
    strictness: int = 3
    top_n: int = 5
    groups: Groups = ()
    filter_text: str | None = None
    history: list[dict[str, str]] = field(default_factory=list)
    last: Any = None

    def ask(self, question: str):
        from ondata.commands.retrieval import parse_filter
        from retrieval.answer import answer_question

        answer = answer_question(question, retriever=self.retriever, answerer=self.answerer, history=self.history,
                                 mode=self.mode, strictness=self.strictness, top_n_documents=self.top_n,  # type: ignore[arg-type]
                                 filter=parse_filter(self.filter_text), groups=self.groups)
        self.history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer.content}]
        self.history = self.history[-2 * MAX_HISTORY_TURNS:]
        self.last = answer
        return answer


def describe_groups(groups: Groups) -> str:
    """How ``/group`` shows the session's groups."""
    if groups is ALL_GROUPS:
        return "all (--all-groups: no security trimming)"
    return ", ".join(groups) if groups else "none (public chunks only)"


def print_sources(answer: Any, console: Console) -> None:
    from ondata.commands.retrieval import _snippet

    if answer is None:
        console.print("no question asked yet")
        return
    if not answer.retrieved:
        console.print("the last search returned nothing")
        return
    table = Table(title=f"Sources for: {answer.search_query}")
    for col in ("rank", "score", "title", "page", "prompt", "snippet"):
        table.add_column(col, overflow="fold")
    for d in answer.retrieved:
        chunk = d.hit.chunk
        reason = "yes" if d.filter_reason is None else f"no ({d.filter_reason})"
        table.add_row(str(d.rank), f"{d.hit.score:.4f}", chunk.title or chunk.source_id,
                      "" if chunk.page_start is None else str(chunk.page_start), reason, _snippet(chunk.content, 70))
    console.print(table)


def handle_command(session: ChatSession, line: str, console: Console) -> bool:
    """Run one ``/command``; returns False when the session should end."""
    name, _, rest = line[1:].partition(" ")
    name, rest = name.lower(), rest.strip()
    if name in ("quit", "exit", "q"):
        return False
    if name in ("help", "h", "?"):
        console.print(HELP, markup=False, highlight=False)
    elif name == "group":
        if rest == "-":
            session.groups = ()
        elif rest:
            session.groups = check_groups([g.strip() for part in shlex.split(rest) for g in part.split(",") if g.strip()])
        console.print(f"groups: {describe_groups(session.groups)}", markup=False)
    elif name == "top":
        if not rest.isdigit() or not 1 <= int(rest) <= 20:
            console.print("usage: /top N with N from 1 to 20", markup=False)
        else:
            session.top_n = int(rest)
            console.print(f"at most {session.top_n} sources per answer", markup=False)
    elif name == "filter":
        if rest:
            from ondata.commands.retrieval import parse_filter

            try:
                parse_filter(rest)
            except OndataError as exc:
                console.print(f"error: {exc}", markup=False, style="red")
                return True
        session.filter_text = rest or None
        console.print(f"filter: {session.filter_text}" if session.filter_text else "filter: none", markup=False)
    elif name == "sources":
        print_sources(session.last, console)
    elif name == "reset":
        session.history.clear()
        session.last = None
        console.print("conversation forgotten")
    else:
        console.print(f"unknown command /{name}; /help lists the commands", markup=False)
    return True


def run_session(session: ChatSession, console: Console, *, read_line=input, prompt: str = "you> ") -> int:
    """Read questions and commands until /quit or end of input; returns the number of questions answered."""
    from ondata.commands.retrieval import print_citations

    answered = 0
    while True:
        try:
            line = read_line(prompt).strip()
        except EOFError:
            console.print()
            return answered
        except KeyboardInterrupt:
            console.print()
            return answered
        if not line:
            continue
        if line.startswith("/"):
            if not handle_command(session, line, console):
                return answered
            continue
        try:
            with console.status("searching and answering…"):
                answer = session.ask(line)
        except KeyboardInterrupt:
            console.print("(answer abandoned)")
            continue
        except OndataError as exc:
            console.print(f"error: {exc}", style="red", markup=False)
            continue
        answered += 1
        console.print(answer.content, markup=False, highlight=False)
        print_citations(answer, console)


def register(app: typer.Typer) -> None:
    @app.command()
    def chat(
        index: Optional[Path] = index_option(),
        mode: str = mode_option(),
        strictness: int = strictness_option(),
        top_n: int = top_n_option(),
        group: Optional[List[str]] = group_option(),
        all_groups: bool = all_groups_option(),
        filter_: Optional[str] = typer.Option(None, "--filter", help="OData filter for every search (see `ondata search --help`)."),
    ) -> None:
        """Chat with the index: multi-turn questions with citations; /help lists the commands."""
        from ondata.commands.retrieval import build_retriever, parse_filter
        from ondata.wiring import build_answerer

        parse_filter(filter_)  # a bad filter is refused before anything loads
        groups = caller_groups(group, all_groups)
        settings = Settings(index_dir=index) if index is not None else Settings()
        retriever = build_retriever(settings)
        session = ChatSession(retriever=retriever, answerer=build_answerer(settings, embedder=retriever.embedder),
                              mode=mode, strictness=strictness, top_n=top_n, groups=groups, filter_text=filter_)
        interactive = sys.stdin.isatty()
        console = Console()
        if interactive:
            try:
                import readline  # noqa: F401  (line editing and input history for input())
            except ImportError:  # pragma: no cover - not on every platform
                pass
        console.print(f"ondata chat on {settings.index_dir} ({type(session.answerer).__name__}); "
                      "ask a question, /help for commands, /quit to leave", markup=False, highlight=False)
        try:
            run_session(session, console)
        finally:
            retriever.index.close()
