"""The original documents behind indexed chunks, opened safely for the chat page's "open document" link.

``DocumentFiles(root_for)`` opens the file a chunk was cut from: ``root_for(chunk)`` names the source
root the chunk's document lives under (a local folder's resolved path; None when the chunk's source
is not a local folder), and the chunk's ``filepath`` is resolved against it. It refuses, as a
``DocumentNotFoundError`` (a 404 to HTTP callers, indistinguishable from a missing file):

- absolute paths, ``..`` segments, NUL bytes and backslashes in the stored path;
- anything whose real path (after every symlink) is outside the root;
- anything that is not a regular file (directories, FIFOs, devices), checked on the opened
  descriptor (``O_NOFOLLOW`` on the last component) so a swap after the check cannot widen it.

``media_type_for(name)`` says how a file may be sent: PDFs, plain text and raster images inline
with their own type; everything else (HTML, SVG, XML, Office files...) as an attachment, and
anything a browser could run as script as ``application/octet-stream``. Access control is not
this module's job: the caller looks the chunk up with the principal's groups first.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable

from indexers.records import Chunk
from retrieval.errors import RetrievalError

RootFor = Callable[[Chunk], "Path | None"]

#: Types a browser may show inline: none of them can run script on the page's origin.
INLINE_TYPES: dict[str, str] = {
    ".pdf": "application/pdf",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".csv": "text/plain; charset=utf-8",
    ".log": "text/plain; charset=utf-8",
    ".eml": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
#: Types a browser would render as a document that can run script: always sent as opaque bytes.
ACTIVE_TYPES = frozenset({
    "text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml", "text/javascript",
    "application/javascript", "application/x-javascript", "text/xsl", "application/pdf+xml",
})


class DocumentNotFoundError(RetrievalError):
    """There is no document the caller may open for this chunk (missing, hidden, or outside the root)."""


@dataclass(frozen=True)
class MediaType:
    content_type: str
    inline: bool


def media_type_for(name: str) -> MediaType:
    """How a file called ``name`` is sent: inline for PDF, text and images; else an attachment."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in INLINE_TYPES:
        return MediaType(INLINE_TYPES[suffix], inline=True)
    guessed = mimetypes.guess_type(f"x{suffix}")[0] or "application/octet-stream"
    if guessed in ACTIVE_TYPES or guessed.startswith("text/"):
        guessed = "application/octet-stream"
    return MediaType(guessed, inline=False)


@dataclass
class OpenedDocument:
    """An open, regular file under a source root: ``file`` (binary), its ``name``, ``size`` and media type."""

    file: BinaryIO
    name: str
    size: int
    media: MediaType

    def close(self) -> None:
        self.file.close()


def _safe_relative(filepath: str) -> PurePosixPath | None:
    if not filepath or "\x00" in filepath or "\\" in filepath:
        return None
    rel = PurePosixPath(filepath)
    if rel.is_absolute() or any(part in ("..", "") for part in rel.parts) or not rel.parts:
        return None
    return rel


class DocumentFiles:
    """Opens the original file of a chunk under the source root ``root_for(chunk)`` names."""

    def __init__(self, root_for: RootFor) -> None:
        self._root_for = root_for

    @classmethod
    def under(cls, root: str | Path | None) -> "DocumentFiles | None":
        """Every chunk's document under one folder (None: no local documents)."""
        if root is None:
            return None
        resolved = Path(root).resolve(strict=True)
        return cls(lambda _chunk: resolved)

    def path_of(self, chunk: Chunk) -> Path | None:
        """The real path of the chunk's document if it is a regular file inside its root, else None."""
        root = self._root_for(chunk)
        rel = _safe_relative(chunk.filepath or chunk.source_id)
        if root is None or rel is None:
            return None
        try:
            real_root = Path(root).resolve(strict=True)
            real = (real_root / rel).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not real.is_relative_to(real_root) or not real.is_file():
            return None
        return real

    def open(self, chunk: Chunk) -> OpenedDocument:
        """Open the chunk's document for reading; ``DocumentNotFoundError`` for anything refused."""
        real = self.path_of(chunk)
        missing = DocumentNotFoundError(f"no document for chunk {chunk.id}")
        if real is None:
            raise missing
        try:
            fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            raise missing from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise missing
            os.set_blocking(fd, True)
            fh = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        return OpenedDocument(file=fh, name=real.name, size=info.st_size, media=media_type_for(real.name))
