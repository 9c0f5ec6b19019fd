"""Atomic file replacement: the one write-temp-fsync-rename of the local index files.

``AtomicFile(path)`` opens a temporary file beside ``path`` (``<name>.tmp-<pid>-<thread>``, so two
writers never share one) for binary writing. ``commit()`` flushes, fsyncs, closes and
``os.replace``s it over ``path`` (then fsyncs the directory when ``sync_dir``), so a reader sees the
old file or the new one, never a part; ``abort()`` closes and removes it. As a context manager it
commits on a normal exit and aborts on an exception (which propagates). A reader that memory-mapped
the old file keeps reading the old inode.

Used by the keyword index (indexers/local_keyword.py), the vector files (indexers/local_vectors.py)
and the generation pointer (indexers/local_generations.py, which also fsyncs the directory).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any


def tmp_path(path: Path) -> Path:
    """The temporary name of ``path`` for this process and thread."""
    return path.with_name(f"{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")


def fsync_dir(path: Path) -> None:
    """fsync the directory ``path`` (makes a rename, create or unlink inside it durable)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicFile:
    """A new content of ``path`` being written under a temporary name (see the module docstring).

    Opening raises ``OSError`` like ``open`` does; ``fh`` is the binary file object (seekable).
    """

    def __init__(self, path: Path, *, sync_dir: bool = False) -> None:
        self.path = Path(path)
        self.tmp = tmp_path(self.path)
        self.sync_dir = sync_dir
        self.fh: Any = open(self.tmp, "wb")

    def commit(self) -> None:
        """Flush, fsync and close the temporary file, then rename it over ``path``; on ``OSError`` the
        temporary file is removed and the error propagates (``path`` keeps its old content)."""
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        if self.sync_dir:
            fsync_dir(self.path.parent)

    def abort(self) -> None:
        """Close and remove the temporary file (never raises)."""
        try:
            self.fh.close()
        except OSError:
            pass
        try:
            self.tmp.unlink()
        except OSError:
            pass

    def __enter__(self) -> Any:
        return self.fh

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
