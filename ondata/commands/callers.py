"""Who the CLI asks as: the ``--group G`` (repeatable) and ``--all-groups`` options of ``ask``, ``search``,
``chat`` and ``eval run``, turned into the caller's ACL groups.

Deny by default: without either option the caller is public-only (``()``, chunks without groups).
``--all-groups`` is the one way to see everything (``ALL_GROUPS``, no security trimming); it prints
one warning line to stderr so the choice stays visible. Both at once is a usage error.
"""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from indexers.records import ALL_GROUPS, Groups, check_groups

GROUP_HELP = ("Run as a member of this ACL group (repeatable). Default: public-only, i.e. only chunks "
              "without groups.")
ALL_GROUPS_HELP = "See every chunk, group-restricted ones too (no security trimming; prints a warning)."
ALL_GROUPS_WARNING = ("warning: --all-groups: security trimming is off; group-restricted chunks are visible "
                      "to this command")


def caller_groups(group: Optional[List[str]], all_groups: bool) -> Groups:
    """The groups of a CLI caller from ``--group`` and ``--all-groups`` (see the module docstring)."""
    if all_groups:
        if group:
            raise typer.BadParameter("give either --group or --all-groups, not both", param_hint="--all-groups")
        typer.secho(ALL_GROUPS_WARNING, fg=typer.colors.YELLOW, err=True)
        return ALL_GROUPS
    names = tuple(group or ())
    if any(not name.strip() for name in names):
        raise typer.BadParameter("a group name must not be empty", param_hint="--group")
    return check_groups(names, what="--group")


# The options that `ask`, `chat` and `search` share, declared once (each call returns a fresh typer.Option).
INDEX_HELP = "Index folder (default .ondata or ONDATA_INDEX_DIR)."


def index_option(help_: str = INDEX_HELP) -> Any:
    return typer.Option(None, "--index", help=help_)


def mode_option() -> Any:
    return typer.Option("hybrid", "--mode", help="hybrid | vector | text")


def strictness_option() -> Any:
    return typer.Option(3, "--strictness", min=1, max=5, help="1 (lenient) .. 5 (strict) relevance filter.")


def top_n_option() -> Any:
    return typer.Option(5, "--top-n", min=1, max=20, help="At most this many sources in the prompt.")


def group_option() -> Any:
    return typer.Option(None, "--group", help=GROUP_HELP)


def all_groups_option() -> Any:
    return typer.Option(False, "--all-groups", help=ALL_GROUPS_HELP)
