"""`ondata keys add|list|remove`: the API keys of `ondata serve --keys FILE`, each tied to ACL groups.

The file (TOML, ``retrieval.principals.KeysFile``) holds only a SHA-256 of each key with its name and
groups; `keys add` prints the new key once, alone on the last line of stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

KEYS_HELP = "The keys file (TOML) that `ondata serve --keys FILE` reads."


def register(app: typer.Typer) -> None:
    keys_app = typer.Typer(help="API keys for `ondata serve --keys FILE`, each tied to ACL groups.", no_args_is_help=True)
    app.add_typer(keys_app, name="keys")

    @keys_app.command("add")
    def add(
        name: str = typer.Argument(..., help="A name for the caller (shown in the audit log)."),
        group: Optional[List[str]] = typer.Option(None, "--group", help="An ACL group the key's caller belongs to (repeatable)."),
        all_groups: bool = typer.Option(False, "--all-groups", help="The key's caller sees every chunk, whatever its groups."),
        keys: Path = typer.Option(..., "--keys", help=KEYS_HELP),
    ) -> None:
        """Create a key: print it once (last line of stdout); store only its hash, name and groups."""
        from retrieval.principals import KeysFile

        store = KeysFile.load(keys, missing_ok=True)
        key = store.add(name, groups=tuple(group or ()), all_groups=all_groups)
        store.save()
        if all_groups:
            typer.secho(f"warning: the key {name!r} sees every chunk, whatever its groups", fg=typer.colors.YELLOW, err=True)
        elif not group:
            typer.secho(f"note: the key {name!r} has no groups: it sees public chunks only", err=True)
        shown = "every group" if all_groups else (", ".join(group or ()) or "public chunks only")
        typer.echo(f"added key {name!r} ({shown}) to {keys}; it is shown only now:")
        typer.echo(key)

    @keys_app.command("list")
    def list_(keys: Path = typer.Option(..., "--keys", help=KEYS_HELP)) -> None:
        """List the keys' names and groups (never the keys)."""
        from indexers.records import ALL_GROUPS
        from retrieval.principals import KeysFile

        store = KeysFile.load(keys)
        if not store.entries:
            typer.echo(f"no keys in {keys}")
        for e in store.entries:
            shown = "ALL GROUPS" if e.groups is ALL_GROUPS else (", ".join(e.groups) or "(public only)")
            typer.echo(f"{e.name}\t{shown}\t{e.created}")

    @keys_app.command("remove")
    def remove(
        name: str = typer.Argument(..., help="The key's name."),
        keys: Path = typer.Option(..., "--keys", help=KEYS_HELP),
    ) -> None:
        """Remove a key (a running `ondata serve` stops accepting it at once)."""
        from retrieval.principals import KeysFile

        store = KeysFile.load(keys)
        store.remove(name)
        store.save()
        typer.echo(f"removed key {name!r} from {keys}")
