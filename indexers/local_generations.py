"""Generations of a local index folder: the pointer every ``LocalIndex`` follows, and what
``ondata index rebuild`` builds, swaps and drops.

Layout of the folder a user names (``--index``, the *root*):

- ``index.sqlite``, ``vectors.faiss``, ``keyword.bin`` (and their ``-wal``/``.delta`` companions):
  the index as ``ondata ingest`` writes it, the generation ``.`` (the only one before a rebuild);
- ``gen-<UTC timestamp>/``: a generation built by ``ondata index rebuild`` (the same files inside);
- ``CURRENT``: one line naming the live generation (``gen-...``, or ``.``); without it the live
  generation is ``.``. It is replaced atomically (indexers/atomic.py: written to a temporary file,
  fsynced, ``os.replace``d, the folder fsynced), so a reader resolves either the old generation or the new one, never a half-built one;
- ``rebuild.lock``: held (``flock``) exclusively while a rebuild or a drop runs (it names the process
  holding it), shared while an ``ondata ingest`` writes (an ingest is refused during a rebuild, a rebuild
  or a drop during an ingest);
- ``embeddings.sqlite``: the embedding cache, shared by every generation (keyed by model).

A rebuild builds in the sibling folder ``<root>.rebuild-<timestamp>`` (invisible to readers), moves
it to ``<root>/gen-<timestamp>`` when it is complete, then swaps ``CURRENT``. Readers resolve the
pointer on every operation (one ``stat``): an operation in flight finishes on the generation it
started on, the next one opens the new generation (``LocalIndex._follow_generation``), so
``ondata serve`` switches without a restart. The old generation stays until ``drop_old`` (which
never deletes the live one, re-read under the lock). A pointer naming anything but a generation
inside the root (a path, ``..``, a link) is refused: readers never follow it out of the root.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from indexers.atomic import AtomicFile, fsync_dir
from indexers.errors import IndexError_, RebuildInProgress
from indexers.local_keyword import KEYWORD_NAME
from indexers.local_vectors import FAISS_NAME

SQLITE_NAME = "index.sqlite"
POINTER_NAME = "CURRENT"
LOCK_NAME = "rebuild.lock"
IN_PLACE = "."  # the generation stored in the root itself
BUILD_INFIX = ".rebuild-"
_GENERATION = re.compile(r"^gen-[0-9A-Za-z_-]{1,64}$")
#: Files of one generation (each name and what starts with it: ``-wal``, ``-shm``, ``.delta``, temporaries).
DATA_PREFIXES = (SQLITE_NAME, FAISS_NAME, KEYWORD_NAME)


@dataclass(frozen=True)
class Generation:
    """One generation of an index folder: its name (``.`` or ``gen-...``), folder and whether it is live."""

    name: str
    path: Path
    live: bool
    bytes_on_disk: int


def stamp() -> str:
    """A UTC timestamp for a new generation's name (``20261203T083000123456Z``)."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def pointer_token(root: Path) -> tuple[int, int, int] | None:
    """What changes when ``CURRENT`` is swapped (inode, mtime, size); None without a pointer."""
    try:
        st = os.stat(os.path.join(root, POINTER_NAME))
    except OSError:  # no pointer (or no folder): the folder is its own generation
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def live_name(root: Path) -> str:
    """The name of the live generation of ``root`` (``.`` without a pointer); ``IndexError_`` for a bad pointer."""
    try:
        text = (root / POINTER_NAME).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return IN_PLACE
    except PermissionError:
        if not os.path.lexists(root / POINTER_NAME):
            return IN_PLACE  # an unreadable folder: opening it says so
        raise IndexError_(f"the index pointer {root / POINTER_NAME} cannot be read (permission denied)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexError_(f"the index pointer {root / POINTER_NAME} cannot be read: {exc}") from exc
    if text != IN_PLACE and not _GENERATION.match(text):
        raise IndexError_(f"the index pointer {root / POINTER_NAME} names {text[:80]!r}, which is not a generation "
                          "of this index (gen-...); it is never followed")
    return text


def live_dir(root: Path) -> Path:
    """The folder holding the live generation's files (``root`` itself for ``.``).

    A pointer naming a generation that is not a real folder inside ``root`` (missing, a link) is an ``IndexError_``."""
    name = live_name(root)
    if name == IN_PLACE:
        return root
    path = root / name
    try:
        os.lstat(path)
    except FileNotFoundError:
        raise IndexError_(f"the index at {root} points to generation {name}, which does not exist") from None
    if os.path.islink(path) or not os.path.isdir(path):
        raise IndexError_(f"the index at {root} points to {name}, which is not a folder of it; it is never followed")
    return path


def has_index(root: Path) -> bool:
    """Whether ``root`` holds an index (its live generation has an ``index.sqlite``)."""
    try:
        return (live_dir(root) / SQLITE_NAME).is_file()
    except IndexError_:
        return (root / POINTER_NAME).exists()  # a broken pointer: an index, which will say what is wrong


def write_pointer(root: Path, name: str) -> None:
    """Make ``name`` the live generation of ``root`` atomically (temporary file, fsync, ``os.replace``, fsync)."""
    if name != IN_PLACE and not _GENERATION.match(name):
        raise ValueError(f"not a generation name: {name!r}")
    with AtomicFile(root / POINTER_NAME, sync_dir=True) as fh:
        fh.write((name + "\n").encode("utf-8"))


def build_dir(root: Path, when: str) -> Path:
    """Where a rebuild builds: the sibling ``<root>.rebuild-<when>`` (readers never look there)."""
    root = Path(os.path.abspath(root))
    return root.parent / f"{root.name}{BUILD_INFIX}{when}"


def install(root: Path, built: Path, when: str) -> str:
    """Move a finished build into ``root`` as ``gen-<when>`` and make it live; returns its name."""
    name = f"gen-{when}"
    target = root / name
    try:
        os.rename(built, target)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise IndexError_(f"{built} is on another filesystem than {root}; cannot move the new index into place") from exc
        raise IndexError_(f"moving the new index {built} into {root} failed: {exc.strerror or exc}") from exc
    fsync_dir(root)
    write_pointer(root, name)
    return name


def label(name: str) -> str:
    """A generation as the CLI names it to a user: ``generation gen-<ts>``, and for the in-place one (``.``:
    the files ``ondata ingest`` writes in the index folder itself, before any rebuild) what it is."""
    return "the original index files in the index folder" if name == IN_PLACE else f"generation {name}"


def generations(root: Path) -> list[Generation]:
    """Every generation of ``root`` (the in-place one when it has files), the live one flagged."""
    live = live_name(root)
    out: list[Generation] = []
    in_place = _in_place_files(root)
    if in_place:
        out.append(Generation(IN_PLACE, root, live == IN_PLACE, sum(_size(p) for p in in_place)))
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if _GENERATION.match(entry.name) and entry.is_dir(follow_symlinks=False):
            size = sum(_size(Path(e.path)) for e in os.scandir(entry.path) if e.is_file(follow_symlinks=False))
            out.append(Generation(entry.name, Path(entry.path), entry.name == live, size))
    return out


def leftover_builds(root: Path) -> list[Path]:
    """Build folders of rebuilds killed before their swap (``<root>.rebuild-*``, real folders only; a rebuild that
    fails or is interrupted removes its own)."""
    root = Path(os.path.abspath(root))
    prefix = root.name + BUILD_INFIX
    return sorted(Path(e.path) for e in os.scandir(root.parent)
                  if e.name.startswith(prefix) and e.is_dir(follow_symlinks=False))


def drop_old(root: Path, *, dry_run: bool = False) -> list[str]:
    """Delete every generation of ``root`` but the live one, and leftover build folders; returns what
    (``dry_run``: would be) deleted. The caller holds the rebuild lock; the live generation is re-read
    here and never deleted, nor anything outside ``root`` but its own ``<root>.rebuild-*`` siblings."""
    live = live_name(root)
    doomed: list[str] = []
    for gen in generations(root):
        if gen.live or gen.name == live:
            continue
        if gen.name == IN_PLACE:
            files = _in_place_files(root)
            doomed.append(f"{label(IN_PLACE)}: {', '.join(p.name for p in files)}")
            if not dry_run:
                for p in files:
                    p.unlink(missing_ok=True)
        else:
            doomed.append(label(gen.name))
            if not dry_run:
                shutil.rmtree(gen.path)
    for path in leftover_builds(root):
        doomed.append(f"unfinished build {path}")
        if not dry_run:
            shutil.rmtree(path)
    if not dry_run and doomed:
        fsync_dir(root)
    return doomed


@contextmanager
def _flocked(root: Path, operation: int, refusal: Callable[[str], str]) -> Iterator[int]:
    """``root/rebuild.lock`` open and ``flock``ed with ``operation`` (non-blocking); ``RebuildInProgress``
    with ``refusal(holder)`` when another process holds it in a conflicting mode."""
    path = root / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RebuildInProgress(refusal(_holder(fd))) from None
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def rebuild_lock(root: Path) -> Iterator[None]:
    """Hold ``root/rebuild.lock`` exclusively (``flock``, released when the process ends), writing who holds
    it; ``RebuildInProgress`` when a rebuild, a drop or an ingest (``ingest_lock``) holds it."""
    with _flocked(root, fcntl.LOCK_EX, lambda holder: _busy(root, holder)) as fd:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)


@contextmanager
def ingest_lock(root: Path) -> Iterator[None]:
    """Hold ``root/rebuild.lock`` shared while an ingest writes to ``root`` (several ingests share it).

    A rebuild (or a drop) running now holds it exclusively: the ingest is refused with
    ``RebuildInProgress`` naming the lock and the rebuild (its writes would land in the generation being
    replaced and be lost at the swap); a rebuild or drop started during the ingest is refused in turn
    until the ingest ends. Creates nothing when ``root`` is not a folder yet (no rebuild can run on it)."""
    if not os.path.isdir(root):
        yield
        return
    with _flocked(root, fcntl.LOCK_SH, lambda holder: (
            f"a rebuild of the index at {root} is in progress ({holder}; lock {root / LOCK_NAME}): an ingest now "
            "would write to the generation it replaces; run it again once the rebuild is done")):
        yield


_INGESTING = "an ingest is writing to it"


def _holder(fd: int) -> str:
    """Who holds the lock open at ``fd``: what a rebuild wrote (``pid N, since T``); nothing written: ingests."""
    return os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or _INGESTING


def _busy(root: Path, holder: str) -> str:
    if holder == _INGESTING:
        return f"the index at {root} is busy: {holder} (lock {root / LOCK_NAME}); wait for it to finish"
    return f"a rebuild of the index at {root} is already in progress ({holder}); wait for it to finish"


def lock_holder(root: Path) -> str | None:
    """Who holds the rebuild lock of ``root`` (None when nobody does), checked without creating anything."""
    path = root / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def busy_error(root: Path) -> "RebuildInProgress | None":
    """``RebuildInProgress`` saying who holds the lock of ``root`` (None when nobody does)."""
    holder = lock_holder(root)
    return None if holder is None else RebuildInProgress(_busy(root, holder))


def _in_place_files(root: Path) -> list[Path]:
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    return sorted(Path(e.path) for e in entries
                  if e.name.startswith(DATA_PREFIXES) and e.is_file(follow_symlinks=False))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0

