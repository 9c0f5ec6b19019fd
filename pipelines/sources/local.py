"""Local folder source: every non-hidden file under a root folder, with optional JSON sidecars.

- ``id``: the file's path relative to the root, with ``/`` separators (stable across runs and machines).
- ``version``: sha256 of the file's bytes and of its sidecar, so editing either re-ingests the file.
- Sidecar ``<file>.meta.json`` (optional): ``{"title": ..., "url": ..., "groups": [...], <any other key>: ...}``;
  ``title``/``url``/``groups`` fill the item, other keys become metadata. Sidecars are not documents.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import mimetypes
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

from pipelines.errors import SourceError
from pipelines.records import SourceItem

SIDECAR_SUFFIX = ".meta.json"


class LocalFolderSource:
    """DocumentSource over a folder (recursively, files in sorted order)."""

    def __init__(
        self,
        root: str | Path,
        *,
        include: Sequence[str] = ("*",),
        exclude: Sequence[str] = (),
        max_bytes: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.max_bytes = max_bytes

    def __repr__(self) -> str:
        return f"LocalFolderSource({str(self.root)!r})"

    def _wanted(self, rel: str) -> bool:
        parts = rel.split("/")
        if any(p.startswith(".") for p in parts) or rel.endswith(SIDECAR_SUFFIX):
            return False
        name = parts[-1]
        if not any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(name, pat) for pat in self.include):
            return False
        return not any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(name, pat) for pat in self.exclude)

    def list_items(self) -> Iterator[SourceItem]:
        if not self.root.exists():
            raise SourceError(f"folder {self.root} does not exist")
        if self.root.is_file():
            paths = [self.root]
            base = self.root.parent
        else:
            paths = sorted(p for p in self.root.rglob("*") if p.is_file())
            base = self.root
        for path in paths:
            rel = path.relative_to(base).as_posix()
            if self._wanted(rel):
                yield self._item(path, rel)

    def _item(self, path: Path, rel: str) -> SourceItem:
        h = hashlib.sha256()
        try:
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            size = path.stat().st_size
        except OSError as exc:
            raise SourceError(f"cannot read {rel}: {exc.strerror or exc}", doc_id=rel) from exc
        meta: dict = {}
        sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
        if sidecar.exists():
            raw = sidecar.read_bytes()
            h.update(b"\x00sidecar\x00" + raw)
            try:
                meta = json.loads(raw)
                if not isinstance(meta, dict):
                    raise ValueError("the sidecar must hold a JSON object")
            except ValueError as exc:
                raise SourceError(f"sidecar {sidecar.name} is not valid JSON: {exc}", doc_id=rel) from exc
        groups = meta.pop("groups", ()) or ()
        if isinstance(groups, str):
            groups = [g.strip() for g in groups.split(",") if g.strip()]
        return SourceItem(
            id=rel,
            version=h.hexdigest(),
            name=path.name,
            size=size,
            content_type=mimetypes.guess_type(path.name)[0],
            title=str(meta.pop("title", "") or ""),
            url=str(meta.pop("url", "") or ""),
            filepath=rel,
            groups=tuple(str(g) for g in groups),
            metadata=meta,
        )

    def open(self, item: SourceItem) -> BinaryIO:
        path = (self.root if self.root.is_dir() else self.root.parent) / item.id
        try:
            return path.open("rb")
        except OSError as exc:
            raise SourceError(f"cannot open {item.id}: {exc.strerror or exc}", doc_id=item.id) from exc
