"""ACL groups of a source item, validated once for every source (sidecars and blob metadata).

A document's groups decide who may see it, so a malformed value must never widen access: it fails
that document with ``InvalidMetadataError`` (naming the document and what is wrong) instead of
being read as "no groups" (public) or split into characters.

- ``groups_from_list(value)``: a sidecar's ``"groups"``: a JSON list of non-empty strings
  (``[]`` = no groups). A string (even ``"finance"``), ``null``, a number, a boolean, or a list
  holding anything but non-empty strings fails.
- ``groups_from_text(value)``: blob metadata ``groups`` (``groups_metadata_key``): comma-separated
  non-empty names (``"hr, staff"``); an empty value or an empty name (``"hr,,staff"``) fails. A
  trailing comma is tolerated (``"hr, staff,"``, what some upload tools write).

Names are stripped of surrounding whitespace and de-duplicated, order kept.
"""

from __future__ import annotations

from typing import Any

from pipelines.errors import InvalidMetadataError


def _clean(names: list[Any], *, doc_id: str, where: str) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise InvalidMetadataError(
                f"{where}: groups[{i}] is {_kind(name)}; groups must be a list of non-empty strings", doc_id=doc_id
            )
        cleaned = name.strip()
        if not cleaned:
            raise InvalidMetadataError(
                f"{where}: groups[{i}] is an empty name; groups must be a list of non-empty strings", doc_id=doc_id
            )
        out[cleaned] = None
    return tuple(out)


def groups_from_list(value: Any, *, doc_id: str, where: str) -> tuple[str, ...]:
    """The groups of a sidecar's ``"groups"`` value (see the module docstring)."""
    if not isinstance(value, list):
        hint = f' (write ["{value.strip()}"])' if isinstance(value, str) and value.strip() else ""
        raise InvalidMetadataError(
            f"{where}: groups is {_kind(value)}; it must be a list of non-empty strings{hint}", doc_id=doc_id
        )
    return _clean(value, doc_id=doc_id, where=where)


def groups_from_text(value: str, *, doc_id: str, where: str) -> tuple[str, ...]:
    """The groups of a comma-separated metadata value (see the module docstring)."""
    parts = value.split(",")
    if len(parts) > 1 and not parts[-1].strip():
        parts = parts[:-1]  # "hr, staff," : a trailing separator, not an empty name
    if not value.strip():
        raise InvalidMetadataError(f"{where}: groups is empty; give comma-separated group names or remove it",
                                   doc_id=doc_id)
    for i, part in enumerate(parts):
        if not part.strip():
            raise InvalidMetadataError(
                f"{where}: groups {value!r} has an empty name at position {i + 1}; give comma-separated group names",
                doc_id=doc_id,
            )
    return _clean(parts, doc_id=doc_id, where=where)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}" if value else "an empty string"
    return f"a {type(value).__name__}"
